"""A series' pixel data negotiated as its frames are (engine/dicomweb/pixeldata.py through negotiate.py; issue 16;
REQ: VIEW-01, UX R18, DSEC-08): the viewer's LAN header on a JPEG-lossless series gets every frame uncompressed —
the bytes pydicom decodes, the bytes the frames route sends, not kept in the decoded-frame cache (a series streamed
once would only push out what per-frame readers use) — or as stored while the decoding pool is busy; a multi-frame
instance goes out in pieces; the stream keeps both sandbox decoders busy with at most one piece more waiting.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import JPEGLosslessSV1, generate_uid
from sqlalchemy import select

from engine import uow
from engine.dicomweb import decisions, frame_cache, negotiate, pixeldata, wado
from engine.dicomweb.media import Multipart, parse_accept
from engine.imaging import transcode
from engine.imaging.models import Study
from tests.dicom.conftest import DCMTK, sample_file
from tests.dicomweb.conftest import DicomWeb
from tests.dicomweb.test_pixeldata import key, parts

EXPLICIT = "1.2.840.10008.1.2.1"
OCTET_LE = f'multipart/related; type="application/octet-stream"; transfer-syntax={EXPLICIT}'
OCTET_ANY = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
LAN = {"Accept": f"{OCTET_LE}, {OCTET_ANY}; q=0.5"}  # web/src/viewer/core/frameSyntax.ts, JPEG lossless on a LAN
SLICES = 6


@pytest.fixture(autouse=True)
def _fresh_decisions() -> None:
    decisions.clear()


@pytest.fixture
def jll(dicomweb: DicomWeb, tmp_path: Path) -> dict[str, Any]:
    """Member hospital M01's CT series of SLICES JPEG-lossless slices (distinct pixels, compressed by dcmcjpeg)."""
    study_uid, series_uid = generate_uid(), generate_uid()
    slices: list[Dataset] = []
    for i in range(SLICES):
        ds = dcmread(sample_file("CT_small.dcm"))
        ds.PixelData = (ds.pixel_array + i * 7).astype(ds.pixel_array.dtype).tobytes()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study_uid, series_uid, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        raw, out = tmp_path / f"raw{i}.dcm", tmp_path / f"jll{i}.dcm"
        ds.save_as(raw, enforce_file_format=True)
        res = subprocess.run([str(DCMTK / "dcmcjpeg"), "+e1", str(raw), str(out)], capture_output=True, check=False)  # noqa: S603
        assert res.returncode == 0, res.stderr
        slices.append(dcmread(out))
    assert slices[0].file_meta.TransferSyntaxUID == JPEGLosslessSV1
    dicomweb.seed(slices, institution="M01")
    return {
        "uid": study_uid,
        "series": series_uid,
        "slices": slices,
        "url": f"/dicomweb/studies/{study_uid}/series/{series_uid}/pixeldata",
    }


def test_view01_lan_header_gets_the_series_uncompressed_as_its_frames_and_not_cached(
    dicomweb: DicomWeb, jll: dict[str, Any]
) -> None:
    user = dicomweb.user("requester", institution_code="M01")
    cache = frame_cache.cache()
    assert cache is not None
    cache.clear()
    r = dicomweb.get(user, jll["url"], headers=LAN)
    assert r.status_code == 200
    got = parts(r)
    assert [key(h) for h, _ in got] == [(str(ds.SOPInstanceUID), 1) for ds in jll["slices"]]
    for (headers, data), ds in zip(got, jll["slices"], strict=True):
        assert headers["content-type"] == f"application/octet-stream; transfer-syntax={EXPLICIT}"
        want = np.asarray(ds.pixel_array)
        assert np.array_equal(np.frombuffer(data, want.dtype.newbyteorder("<")).reshape(want.shape), want)
    # the bulk stream left the decoded-frame cache alone; the frames route, asked alike, answers the same bytes
    assert cache.size == 0
    hits, misses = cache.hits, cache.misses
    for headers, data in got:
        path = "/" + headers["content-location"].split("127.0.0.1", 1)[1].split("/", 1)[1]
        single = dicomweb.get(user, path, headers=LAN)
        assert parts(single)[0][1] == data
    assert (cache.hits - hits, cache.misses - misses) == (0, SLICES)


def test_view01_lan_header_gets_the_stored_syntax_while_the_decoders_are_busy(
    dicomweb: DicomWeb, jll: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    user = dicomweb.user("requester", institution_code="M01")
    monkeypatch.setattr(negotiate, "decoder_busy", lambda: True)
    got = parts(dicomweb.get(user, jll["url"], headers=LAN))
    assert [h["content-type"] for h, _ in got] == [f"application/octet-stream; transfer-syntax={JPEGLosslessSV1}"] * 6
    assert [d for _, d in got] == [next(generate_frames(ds.PixelData, number_of_frames=1)) for ds in jll["slices"]]
    # a client that takes nothing but uncompressed frames gets them decoded all the same
    only = parts(dicomweb.get(user, jll["url"], headers={"Accept": OCTET_LE}))
    assert {h["content-type"] for h, _ in only} == {f"application/octet-stream; transfer-syntax={EXPLICIT}"}


def test_view01_a_multi_frame_instance_goes_out_in_pieces(
    dicomweb: DicomWeb, jll: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    user = dicomweb.user("requester", institution_code="M01")
    rle = dcmread(sample_file("SC_rgb_rle_2frame.dcm"))
    rle.StudyInstanceUID, rle.SeriesInstanceUID, rle.SOPInstanceUID = jll["uid"], generate_uid(), generate_uid()
    rle.file_meta.MediaStorageSOPInstanceUID = rle.SOPInstanceUID
    dicomweb.seed([rle], institution="M01")
    calls: list[list[int]] = []
    real = negotiate.frame_bytes_in

    def counted(plan: Any, ref: Any, index: Any, numbers: list[int], keep: bool = True) -> Any:
        calls.append(list(numbers))
        return real(plan, ref, index, numbers, keep)

    monkeypatch.setattr(negotiate, "frame_bytes_in", counted)
    monkeypatch.setattr(pixeldata, "FRAME_BYTES_PER_CALL", 1)  # a frame per call
    url = f"/dicomweb/studies/{jll['uid']}/series/{rle.SeriesInstanceUID}/pixeldata"
    got = parts(dicomweb.get(user, url, headers={"Accept": OCTET_LE}))
    want = np.asarray(rle.pixel_array)
    assert [key(h)[1] for h, _ in got] == [1, 2]
    for i, (_h, data) in enumerate(got):
        assert np.array_equal(np.frombuffer(data, np.uint8).reshape(want.shape[1:]), want[i])
    assert calls == [[1], [2]]


def test_dsec08_the_stream_keeps_both_decoders_busy_and_holds_a_few_instances(
    dicomweb: DicomWeb, jll: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Engine level (no socket buffers in between): each decode takes ≥ 0.1 s here, so overlapping calls show."""
    workers = transcode.transcoder().workers
    assert workers >= 2  # the sandbox pool of this machine (one per core, at most 4)
    state = {"now": 0, "most": 0, "started": 0}
    lock = threading.Lock()
    real = negotiate.frame_bytes_in

    def slow(plan: Any, ref: Any, index: Any, numbers: list[int], keep: bool = True) -> Any:
        with lock:
            state["now"] += 1
            state["started"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            time.sleep(0.1)
            return real(plan, ref, index, numbers, keep)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(negotiate, "frame_bytes_in", slow)
    frame_cache.cache().clear()  # type: ignore[union-attr]
    with dicomweb.app.app_context():
        study = uow.session().execute(select(Study).where(Study.study_instance_uid == jll["uid"])).scalar_one()
        refs = wado.select_instances(study, jll["series"])
        uow.session().rollback()
    ranges = parse_accept(LAN["Accept"])
    plans = pixeldata.plan_all(refs, ranges)
    assert {p.stored for p in plans.values() if p is not None} == {False}
    stream = pixeldata.FrameStream(refs, plans, Multipart("application/octet-stream"), "http://x", ranges)
    assert stream.start()
    time.sleep(0.5)  # the client reads nothing: the stream asks for at most `workers + 1` pieces ahead
    assert state["started"] <= workers + 2
    body = b"".join(stream.body())
    assert body.count(b"Content-Location:") == SLICES
    assert state["most"] == workers  # decoding overlapped on every decoder
    assert state["started"] == SLICES
