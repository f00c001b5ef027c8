"""WADO-RS Retrieve Pixel Data of a series (api/dicomweb/pixeldata.py; issue 16; REQ: VIEW-01, AC-02, DSEC-10, UX
R18): every frame of a series in one streamed multipart/related answer, each part keyed by its frame's
Content-Location; subsets and order by `instances=` or `offset`/`limit`; multi-frame and compressed instances; the
frames resource's visibility (404 for another hospital, 403 for the 系统管理员) and its error codes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import RLELossless, generate_uid
from sqlalchemy import select

from engine import uow
from engine.audit import AuditEvent
from engine.dicomweb import decisions
from engine.imaging import targets
from engine.imaging.models import Instance
from tests.dicom import archive
from tests.dicom.conftest import sample_file
from tests.dicomweb.conftest import DicomWeb

STORED = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}
NATIVE = {"Accept": 'multipart/related; type="application/octet-stream"'}
EXPLICIT = "1.2.840.10008.1.2.1"


def parts(r: requests.Response) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/related answer, read by each part's Content-Length (when given) and checked against
    the boundary that must follow it; the closing boundary must end the body."""
    ctype = r.headers["Content-Type"]
    assert ctype.startswith("multipart/related"), ctype
    boundary = ("--" + ctype.split("boundary=")[1].split(";")[0].strip('"')).encode()
    body, pos, out = r.content, 0, []
    while True:
        assert body[pos : pos + len(boundary)] == boundary, body[pos : pos + 80]
        pos += len(boundary)
        if body[pos : pos + 2] == b"--":
            assert body[pos + 2 :] == b"\r\n"
            return out
        end = body.index(b"\r\n\r\n", pos)
        lines = body[pos + 2 : end].decode("ascii").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        if "content-location" in headers or "content-length" in headers:
            assert "content-length" in headers  # pixeldata gives both
            assert "content-location" in headers
        # the frames resource gives no Content-Length: its parts end at the next boundary
        size = int(headers.get("content-length") or body.index(b"\r\n" + boundary, end + 4) - end - 4)
        out.append((headers, body[end + 4 : end + 4 + size]))
        pos = end + 4 + size
        assert body[pos : pos + 2] == b"\r\n"
        pos += 2


def key(headers: dict[str, str]) -> tuple[str, int]:
    """(SOP Instance UID, frame number) of a part's Content-Location."""
    loc = headers["content-location"]
    assert loc.startswith("http://"), loc
    sop, frame = loc.split("/instances/")[1].split("/frames/")
    return sop, int(frame)


@pytest.fixture(autouse=True)
def _fresh_decisions() -> None:
    decisions.clear()


@pytest.fixture
def study(dicomweb: DicomWeb) -> dict[str, Any]:
    """Member hospital M01's study: series `ct` of four uncompressed instances (distinct pixels, stored in an order
    other than their instance numbers), series `mixed` of a two-frame RLE instance, an uncompressed MR and an SR."""
    ct = archive.small_series(4)
    for i, ds in enumerate(ct):
        ds.PixelData = bytes((i * 31 + j) % 256 for j in range(64))
    uid = str(ct[0].StudyInstanceUID)
    mixed_series = generate_uid()
    mixed: list[Dataset] = []
    for name in ("SC_rgb_rle_2frame.dcm", "MR_small.dcm", "test-SR.dcm"):
        ds = dcmread(sample_file(name))
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, mixed_series, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = len(mixed) + 1
        mixed.append(ds)
    dicomweb.seed([ct[2], ct[0], ct[3], ct[1], *mixed], institution="M01")
    base = f"/dicomweb/studies/{uid}/series"
    return {
        "uid": uid,
        "ct": ct,
        "mixed": mixed,
        "ct_url": f"{base}/{ct[0].SeriesInstanceUID}/pixeldata",
        "mixed_url": f"{base}/{mixed_series}/pixeldata",
    }


def test_view01_series_pixeldata_every_frame_in_series_order_keyed_by_content_location(
    dicomweb: DicomWeb, study: dict[str, Any]
) -> None:
    user = dicomweb.user("requester", institution_code="M01")
    ct: list[Dataset] = study["ct"]
    r = dicomweb.get(user, study["ct_url"], headers=STORED, stream=True)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith('multipart/related; type="application/octet-stream"; boundary=')
    assert "Content-Length" not in r.headers  # streamed, never assembled
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["X-Telerad-Institution"] == "M01"
    got = parts(r)
    # the series' instance order (instance number), not the order they were stored in
    assert [key(h) for h, _ in got] == [(str(ds.SOPInstanceUID), 1) for ds in ct]
    assert [data for _, data in got] == [ds.PixelData for ds in ct]
    for headers, _ in got:
        assert headers["content-type"] == f"application/octet-stream; transfer-syntax={EXPLICIT}"
        sop, frame = key(headers)
        # the part names its frame's own resource, which answers the same bytes
        path = headers["content-location"].split("127.0.0.1", 1)[1].split("/", 1)[1]
        single = dicomweb.get(user, "/" + path, headers=STORED)
        assert parts(single)[0][1] == dict((key(h), d) for h, d in got)[(sop, frame)]
    # a slice of the series' order, and a listed subset in the listed order
    r = dicomweb.get(user, study["ct_url"], params={"offset": "1", "limit": "2"}, headers=STORED)
    assert [key(h)[0] for h, _ in parts(r)] == [str(ct[1].SOPInstanceUID), str(ct[2].SOPInstanceUID)]
    r = dicomweb.get(user, study["ct_url"], params={"offset": "3"}, headers=STORED)
    assert [key(h)[0] for h, _ in parts(r)] == [str(ct[3].SOPInstanceUID)]
    listed = [str(ct[3].SOPInstanceUID), str(ct[0].SOPInstanceUID)]
    r = dicomweb.get(user, study["ct_url"], params={"instances": ",".join(listed)}, headers=STORED)
    assert r.status_code == 200
    assert [(key(h)[0], d) for h, d in parts(r)] == [(listed[0], ct[3].PixelData), (listed[1], ct[0].PixelData)]
    # the access audit: once per principal, study and day however many requests (DSEC-10)
    with dicomweb.app.app_context():
        accessed = uow.session().execute(
            select(AuditEvent).where(AuditEvent.event_type == "dicomweb_study_accessed", AuditEvent.user_id == user.id)
        )
        assert len(accessed.scalars().all()) <= 1


def test_view01_pixeldata_multiframe_compressed_as_stored_or_decoded(dicomweb: DicomWeb, study: dict[str, Any]) -> None:
    user = dicomweb.user("requester", institution_code="M01")
    rle, mr, _sr = study["mixed"]
    rle_frames = list(generate_frames(rle.PixelData, number_of_frames=2))
    # as stored (transfer-syntax=*): the RLE frames cut from the file and labelled RLE; the MR native; the SR has
    # no frames and is passed over
    r = dicomweb.get(user, study["mixed_url"], headers=STORED)
    assert r.status_code == 200
    got = parts(r)
    rle_sop, mr_sop = str(rle.SOPInstanceUID), str(mr.SOPInstanceUID)
    assert [key(h) for h, _ in got] == [(rle_sop, 1), (rle_sop, 2), (mr_sop, 1)]
    assert [d for _, d in got] == [*rle_frames, mr.PixelData]
    assert got[0][0]["content-type"] == f"application/octet-stream; transfer-syntax={RLELossless}"
    assert got[2][0]["content-type"] == f"application/octet-stream; transfer-syntax={EXPLICIT}"
    # the stored syntax not accepted: decoded in the sandbox, frame by frame, as the frames resource does
    r = dicomweb.get(user, study["mixed_url"], params={"instances": str(rle.SOPInstanceUID)}, headers=NATIVE)
    decoded = parts(r)
    want = np.asarray(rle.pixel_array)
    assert [key(h)[1] for h, _ in decoded] == [1, 2]
    for i, (headers, data) in enumerate(decoded):
        assert headers["content-type"] == f"application/octet-stream; transfer-syntax={EXPLICIT}"
        assert np.array_equal(np.frombuffer(data, np.uint8).reshape(want.shape[1:]), want[i])
    # the RLE media type only: the MR cannot be sent so and is left out (206 with a Warning)
    r = dicomweb.get(user, study["mixed_url"], headers={"Accept": 'multipart/related; type="image/dicom-rle"'})
    assert r.status_code == 206
    assert "1 instances not available" in r.headers["Warning"]
    assert r.headers["Content-Type"].startswith('multipart/related; type="image/dicom-rle"')
    assert [d for _, d in parts(r)] == rle_frames
    # nothing can be sent in JPEG 2000 (telerad never compresses): 406; an SR alone has no frames: 404
    r = dicomweb.get(user, study["mixed_url"], headers={"Accept": 'multipart/related; type="image/jp2"'})
    assert (r.status_code, r.json()["code"]) == (406, "not_acceptable")
    r = dicomweb.get(user, study["mixed_url"], params={"instances": str(_sr.SOPInstanceUID)}, headers=STORED)
    assert (r.status_code, r.json()["code"]) == (404, "frame_not_found")


def test_ac02_pixeldata_refused_as_frames_are(dicomweb: DicomWeb, study: dict[str, Any]) -> None:
    ct: list[Dataset] = study["ct"]
    frame = (
        f"/dicomweb/studies/{study['uid']}/series/{ct[0].SeriesInstanceUID}/instances/{ct[0].SOPInstanceUID}/frames/1"
    )
    other = dicomweb.user("requester", institution_code="M02")  # another member hospital: the study does not exist
    admin = dicomweb.user("sys_admin")  # lists studies, never reads pixel data
    for who, status, code in ((other, 404, "not_found"), (admin, 403, "forbidden")):
        for url in (frame, study["ct_url"]):
            r = dicomweb.get(who, url, headers=STORED)
            assert (r.status_code, r.json()["code"]) == (status, code), url
            assert "--" not in r.text[:2]
    with dicomweb.app.app_context():
        alerts = uow.session().execute(select(AuditEvent).where(AuditEvent.event_type == "security_alert"))
        assert len([a for a in alerts.scalars() if a.object_id == study["uid"]]) == 2  # M02's two requests
        denied = uow.session().execute(select(AuditEvent).where(AuditEvent.event_type == "permission_denied"))
        assert len([a for a in denied.scalars() if a.user_id == admin.id]) == 2


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"offset": "-1"}, 400, "bad_offset"),
        ({"offset": "x"}, 400, "bad_offset"),
        ({"offset": "4"}, 400, "bad_offset"),  # past the series' four instances
        ({"limit": "0"}, 400, "bad_limit"),
        ({"limit": "70000"}, 400, "bad_limit"),
        ({"instances": "not-a-uid"}, 400, "bad_instance_list"),
        ({"instances": "1.2,1.2"}, 400, "bad_instance_list"),
        ({"instances": ""}, 400, "bad_instance_list"),
        ({"instances": "1.2.3", "limit": "1"}, 400, "bad_pixeldata_query"),
        ({"instances": "1.2.3"}, 404, "not_found"),  # not in the series
    ],
)
def test_pixeldata_bad_parameters_are_400_with_a_code(
    dicomweb: DicomWeb, study: dict[str, Any], params: dict[str, str], status: int, code: str
) -> None:
    user = dicomweb.user("requester", institution_code="M01")
    r = dicomweb.get(user, study["ct_url"], params=params, headers=STORED)
    assert (r.status_code, r.json()["code"]) == (status, code)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in r.json()["message"])  # a Chinese message


def test_pixeldata_unknown_series_and_unreadable_files(dicomweb: DicomWeb, study: dict[str, Any]) -> None:
    user = dicomweb.user("requester", institution_code="M01")
    r = dicomweb.get(user, f"/dicomweb/studies/{study['uid']}/series/1.2.3/pixeldata", headers=STORED)
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    ct: list[Dataset] = study["ct"]
    with dicomweb.app.app_context():
        rows = uow.session().execute(select(Instance)).scalars().all()
        path = {r.sop_instance_uid: targets.instance_path(r) for r in rows}
        uow.session().rollback()
    second: Path = path[str(ct[1].SOPInstanceUID)]
    data = second.read_bytes()
    second.write_bytes(data[:-40])  # the last frame's pixels cut short (the frame index is read from the header)
    # the body began with the first instance: cut short, no closing boundary, audited
    r = dicomweb.get(user, study["ct_url"], headers=STORED, stream=True)
    assert r.status_code == 200
    body = b""
    try:
        for chunk in r.iter_content(1 << 16):
            body += chunk
    except requests.exceptions.RequestException:
        pass
    assert ct[0].PixelData in body
    assert not body.rstrip().endswith(b"--")
    # nothing sent yet: an error answer
    r = dicomweb.get(user, study["ct_url"], params={"offset": "1"}, headers=STORED)
    assert (r.status_code, r.json()["code"]) == (409, "frame_undecodable")
    with dicomweb.app.app_context():
        failed = uow.session().execute(select(AuditEvent).where(AuditEvent.event_type == "dicomweb_retrieve_failed"))
        events = [e for e in failed.scalars() if (e.details or {}).get("resource") == "pixeldata"]
        assert len(events) == 2
        assert {e.details["instances"][0]["sop_instance_uid"] for e in events} == {str(ct[1].SOPInstanceUID)}
    second.write_bytes(data)
