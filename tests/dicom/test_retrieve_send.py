"""How retrieval sends (REQ: DCM-04, DSEC-08; issue 12 §3): the C-STORE sub-operations' PDUs are pynetdicom's, byte for
byte, handed to the DUL thread a few MB at a time (dicom/outgoing.py); peers with small and unlimited PDUs get the
decoded instance exactly; decoders beyond one close once the pool has been idle, not on the way to the final
response; and getscu +xs — JPEG lossless and the uncompressed syntaxes in one context per SOP class — gets every
instance of a mixed study, because storage contexts the peer takes the SCP role for are accepted uncompressed-first.
"""

from __future__ import annotations

import os
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLosslessSV1
from pynetdicom import AE, build_role, evt
from pynetdicom.dimse_messages import C_GET_RSP, C_MOVE_RSP, C_STORE_RQ
from pynetdicom.dimse_primitives import C_GET, C_MOVE, C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu import P_DATA_TF

from dicom import dimse_encode, outgoing, uids
from dicom.scp import Running
from engine.imaging import transcode
from engine.imaging.transcode import Outgoing
from tests.dicom.conftest import sample_file
from tests.dicom.test_retrieve_transcode import (  # noqa: F401 - `study` is a fixture used here
    STUDY_ROOT_GET,
    UNCOMPRESSED,
    _check_uncompressed,
    _clean,
    _getscu,
    _ident,
    _jpeg_lossless,
    study,
)

CT = "1.2.840.10008.5.1.4.1.1.2"


def _pynetdicom_pdus(data: bytes | None, path: tuple[Path, int] | None, max_pdu: int) -> tuple[bytes, bytes]:
    """What pynetdicom 3.0.4 sends for a C-STORE-RQ of `data` (or the file from its offset): its command set and
    every P-DATA-TF PDU, encoded."""
    req = C_STORE()
    req.MessageID, req.Priority = 7, 2
    req.AffectedSOPClassUID, req.AffectedSOPInstanceUID = CT, "1.2.3.4"
    if path is not None:
        req._dataset_path = path
    else:
        req.DataSet = BytesIO(data or b"")
    message = C_STORE_RQ()
    message.primitive_to_message(req)
    command = encode(message.command_set, True, True)
    assert command is not None
    return command, b"".join(P_DATA_TF(p).encode() for p in message.encode_msg(5, max_pdu))


@pytest.mark.parametrize("aet", [None, "MOVESCU", "ABCDEFGHIJKLMNOP", "A"])
@pytest.mark.parametrize("instance", ["1.2.3", "1.2.34", "1.2.826.0.1.3680043.8.498." + "1" * 38])
def test_dcm04_store_request_command_is_pynetdicoms(aet: str | None, instance: str) -> None:
    """The C-STORE-RQ command set encoded by outgoing.store_request_command (odd/even UIDs, a C-MOVE's originator)
    is the one pynetdicom encodes."""
    for msg_id, priority, originator_id in ((1, 2, None), (65535, 0, 5), (7, 1, 0)):
        req = C_STORE()
        req.MessageID, req.Priority = msg_id, priority
        req.AffectedSOPClassUID, req.AffectedSOPInstanceUID = CT, instance
        req.MoveOriginatorApplicationEntityTitle, req.MoveOriginatorMessageID = aet, originator_id
        req.DataSet = BytesIO(b"x")
        message = C_STORE_RQ()
        message.primitive_to_message(req)
        assert outgoing.store_request_command(req) == encode(message.command_set, True, True)


@pytest.mark.parametrize("primitive_class", [C_GET, C_MOVE])
@pytest.mark.parametrize("status", [0xFF00, 0x0000, 0xB000, 0xFE00])
def test_dcm04_retrieve_response_command_is_pynetdicoms(primitive_class: Any, status: int) -> None:
    """The C-GET/C-MOVE-RSP without data set that fastpath encodes (the pending response after each instance) is
    pynetdicom's; one with an identifier or an Error Comment is left to pynetdicom."""
    message_class = {C_GET: C_GET_RSP, C_MOVE: C_MOVE_RSP}[primitive_class]
    for counts in ((10, 5, 0, 0), (None, None, None, None), (None, 3, 1, 0)):
        for sop_class in ("1.2.840.10008.5.1.4.1.2.2.3", "1.2.840.10008.5.1.4.1.2.1.2", None):
            rsp = primitive_class()
            rsp.MessageIDBeingRespondedTo, rsp.Status = 7, status
            if sop_class:
                rsp.AffectedSOPClassUID = sop_class
            for keyword, value in zip(_COUNTS, counts, strict=True):
                if value is not None:
                    setattr(rsp, keyword, value)
            message = message_class()
            message.primitive_to_message(rsp)
            assert dimse_encode.retrieve_response_command(rsp) == encode(message.command_set, True, True)
    rsp.ErrorComment = "x"
    assert dimse_encode.retrieve_response_command(rsp) is None
    rsp.ErrorComment = None
    rsp.Identifier = BytesIO(b"\x08\x00\x58\x00\x00\x00\x00\x00")
    assert dimse_encode.retrieve_response_command(rsp) is None


_COUNTS = (
    "NumberOfRemainingSuboperations",
    "NumberOfCompletedSuboperations",
    "NumberOfFailedSuboperations",
    "NumberOfWarningSuboperations",
)


def _pdvs(stream: bytes) -> list[tuple[int, int, bytes, int]]:
    """(context ID, control header, fragment, PDU length) of every PDV of a stream of P-DATA-TF PDUs."""
    out, pos = [], 0
    while pos < len(stream):
        assert stream[pos] == 0x04
        length = int.from_bytes(stream[pos + 2 : pos + 6], "big")
        item, end = pos + 6, pos + 6 + length
        while item < end:
            size = int.from_bytes(stream[item : item + 4], "big")
            out.append((stream[item + 4], stream[item + 5], stream[item + 6 : item + 4 + size], length))
            item += 4 + size
        assert item == end
        pos = end
    return out


@pytest.mark.parametrize("size", [1, 100, 16378, 16379, 525_000, 9_000_001])
@pytest.mark.parametrize("max_pdu", [16384, 32768, 1000, 0])
def test_dcm04_message_pdus_are_pynetdicoms_pdus(size: int, max_pdu: int, tmp_path: Path) -> None:
    """The same PDUs as pynetdicom's, from memory and streamed from a stored file past its meta, in bulks of at most
    about BULK_BYTES. (Unlimited PDU: pynetdicom sends one PDU of any size, here fragments of 1 MiB.)"""
    data = os.urandom(size)
    path = tmp_path / "stored.dcm"
    path.write_bytes(b"META" + data)
    in_memory = Outgoing(CT, "1.2.3.4", ExplicitVRLittleEndian, data=data)
    from_file = Outgoing(CT, "1.2.3.4", ExplicitVRLittleEndian, path=path, offset=4)
    cases = [
        (in_memory, _pynetdicom_pdus(data, None, max_pdu)),
        (from_file, _pynetdicom_pdus(None, (path, 4), max_pdu)),
    ]
    for item, (command, want) in cases:
        bulks = list(outgoing.message_pdus(command, item, 5, max_pdu))
        assert len(bulks) >= -(-size // outgoing.BULK_BYTES)
        for bulk in bulks:  # whole PDUs, about BULK_BYTES of the message each
            assert sum(len(f) for _cx, _c, f, _n in _pdvs(bulk)) <= outgoing.BULK_BYTES + 1024
        stream = b"".join(bulks)
        pdvs = _pdvs(stream)
        assert {cx for cx, _c, _f, _n in pdvs} == {5}
        assert b"".join(f for _cx, c, f, _n in pdvs if c & 1) == command
        assert b"".join(f for _cx, c, f, _n in pdvs if not c & 1) == data
        assert [c for _cx, c, _f, _n in pdvs if c & 2] == [0x03, 0x02]  # one last command and data set fragment
        assert pdvs[-1][1] == 0x02
        if max_pdu:
            assert max(n for _cx, _c, _f, n in pdvs) <= max_pdu
        if max_pdu or size <= 1 << 20:
            assert stream == want


@pytest.mark.parametrize("max_pdu", [4096, 0])
def test_dcm04_small_and_unlimited_pdu_peers_get_the_decoded_ct_exactly(
    scp: Running,
    study: dict[str, Any],  # noqa: F811 - the fixture imported above
    max_pdu: int,
) -> None:
    received: dict[str, Any] = {}

    def on_store(event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        received[str(ds.SOPInstanceUID)] = ds
        return 0

    ae = AE(ae_title="RETRIEVER")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.maximum_pdu_size = max_pdu
    ae.add_requested_context(STUDY_ROOT_GET, [ExplicitVRLittleEndian])
    ae.add_requested_context(CT, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="TELERAD", ext_neg=[build_role(CT, scp_role=True)],
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])  # fmt: skip
    assert assoc.is_established
    try:
        ct = dcmread(study["files"]["ct_jll"], stop_before_pixels=True)
        ident = _ident(StudyInstanceUID=study["uid"], SeriesInstanceUID=str(ct.SeriesInstanceUID))
        statuses = [int(r.Status) for r, _ in assoc.send_c_get(ident, STUDY_ROOT_GET)]
    finally:
        assoc.release()
    assert statuses[-1] == 0x0000
    got = received[str(ct.SOPInstanceUID)]
    assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(got.pixel_array, dcmread(sample_file("CT_small.dcm")).pixel_array)


def test_dcm04_decoders_beyond_one_close_once_the_pool_is_idle(tmp_path: Path) -> None:
    src = _jpeg_lossless(sample_file("CT_small.dcm"), tmp_path / "ct.dcm")
    pool = transcode.Transcoder(workers=2)
    try:
        with transcode.Prefetch(range(6), lambda _i: pool.native(src, ExplicitVRLittleEndian), workers=2) as ready:
            assert len({len(data) for _i, data in ready}) == 1
        assert len(pool._idle) == 2
        pool.trim_when_idle(keep=1, after=1.5)
        time.sleep(0.8)
        assert len(pool._idle) == 2  # not at once: the next retrieve may need both
        pool.native(src, ExplicitVRLittleEndian)  # used again: idle counts from here
        time.sleep(1.0)
        assert len(pool._idle) == 2
        deadline = time.monotonic() + 15
        while len(pool._idle) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(pool._idle) == 1  # one stays warm
        assert pool.native(src, ExplicitVRLittleEndian)
    finally:
        pool.close()


def test_dcm04_retrieve_contexts_prefer_uncompressed_only_for_the_peers_scp_classes() -> None:
    contexts = uids.supported_contexts()
    for cx in contexts:
        if cx.abstract_syntax in uids.STORAGE_SOP_CLASSES:
            cx.scu_role = cx.scp_role = True
    out = uids.retrieve_contexts(contexts, {CT, "1.2.840.10008.5.1.4.1.2.2.3"})
    by_class = {str(cx.abstract_syntax): cx for cx in out}
    assert by_class[CT].transfer_syntax[:2] == [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    assert sorted(by_class[CT].transfer_syntax) == sorted(uids.STORAGE_TRANSFER_SYNTAXES)
    assert (by_class[CT].scu_role, by_class[CT].scp_role) == (True, True)
    mr = by_class["1.2.840.10008.5.1.4.1.1.4"]
    assert mr.transfer_syntax == uids.STORAGE_TRANSFER_SYNTAXES  # a C-STORE to telerad: stored as sent
    assert by_class["1.2.840.10008.5.1.4.1.2.2.3"].transfer_syntax == uids.QUERY_TRANSFER_SYNTAXES  # not storage
    assert next(cx for cx in contexts if cx.abstract_syntax == CT).transfer_syntax == uids.STORAGE_TRANSFER_SYNTAXES


def test_dcm04_getscu_xs_gets_every_instance_of_a_mixed_study(
    scp: Running,
    study: dict[str, Any],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """getscu +xs proposes JPEG lossless SV1 and the uncompressed syntaxes in one context per SOP class: the storage
    contexts it takes the SCP role for are accepted uncompressed, so all six instances arrive (before: the JPEG
    lossless context was accepted and the five others failed), lossless pixels equal, and the release is clean."""
    out = tmp_path / "got"
    out.mkdir()
    log = _getscu(scp.port, out, study["uid"], "+xs")
    _clean(log)
    assert "Number of Completed Suboperations : 6" in log
    assert "Number of Failed Suboperations    : 0" in log
    received = sorted(out.iterdir())
    _check_uncompressed(study, received)
    assert {str(dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID) for p in received} <= UNCOMPRESSED
    assert JPEGLosslessSV1 not in {
        str(dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID) for p in received
    }
