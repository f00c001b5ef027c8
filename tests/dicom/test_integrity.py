"""A C-STORE success means a whole, parseable instance (issue 12 §1; REQ: DSEC-05, DSEC-08, SECURITY.md §C1).

Every data set of the broken corpus (tests/dicom/broken.py) is sent by a raw-PDU client and by pynetdicom: refused
with 0xC000 and an Error Comment, no row, no file after the orphan sweep, the same association then stores a valid
instance, the server stays alive and the next association stores normally. Three broken data sets from one device
within 10 minutes raise one security alert. The valid corpus — pydicom test files of allowlisted SOP classes,
native, RLE, JPEG family, JPEG-LS, JPEG 2000, multi-frame, 1-bit, YBR — is stored (the validator on every file is
in test_validate.py). A 200 MB multi-frame cut at 90 % is refused with bounded memory (`make test-long`).
"""

from __future__ import annotations

import struct
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.dsutils import decode
from sqlalchemy import select

from dicom import status
from dicom.scp import Running
from engine import uow
from engine.actor import Actor
from engine.imaging import ingest
from engine.imaging.models import Instance
from tests.dicom import broken, rawpdu, synthetic
from tests.dicom.conftest import add_node, associate, audit_events, count, echo_ok, rows, store
from tests.dicom.rawpdu import A_ASSOCIATE_AC, P_DATA_TF, RawAssociation

CASES = broken.cases()
VERIFICATION = rawpdu.VERIFICATION
GOOD_CONTEXT = (synthetic.CT_IMAGE, rawpdu.EXPLICIT_LE)
PDV_MAX = 16000  # below the SCP's maximum PDU


# -- senders ---------------------------------------------------------------------------------------------------------
def _read_response(conn: RawAssociation) -> Dataset | None:
    """The next complete DIMSE command set the SCP sends (None: it closed or aborted)."""
    fragments = b""
    while True:
        reply = conn.read()
        if reply is None or reply.kind != P_DATA_TF:
            return None
        for _cid, ctrl, frag in rawpdu.pdvs(reply.body):
            if ctrl & 1:
                fragments += frag
                if ctrl & 2:
                    return decode(BytesIO(fragments), True, True)


def _raw_store(
    conn: RawAssociation, cid: int, sop_class: str, sop_instance: str, body: bytes, msg: int
) -> Dataset | None:
    conn.send(rawpdu.pdata((cid, 0x03, rawpdu.store_rq(sop_class, sop_instance, msg))))
    chunks = [body[i : i + PDV_MAX] for i in range(0, len(body), PDV_MAX)] or [b""]
    for i, chunk in enumerate(chunks):
        conn.send(rawpdu.pdata((cid, 0x02 if i == len(chunks) - 1 else 0x00, chunk)))
    return _read_response(conn)


def send_raw(port: int, case: broken.Case, good: Path) -> tuple[Dataset | None, Dataset | None]:
    """The broken case, then a valid CT on the same association, by hand-built PDUs; both responses."""
    contexts = [(1, case.sop_class, [case.transfer_syntax]), (3, GOOD_CONTEXT[0], [GOOD_CONTEXT[1]])]
    with RawAssociation(port, timeout=10) as conn:
        conn.send(rawpdu.associate_rq(contexts=contexts))
        reply = conn.read()
        assert reply is not None
        assert reply.kind == A_ASSOCIATE_AC
        assert rawpdu.accepted_contexts(reply.body) == {1: 0, 3: 0}
        first = _raw_store(conn, 1, case.sop_class, case.sop_instance, case.body, 1)
        ds = dcmread(good)
        second = _raw_store(conn, 3, GOOD_CONTEXT[0], str(ds.SOPInstanceUID), rawpdu.dataset_bytes(ds), 2)
        conn.send(rawpdu.pdu(rawpdu.A_RELEASE_RQ, b"\0\0\0\0"))
        released = conn.read()
        assert released is not None
        assert released.kind == rawpdu.A_RELEASE_RP
    return first, second


def send_pynetdicom(port: int, files: list[Path], contexts: list[tuple[str, list[str]]]) -> list[Dataset | None]:
    """Part-10 files sent by pynetdicom as their bytes (STORE_SEND_CHUNKED_DATASET), over one association."""
    from pynetdicom import _config

    saved = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    assoc = associate(port, "MODALITY1", contexts)
    try:
        assert assoc.is_established
        return [assoc.send_c_store(str(f)) or None for f in files]
    finally:
        assoc.release()
        _config.STORE_SEND_CHUNKED_DATASET = saved


# -- checks ----------------------------------------------------------------------------------------------------------
def _refused(rsp: Dataset | None) -> str:
    """Refused with 0xC000 and an ASCII Error Comment (≤ 64 characters); the comment."""
    assert rsp is not None, "no response: the SCP should answer a broken data set, not drop the association"
    assert rsp.Status == status.STORE_CANNOT_UNDERSTAND, hex(rsp.Status)
    comment = str(rsp.get("ErrorComment", ""))
    assert comment
    assert len(comment) <= 64
    assert comment.isascii()
    return comment


def _sweep_leaves_only_indexed(app: Flask, scp: Running) -> None:
    """After the orphan sweep: no temp file, and the store holds exactly the indexed files (REQ: DSEC-05)."""
    with app.app_context(), uow.unit_of_work():
        ingest.sweep_store(Actor.system("test"), scp.ctx.store, 0)
    assert list(scp.ctx.store.tmp_dir.iterdir()) == []
    indexed = {key for (key,) in rows(app, select(Instance.storage_key))}
    assert {key for key, _ in scp.ctx.store.iter_keys()} == indexed


def _healthy(app: Flask, scp: Running, tmp_path: Path) -> None:
    """The next association stores normally and C-ECHO answers."""
    assert echo_ok(scp.port, "MODALITY1")
    before = count(app, Instance)
    assert store(scp.port, "MODALITY1", [synthetic.ct(tmp_path / f"next-{generate_uid()}.dcm")]) == [status.SUCCESS]
    assert count(app, Instance) == before + 1


# -- the broken corpus -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_dsec08_broken_dataset_refused_by_raw_and_pynetdicom_store(
    app: Flask, scp: Running, modality: str, tmp_path: Path, case: broken.Case
) -> None:
    # Raw PDUs: refused with a comment, then a valid CT on the same association is stored.
    first, second = send_raw(scp.port, case, synthetic.ct(tmp_path / "good-raw.dcm"))
    _refused(first)
    assert second is not None
    assert second.Status == status.SUCCESS
    # pynetdicom: the same broken bytes behind a valid File Meta Information, then a valid CT.
    path = tmp_path / "broken.dcm"
    path.write_bytes(case.part10())
    good = synthetic.ct(tmp_path / "good-pynetdicom.dcm")
    contexts = [(case.sop_class, [case.transfer_syntax]), (GOOD_CONTEXT[0], [GOOD_CONTEXT[1]])]
    rsp_broken, rsp_good = send_pynetdicom(scp.port, [path, good], contexts)
    _refused(rsp_broken)
    assert rsp_good is not None
    assert rsp_good.Status == status.SUCCESS
    # No row for it, nothing left behind, two audited refusals with the validator's code and a Chinese reason.
    assert count(app, Instance, Instance.sop_instance_uid == case.sop_instance) == 0
    assert count(app, Instance) == 2
    failures = audit_events(app, "dicom_store_failed")
    assert len(failures) == 2
    for event in failures:
        assert event.reason is not None
        assert event.reason.startswith(ingest.BROKEN_REASON_PREFIX)
        code = (event.details or {}).get("code", "")
        assert code == case.code if case.code else code.startswith("dataset_"), code
    _sweep_leaves_only_indexed(app, scp)
    _healthy(app, scp, tmp_path)


def _send_broken_as(port: int, aet: str, path: Path, contexts: list[tuple[str, list[str]]]) -> None:
    from pynetdicom import _config

    saved = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    assoc = associate(port, aet, contexts)
    try:
        assert assoc.is_established
        _refused(assoc.send_c_store(str(path)))
    finally:
        assoc.release()
        _config.STORE_SEND_CHUNKED_DATASET = saved


def test_dsec08_three_broken_datasets_from_one_device_in_10_minutes_raise_one_alert(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    add_node(app, "MODALITY2")
    case = next(c for c in CASES if c.name == "cut_inside_native_pixel_data")
    path = tmp_path / "broken.dcm"
    path.write_bytes(case.part10())
    contexts = [(case.sop_class, [case.transfer_syntax])]

    def alerts() -> list[Any]:
        return [e for e in audit_events(app, "security_alert") if (e.details or {}).get("code") == "broken_datasets"]

    for _ in range(2):  # two each from MODALITY1 and MODALITY2, one association each: nobody has three yet
        for aet in ("MODALITY1", "MODALITY2"):
            _send_broken_as(scp.port, aet, path, contexts)
    assert alerts() == []
    _send_broken_as(scp.port, "MODALITY1", path, contexts)  # MODALITY1's third within the window
    found = alerts()
    assert len(found) == 1
    assert found[0].object_type == "dicom_node"
    assert found[0].username == "dicom:MODALITY1"
    assert found[0].details["count"] == 3
    assert "MODALITY1" in (found[0].reason or "")
    _send_broken_as(scp.port, "MODALITY1", path, contexts)  # a fourth in the same window: still one alert
    assert len(alerts()) == 1
    _healthy(app, scp, tmp_path)


def test_dsec08_broken_datasets_older_than_10_minutes_do_not_count(
    app: Flask, scp: Running, modality: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two refusals 11 minutes ago and one now: no alert (the window slides)."""
    from datetime import timedelta

    from engine import db

    case = next(c for c in CASES if c.name == "cut_inside_native_pixel_data")
    path = tmp_path / "broken.dcm"
    path.write_bytes(case.part10())
    contexts = [(case.sop_class, [case.transfer_syntax])]
    real_now = db.utcnow
    monkeypatch.setattr("engine.audit.utcnow", lambda: real_now() - timedelta(minutes=11))
    for _ in range(2):
        _send_broken_as(scp.port, "MODALITY1", path, contexts)
    monkeypatch.setattr("engine.audit.utcnow", real_now)
    _send_broken_as(scp.port, "MODALITY1", path, contexts)
    assert len(audit_events(app, "dicom_store_failed")) == 3
    assert [e for e in audit_events(app, "security_alert") if (e.details or {}).get("code") == "broken_datasets"] == []


# -- the valid corpus ------------------------------------------------------------------------------------------------
# A representative subset over C-STORE (every allowlisted pydicom file is checked by the validator in
# test_validate.py): native explicit/implicit, odd sizes, padded pixel data, YBR_FULL_422 native and JPEG, RLE
# single and multi-frame, JPEG baseline/extended/lossless SV1, JPEG-LS lossless and near-lossless, JPEG 2000
# lossless and lossy, a 50-frame JPEG, an SR. Sent as their bytes, unchanged (pydicom's JPEG-LS near-lossless files
# carry no Study Instance UID, so they are refused as instances; the validator passes them in test_validate.py).
VALID_STORED = [
    "CT_small.dcm",
    "MR_small_implicit.dcm",
    "SC_rgb_small_odd.dcm",
    "MR_small_padded.dcm",
    "SC_ybr_full_422_uncompressed.dcm",
    "MR_small_RLE.dcm",
    "SC_rgb_rle_2frame.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "SC_rgb_dcmtk_+eb+cy+np.dcm",
    "JPGExtended.dcm",
    "SC_rgb_jpeg_gdcm.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "examples_jpeg2k.dcm",
    "MR_small_jp2klossless.dcm",
    "693_J2KI.dcm",
    "examples_ybr_color.dcm",
    "test-SR.dcm",
]


@pytest.mark.parametrize("name", VALID_STORED)
def test_dsec08_valid_pydicom_file_is_stored_unchanged(app: Flask, scp: Running, modality: str, name: str) -> None:
    path = Path(str(get_testdata_file(name)))
    meta = dcmread(path, stop_before_pixels=True).file_meta
    (rsp,) = send_pynetdicom(scp.port, [path], [(str(meta.MediaStorageSOPClassUID), [str(meta.TransferSyntaxUID)])])
    assert rsp is not None
    assert rsp.Status == status.SUCCESS, hex(rsp.Status)
    ((key, sha256),) = rows(app, select(Instance.storage_key, Instance.sha256))
    assert scp.ctx.store.verify(key, sha256)
    assert audit_events(app, "dicom_store_failed") == []


def single_bit_multiframe(path: Path, rows_: int = 5, cols: int = 5, frames: int = 2) -> Path:
    """Multi-frame Single Bit SC: 5×5×2 = 50 bits → 7 bytes, padded to 8."""
    ds = synthetic.base("1.2.840.10008.5.1.4.1.1.7.1", modality="OT")
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows_, cols, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    nbytes = (rows_ * cols * frames + 7) // 8
    ds.PixelData = bytes(range(1, nbytes + 1)) + (b"\0" if nbytes % 2 else b"")
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dsec08_single_bit_multiframe_is_stored(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    path = single_bit_multiframe(tmp_path / "bits.dcm")
    assert store(scp.port, "MODALITY1", [path]) == [status.SUCCESS]
    assert count(app, Instance) == 1


# -- a 200 MB multi-frame cut at 90 % ----------------------------------------------------------------------------------
def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_dsec08_200mb_multiframe_cut_at_90_percent_refused_with_bounded_memory(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    """400 frames of 512×512 16-bit (200 MiB of Pixel Data) announced, 90 % of it sent, then the last fragment:
    refused, no row, no file; the SCP (this process) never holds the data set in memory."""
    frames, frame = 400, 512 * 512 * 2
    ds = synthetic.base(broken.SC_WORD, modality="OT")
    ds.Rows = ds.Columns = 512
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.NumberOfFrames = 1, "MONOCHROME2", frames
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    header = rawpdu.dataset_bytes(ds) + b"\xe0\x7f\x10\x00OW\0\0" + struct.pack("<I", frames * frame)
    sent = header_len = len(header)
    target = header_len + frames * frame * 9 // 10
    chunk = bytes(range(256)) * (PDV_MAX // 256)
    _healthy(app, scp, tmp_path)  # warm up: first-use allocations are not this test's
    before = _rss_kib()
    peak = before
    with RawAssociation(scp.port, timeout=30) as conn:
        conn.send(rawpdu.associate_rq(contexts=[(1, broken.SC_WORD, [rawpdu.EXPLICIT_LE])]))
        reply = conn.read()
        assert reply is not None
        assert reply.kind == A_ASSOCIATE_AC
        conn.send(rawpdu.pdata((1, 0x03, rawpdu.store_rq(broken.SC_WORD, str(ds.SOPInstanceUID)))))
        conn.send(rawpdu.pdata((1, 0x00, header)))
        while sent < target:
            piece = chunk[: min(len(chunk), target - sent)]
            sent += len(piece)
            conn.send(rawpdu.pdata((1, 0x02 if sent >= target else 0x00, piece)))
            if sent % (64 * len(chunk)) < len(chunk):
                peak = max(peak, _rss_kib())
        comment = _refused(_read_response(conn))
        assert "truncated" in comment.lower()
    peak = max(peak, _rss_kib())
    assert peak - before < 64 * 1024, f"RSS grew {(peak - before) // 1024} MiB while receiving 180 MiB"
    assert count(app, Instance) == 1  # the warm-up's only
    _sweep_leaves_only_indexed(app, scp)
    _healthy(app, scp, tmp_path)


def test_dsec08_error_comment_in_the_hand_encoded_response() -> None:
    """dicom/fastpath.py encodes the C-STORE-RSP by hand on both of its paths (inline, and through pynetdicom's
    reactor): the Error Comment (0000,0902) is there, space-padded, and decodes as pynetdicom would."""
    from pynetdicom.dimse_primitives import C_STORE

    from dicom.dimse_encode import store_response_command, store_response_pdata

    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo, rsp.Status = 9, status.STORE_CANNOT_UNDERSTAND
    rsp.AffectedSOPClassUID, rsp.AffectedSOPInstanceUID = synthetic.CT_IMAGE, "1.2.3.4"
    rsp.ErrorComment = "Data set truncated (7FE0,0010) @17874"
    ((_, pdv),) = store_response_pdata(rsp, 1).presentation_data_value_list
    cs = decode(BytesIO(pdv[1:]), True, True)
    assert cs.ErrorComment == rsp.ErrorComment
    assert (cs.Status, cs.AffectedSOPInstanceUID, cs.CommandGroupLength) == (0xC000, "1.2.3.4", len(pdv) - 1 - 12)
    plain = decode(BytesIO(store_response_command(synthetic.CT_IMAGE, 9, 0, "1.2.3.4")), True, True)
    assert "ErrorComment" not in plain
