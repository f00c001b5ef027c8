"""WADO-RS and WADO-URI over real HTTP with dicomweb-client (REQ: VIEW transport, DCM-04, AC-02, DSEC-08, WEB-04;
issue 15): one study of MR (uncompressed), MR RLE, CT JPEG lossless (dcmcjpeg), JPEG 2000, JPEG baseline, SR and a
two-frame RLE image, stored through the archive's indexing path; retrieved as stored (byte equality with the stored
file) and transcoded (pixel equality, lossy within tolerance), metadata with fetchable BulkDataURIs and Range
requests, frames, rendered and thumbnail images decoded with Pillow, WADO-URI, and what nobody else may see.
"""

from __future__ import annotations

import io
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from flask import Flask
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEGLosslessSV1, generate_uid
from sqlalchemy import select

from engine import uow
from engine.audit import AuditEvent
from engine.imaging import targets
from engine.imaging.models import Instance
from tests.dicom.archive import ingest
from tests.dicom.conftest import DCMTK, add_node, sample_file
from tests.factories import make_user

JPEG_LOSSY_TOLERANCE = 4  # two JPEG decoders differ by a few levels (tests/dicom/test_retrieve_transcode.py)
SOURCES = {  # kind → (pydicom test file, lossy)
    "mr": ("MR_small.dcm", False),
    "mr_rle": ("MR_small_RLE.dcm", False),
    "ct_jll": ("CT_small.dcm", False),  # compressed to JPEG lossless SV1 by dcmcjpeg
    "j2k": ("JPEG2000.dcm", True),
    "jpeg": ("SC_rgb_dcmtk_+eb+cy+s2.dcm", True),  # JPEG baseline, YBR_FULL_422
    "sr": ("test-SR.dcm", False),
    "multi": ("SC_rgb_rle_2frame.dcm", False),
}
EXPLICIT = "1.2.840.10008.1.2.1"


@pytest.fixture
def live(app: Flask) -> Iterator[str]:
    """The test app served by werkzeug's threaded server on a free loopback port (until tests/dicomweb/conftest.py's
    live-server fixture lands)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()


def _session(app: Flask, base: str, institution: str = "M01") -> requests.Session:
    user = make_user(app, "requester", institution_code=institution)
    s = requests.Session()
    r = s.post(f"{base}/api/auth/login", json={"username": user.username, "password": user.password}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "active", r.text
    return s


def _dataset(kind: str, study: str, tmp: Path) -> Dataset:
    path = sample_file(SOURCES[kind][0])
    if kind == "ct_jll":
        out = tmp / "ct_jll.dcm"
        res = subprocess.run([str(DCMTK / "dcmcjpeg"), "+e1", str(path), str(out)], capture_output=True, check=False)  # noqa: S603
        assert res.returncode == 0, res.stderr
        path = out
    ds = dcmread(path)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


@pytest.fixture
def study(app: Flask, tmp_path: Path) -> dict[str, Any]:
    """The mixed study of member hospital M01, indexed as the receive service does."""
    node = add_node(app, "MODALITY1")
    uid = generate_uid()
    datasets = {kind: _dataset(kind, uid, tmp_path) for kind in SOURCES}
    assert datasets["ct_jll"].file_meta.TransferSyntaxUID == JPEGLosslessSV1
    ingest(app, node, list(datasets.values()))
    with app.app_context():
        rows = uow.session().execute(select(Instance)).scalars().all()
        stored = {r.sop_instance_uid: targets.instance_path(r) for r in rows}
        uow.session().rollback()
    ids = {kind: (str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)) for kind, ds in datasets.items()}
    return {"uid": uid, "ds": datasets, "ids": ids, "stored": {k: stored[v[1]] for k, v in ids.items()}}


def _reference(ds: Dataset) -> np.ndarray[Any, Any]:
    if ds.file_meta.TransferSyntaxUID in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"):
        ds.pixel_array_options(decoding_plugin="pillow", as_rgb=True)
    return np.asarray(ds.pixel_array)


def _from_json(doc: dict[str, Any]) -> Dataset:
    return Dataset.from_json(doc, bulk_data_uri_handler=lambda _tag, _vr, _uri: b"")


def _kind(study: dict[str, Any], sop: str) -> str:
    return next(k for k, (_s, i) in study["ids"].items() if i == sop)


def test_wado_retrieve_as_stored_is_the_stored_file_and_transcoded_pixels_equal(
    app: Flask, live: str, study: dict[str, Any]
) -> None:
    client = DICOMwebClient(f"{live}/dicomweb", session=_session(app, live))
    # transfer-syntax=*: every instance as stored, byte for byte the stored Part-10 file
    r = client._http_get(
        f"{live}/dicomweb/studies/{study['uid']}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-store"
    parts = list(client._decode_multipart_message(r, stream=False))
    assert len(parts) == len(SOURCES)
    for part in parts:
        kind = _kind(study, str(dcmread(io.BytesIO(part), stop_before_pixels=True).SOPInstanceUID))
        assert part == study["stored"][kind].read_bytes(), kind
    # the default (explicit VR little endian): compressed instances decoded, pixels as pydicom decodes them
    got = client.retrieve_study(study["uid"])
    assert len(got) == len(SOURCES)
    for ds in got:
        kind = _kind(study, str(ds.SOPInstanceUID))
        assert ds.file_meta.TransferSyntaxUID == EXPLICIT, kind
        if kind == "sr":
            assert "PixelData" not in ds
            continue
        want = _reference(study["ds"][kind])
        if SOURCES[kind][1]:
            assert ds.LossyImageCompression == "01"
            assert np.abs(ds.pixel_array.astype(int) - want.astype(int)).max() <= JPEG_LOSSY_TOLERANCE, kind
        else:
            assert np.array_equal(ds.pixel_array, want), kind
    # series and instance level; the stored syntax named explicitly
    series, sop = study["ids"]["ct_jll"]
    [one] = client.retrieve_series(study["uid"], series, media_types=(("application/dicom", JPEGLosslessSV1),))
    assert one.file_meta.TransferSyntaxUID == JPEGLosslessSV1
    inst = client.retrieve_instance(study["uid"], *study["ids"]["mr"])
    assert inst.SOPInstanceUID == study["ids"]["mr"][1]
    # JPEG 2000 only: nothing in the series is stored so and telerad never compresses: 406
    r = client._session.get(
        f"{live}/dicomweb/studies/{study['uid']}/series/{series}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90'},
    )
    assert r.status_code == 406
    assert r.json()["code"] == "not_acceptable"


def test_wado_metadata_round_trip_with_fetchable_bulk_data_and_ranges(
    app: Flask, live: str, study: dict[str, Any]
) -> None:
    s = _session(app, live)
    client = DICOMwebClient(f"{live}/dicomweb", session=s)
    meta = client.retrieve_study_metadata(study["uid"])
    assert len(meta) == len(SOURCES)
    by_sop = {_from_json(m).SOPInstanceUID: m for m in meta}
    series, sop = study["ids"]["mr"]
    doc = by_sop[sop]
    ds = _from_json(doc)
    assert ds.PatientName == study["ds"]["mr"].PatientName
    assert ds.Rows == 64
    # absolute, from the request's Host — which dicomweb-client sends without the port (web.py: `headers['Host'] =
    # self.host`); the live server's port is put back here
    uri = doc["7FE00010"]["BulkDataURI"].replace("http://127.0.0.1/", f"{live}/", 1)
    assert uri.endswith(f"/instances/{sop}/bulkdata/7FE00010")
    pixels = study["ds"]["mr"].PixelData
    whole = client.retrieve_bulkdata(uri)[0]
    assert whole == pixels
    # Range: a slice (206, Content-Range); past the end: 416
    r = s.get(uri, headers={"Accept": "application/octet-stream", "Range": "bytes=100-199"}, timeout=10)
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes 100-199/{len(pixels)}"
    assert r.content == pixels[100:200]
    assert client.retrieve_bulkdata(uri, byte_range=(10, 19))[0] == pixels[10:20]
    r = s.get(uri, headers={"Range": f"bytes={len(pixels)}-"}, timeout=10)
    assert r.status_code == 416
    assert r.json()["code"] == "range_not_satisfiable"
    # series and instance level, and metadata never carries pixel data inline
    inst = client.retrieve_instance_metadata(study["uid"], series, sop)
    assert inst == doc
    assert all("InlineBinary" not in m.get("7FE00010", {}) for m in meta)


def test_wado_frames_as_stored_native_and_out_of_range(app: Flask, live: str, study: dict[str, Any]) -> None:
    s = _session(app, live)
    client = DICOMwebClient(f"{live}/dicomweb", session=s)
    series, sop = study["ids"]["multi"]
    src = study["ds"]["multi"]
    stored = list(generate_frames(src.PixelData, number_of_frames=2))
    got = client.retrieve_instance_frames(study["uid"], series, sop, [2, 1], media_types=(("image/dicom-rle", "*"),))
    assert got == [stored[1], stored[0]]  # cut from the file, not decoded
    octet = (("application/octet-stream", EXPLICIT),)
    native = client.retrieve_instance_frames(study["uid"], series, sop, [1, 2], media_types=octet)  # decoded
    want = _reference(src)
    assert len(native) == 2
    assert all(
        np.array_equal(np.frombuffer(f, np.uint8).reshape(want.shape[1:]), want[i]) for i, f in enumerate(native)
    )
    mr_series, mr_sop = study["ids"]["mr"]
    [frame] = client.retrieve_instance_frames(study["uid"], mr_series, mr_sop, [1], media_types=octet)
    assert frame == study["ds"]["mr"].PixelData
    # octet-stream with transfer-syntax=* (what viewers ask for): as stored, labelled with the stored syntax
    jll_series, jll_sop = study["ids"]["ct_jll"]
    jll = f"{live}/dicomweb/studies/{study['uid']}/series/{jll_series}/instances/{jll_sop}/frames/1"
    r = s.get(
        jll, headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}, timeout=30
    )
    assert r.status_code == 200
    assert f"transfer-syntax={JPEGLosslessSV1}" in r.content[:400].decode("latin-1")
    [part] = list(client._decode_multipart_message(r, stream=False))
    assert part == next(generate_frames(study["ds"]["ct_jll"].PixelData, number_of_frames=1))
    base = f"{live}/dicomweb/studies/{study['uid']}/series/{series}/instances/{sop}/frames"
    assert s.get(f"{base}/3", timeout=10).status_code == 404
    assert s.get(f"{base}/0,x", timeout=10).json()["code"] == "bad_frame_list"
    r = s.get(f"{base}/1", headers={"Accept": 'multipart/related; type="image/jp2"'}, timeout=10)
    assert r.status_code == 406  # never re-compressed


def test_wado_rendered_thumbnail_and_wado_uri(app: Flask, live: str, study: dict[str, Any]) -> None:
    s = _session(app, live)
    series, sop = study["ids"]["mr"]
    base = f"{live}/dicomweb/studies/{study['uid']}/series/{series}/instances/{sop}"
    r = s.get(f"{base}/rendered", headers={"Accept": "image/png"}, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "image/png"
    img = np.asarray(Image.open(io.BytesIO(r.content)))
    assert img.shape == (64, 64)
    # a narrow window around a known pixel's value: it is mid-grey, one below it black
    px = study["ds"]["mr"].pixel_array
    value = int(px[32, 32])
    r = s.get(f"{base}/rendered", params={"window": f"{value},101"}, headers={"Accept": "image/png"}, timeout=10)
    win = np.asarray(Image.open(io.BytesIO(r.content)))
    assert abs(int(win[32, 32]) - 128) <= 2
    assert all(win[px < value - 60] == 0)
    assert all(win[px > value + 60] == 255)
    r = s.get(f"{base}/thumbnail", params={"viewport": "32,16"}, timeout=10)
    thumb = Image.open(io.BytesIO(r.content))
    assert (thumb.format, thumb.size) == ("JPEG", (16, 16))
    jpeg_series, jpeg_sop = study["ids"]["jpeg"]
    r = s.get(f"{live}/dicomweb/studies/{study['uid']}/series/{jpeg_series}/thumbnail", timeout=10)
    assert Image.open(io.BytesIO(r.content)).mode == "RGB"
    assert max(Image.open(io.BytesIO(r.content)).size) == 128
    # WADO-URI: the instance (as stored when asked) and a rendered JPEG
    q = {"requestType": "WADO", "studyUID": study["uid"], "seriesUID": series, "objectUID": sop}
    r = s.get(f"{live}/dicomweb/wado", params={**q, "contentType": "application/dicom"}, timeout=10)
    assert r.status_code == 200
    assert r.content == study["stored"]["mr"].read_bytes()
    r = s.get(f"{live}/dicomweb/wado", params={**q, "rows": "32"}, timeout=10)
    assert r.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (32, 32)
    ct_series, ct_sop = study["ids"]["ct_jll"]
    q = {"requestType": "WADO", "studyUID": study["uid"], "seriesUID": ct_series, "objectUID": ct_sop}
    r = s.get(f"{live}/dicomweb/wado", params={**q, "contentType": "application/dicom"}, timeout=30)
    got = dcmread(io.BytesIO(r.content))
    assert got.file_meta.TransferSyntaxUID == EXPLICIT
    assert np.array_equal(got.pixel_array, _reference(study["ds"]["ct_jll"]))
    assert (
        s.get(f"{live}/dicomweb/wado", params={"requestType": "WADO"}, timeout=10).json()["code"] == "missing_parameter"
    )


def test_wado_invisible_study_is_404_and_a_corrupt_frame_fails_alone(
    app: Flask, live: str, study: dict[str, Any], tmp_path: Path
) -> None:
    other = _session(app, live, institution="M02")
    series, sop = study["ids"]["mr"]
    for path in ("", "/metadata", f"/series/{series}/instances/{sop}/frames/1", "/rendered"):
        r = other.get(f"{live}/dicomweb/studies/{study['uid']}{path}", timeout=10)
        assert r.status_code == 404, path
        assert r.json()["code"] == "not_found", path  # engine/dicomweb/resolve.py, as QIDO
    with app.app_context():
        alerts = (
            uow.session().execute(select(AuditEvent).where(AuditEvent.event_type == "security_alert")).scalars().all()
        )
        assert len([a for a in alerts if a.object_id == study["uid"]]) == 4
    # a two-frame RLE instance whose second frame's RLE header points past its end (it crashes imagecodecs' decoder:
    # the sandbox takes the blow)
    ds = _dataset("multi", study["uid"], tmp_path)
    first = next(generate_frames(ds.PixelData, number_of_frames=2))
    bad = struct.pack("<16I", 3, 64, 10**6, 10**7, *([0] * 12)) + b"\x00" * 16
    ds.PixelData = encapsulate([first, bad])
    ingest(app, add_node(app, "MODALITY2"), [ds])
    s = _session(app, live)
    client = DICOMwebClient(f"{live}/dicomweb", session=s)
    base = f"{live}/dicomweb/studies/{study['uid']}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    r = s.get(
        f"{base}/frames/1,2", headers={"Accept": 'multipart/related; type="application/octet-stream"'}, timeout=30
    )
    assert r.status_code == 206
    assert "frames 2" in r.headers["Warning"]
    parts = list(client._decode_multipart_message(r, stream=False))
    assert len(parts) == 1
    assert np.array_equal(np.frombuffer(parts[0], np.uint8), _reference(study["ds"]["multi"])[0].ravel())
    r = s.get(f"{base}/frames/2", headers={"Accept": "application/octet-stream"}, timeout=30)
    assert r.status_code == 409
    assert r.json()["code"] == "frame_undecodable"
    assert s.get(f"{base}/frames/2", headers={"Accept": "image/dicom-rle"}, timeout=30).status_code == 200  # as stored
