"""WADO-RS retrieve with a transcoding Accept when an instance cannot be decoded (issue 15; REQ: DSEC-10, VIEW
transport): never a "complete" multipart answer that silently lacks an instance.

- failing before the status goes out (the head of the list): 206 with a Warning naming what was left out, or 409
  when nothing is left (a single instance);
- failing after the body began: the body ends without its closing boundary and the connection is dropped (the
  chunked message is never terminated), so dicomweb-client fails; logged and audited (dicomweb_retrieve_failed).

The undecodable instance is a JPEG-lossless one whose encapsulation is valid but whose fragment is garbage. The same
holds for series metadata (a stored file gone) and rendered series (an undecodable image).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEGLosslessSV1, generate_uid
from sqlalchemy import select

from engine import uow
from engine.imaging import targets
from engine.imaging.models import Instance
from tests.dicom import synthetic
from tests.dicom.conftest import DCMTK, audit_events
from tests.dicomweb.conftest import DicomWeb

EXPLICIT = "1.2.840.10008.1.2.1"
TRANSCODE = f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT}'
AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'


@pytest.fixture(scope="module")
def jpeg_lossless(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small CT image compressed to JPEG lossless SV1 by DCMTK's dcmcjpeg."""
    tmp = tmp_path_factory.mktemp("jll")
    ds = synthetic.image(synthetic.base(synthetic.CT_IMAGE, modality="CT"))
    src, out = tmp / "raw.dcm", tmp / "jll.dcm"
    ds.save_as(src, enforce_file_format=True)
    res = subprocess.run([str(DCMTK / "dcmcjpeg"), "+e1", str(src), str(out)], capture_output=True, check=False)  # noqa: S603
    assert res.returncode == 0, res.stderr
    assert dcmread(out).file_meta.TransferSyntaxUID == JPEGLosslessSV1
    return out


def _series(template: Path, study: str, broken: set[int], n: int) -> list[Dataset]:
    """`n` JPEG-lossless instances of one new series of `study`; those numbered in `broken` (1-based) carry a
    fragment of random bytes of the same length (valid encapsulation, undecodable codestream)."""
    series = generate_uid()
    out = []
    for number in range(1, n + 1):
        ds = dcmread(template)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
        ds.SeriesNumber, ds.InstanceNumber = 1, number
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if number in broken:
            fragment = next(generate_frames(ds.PixelData, number_of_frames=1))
            ds.PixelData = encapsulate([os.urandom(len(fragment))])
        out.append(ds)
    return out


def _read_until_dropped(r: requests.Response) -> tuple[bytes, bool]:
    """The body bytes a streamed response delivered, and whether the connection broke before the message ended."""
    got = bytearray()
    try:
        for chunk in r.iter_content(chunk_size=None):
            got += chunk
    except requests.exceptions.ChunkedEncodingError:
        return bytes(got), True
    return bytes(got), False


def _boundary(r: requests.Response) -> bytes:
    return r.headers["Content-Type"].split("boundary=")[1].split(";")[0].strip('"').encode()


# REQ: DSEC-10
def test_instance_failing_mid_stream_cuts_the_body_short_and_is_audited(
    dicomweb: DicomWeb, jpeg_lossless: Path
) -> None:
    study = generate_uid()
    series = _series(jpeg_lossless, study, broken={2}, n=3)
    dicomweb.seed(series, institution="M01")
    user, client = dicomweb.client("requester", institution_code="M01")
    path = f"/dicomweb/studies/{study}/series/{series[0].SeriesInstanceUID}"

    r = dicomweb.get(user, path, headers={"Accept": TRANSCODE}, stream=True)
    assert r.status_code == 200  # the first instance decoded: the body began
    body, dropped = _read_until_dropped(r)
    marker = b"--" + _boundary(r)
    assert dropped, "the chunked message must not be terminated"
    assert body.count(marker) == 1  # the first part only ...
    assert marker + b"--" not in body  # ... and no closing boundary
    client.set_http_retry_params(retry=False)  # it would try five times (with back-off), then raise the same
    with pytest.raises(requests.exceptions.RequestException):  # the client notices; no silent two-of-three
        client.retrieve_series(study, str(series[0].SeriesInstanceUID), media_types=(("application/dicom", EXPLICIT),))

    events = audit_events(dicomweb.app, "dicomweb_retrieve_failed")
    assert len(events) == 2  # each cut-short retrieve, once
    event = events[0]
    assert event.outcome == "failure"
    assert event.username == user.username
    assert event.details["study_instance_uid"] == study
    assert event.details["sent_before_failure"] == 1
    assert event.details["instances"][0]["sop_instance_uid"] == str(series[1].SOPInstanceUID)
    assert event.details["dicom_event"] == "110104"

    # as stored nothing needs decoding: all three, closing boundary included
    r = dicomweb.get(user, path, headers={"Accept": AS_STORED})
    assert r.status_code == 200
    assert r.content.count(b"--" + _boundary(r)) == 4
    assert r.content.endswith(b"--" + _boundary(r) + b"--\r\n")


# REQ: DSEC-10
def test_instances_failing_before_the_body_answer_206_or_409(dicomweb: DicomWeb, jpeg_lossless: Path) -> None:
    study = generate_uid()
    series = _series(jpeg_lossless, study, broken={1}, n=2)
    dicomweb.seed(series, institution="M01")
    user, client = dicomweb.client("requester", institution_code="M01")
    series_uid, broken, good = (str(series[0].SeriesInstanceUID), str(series[0].SOPInstanceUID), series[1])

    r = dicomweb.get(user, f"/dicomweb/studies/{study}/series/{series_uid}", headers={"Accept": TRANSCODE})
    assert r.status_code == 206  # PS3.18 §8.6.1: partial, and said so
    assert "1 instances could not be converted" in r.headers["Warning"]
    parts = list(client._decode_multipart_message(r, stream=False))
    assert len(parts) == 1
    assert r.content.endswith(b"--" + _boundary(r) + b"--\r\n")
    assert str(good.SOPInstanceUID).encode() in parts[0]

    r = dicomweb.get(
        user, f"/dicomweb/studies/{study}/series/{series_uid}/instances/{broken}", headers={"Accept": TRANSCODE}
    )
    assert r.status_code == 409  # nothing to send: an error, not an empty 200
    assert r.json()["code"] == "instance_undecodable"
    assert r.json()["details"]["instances"] == [broken]
    assert "传输语法" in r.json()["message"]

    events = audit_events(dicomweb.app, "dicomweb_retrieve_failed")
    assert len(events) == 2  # the 206 and the 409 (replayed after the error answer's rollback)
    assert {e.details["instances"][0]["sop_instance_uid"] for e in events} == {broken}
    assert sorted(str(e.details["sent_before_failure"]) for e in events) == ["0", "None"]


# REQ: DSEC-10
def test_metadata_and_rendered_are_never_silently_shorter(dicomweb: DicomWeb, jpeg_lossless: Path) -> None:
    """The same rule for the other multi-instance answers: series rendered with an undecodable instance, and series
    metadata with a stored file gone, end without their closing boundary / bracket; frames past the end of an
    instance answer 404 before any byte, as /frames does."""
    study = generate_uid()
    series = _series(jpeg_lossless, study, broken={2}, n=3)
    dicomweb.seed(series, institution="M01")
    user = dicomweb.user("requester", institution_code="M01")
    path = f"/dicomweb/studies/{study}/series/{series[0].SeriesInstanceUID}"

    r = dicomweb.get(user, f"{path}/rendered", headers={"Accept": 'multipart/related; type="image/png"'}, stream=True)
    assert r.status_code == 200
    body, dropped = _read_until_dropped(r)
    assert dropped
    assert body.count(b"--" + _boundary(r)) == 1  # the first image, then nothing
    sop = str(series[0].SOPInstanceUID)
    r = dicomweb.get(user, f"{path}/instances/{sop}/frames/1,2/rendered", headers={"Accept": "image/png"})
    assert (r.status_code, r.json()["code"]) == (404, "frame_not_found")  # was a 200 with one image

    with dicomweb.app.app_context():
        gone = [targets.instance_path(i) for i in uow.session().execute(select(Instance)).scalars()]
        uow.session().rollback()
    third = next(p for p in gone if dcmread(p, stop_before_pixels=True).InstanceNumber == 3)
    third.unlink()
    r = dicomweb.get(user, f"{path}/metadata", headers={"Accept": "application/dicom+json"}, stream=True)
    assert r.status_code == 200
    body, dropped = _read_until_dropped(r)
    assert dropped
    assert body.startswith(b"[")
    assert not body.endswith(b"]")  # not valid JSON: a client cannot take two instances for the series

    events = audit_events(dicomweb.app, "dicomweb_retrieve_failed")
    assert [e.details["resource"] for e in events] == ["rendered", "metadata"]
    assert [e.details["sent_before_failure"] for e in events] == [1, 2]
