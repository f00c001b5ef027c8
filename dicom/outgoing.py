"""C-STORE of prepared instances (engine.imaging.transcode.Outgoing) on an established association (REQ: DCM-04,
IMG-08): the stored data set streamed from its file as stored, or a decoded data set's bytes, without pydicom
parsing and re-encoding them element by element (pynetdicom's `send_c_store` of a Dataset: ~2 ms per CT slice).

The message goes to the DUL thread — still the only writer of the socket, in queue order — as a few primitives of
ready-encoded P-DATA-TF PDUs (up to `BULK_BYTES` each), written with one socket send each, instead of one P_DATA
primitive per PDU: a 512×512 CT slice to a peer with dcmtk's default maximum PDU (16 KiB) is 33 PDUs, and each
took a queue hand-off, a wake-up, a state machine action and an encode in pynetdicom (~1.5 ms of CPU per slice in
two threads competing for the GIL). The bytes on the wire are the same PDUs (PS3.8 §9.3.5, Annex E), fragmented at
the peer's maximum length as pynetdicom does.

pynetdicom 3.0.4's C-GET and C-MOVE SCPs (QueryRetrieveServiceClass) require a Dataset for each sub-operation and
send it through `assoc.send_c_store`; `install(assoc)` lets that association's `send_c_store` take a `Prepared`
data set (an instance attribute: the class and other associations are untouched). Anything else still goes through
pynetdicom's own method. A `Prepared` that carries an error raises, so pynetdicom counts that sub-operation as
failed and lists its SOP Instance UID (PS3.4 C.4.2.1.4.2, C.4.3.1.3.2).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import P_DATA

from engine.imaging.transcode import Outgoing


class Prepared(Dataset):
    """A sub-operation's data set for pynetdicom: only the UIDs it reads, the bytes are in `outgoing`."""

    def __init__(self, sop_class: str, sop_instance: str, outgoing: Outgoing | None = None, error: str = "") -> None:
        super().__init__()
        self.SOPClassUID = sop_class
        self.SOPInstanceUID = sop_instance
        self.file_meta = FileMetaDataset()
        if outgoing is not None:
            self.file_meta.TransferSyntaxUID = UID(outgoing.ts)
        self._outgoing = outgoing
        self._error = error or ("" if outgoing is not None else "nothing to send")

    @classmethod
    def of(cls, outgoing: Outgoing) -> Prepared:
        return cls(outgoing.sop_class, outgoing.sop_instance, outgoing)

    @classmethod
    def failed(cls, sop_class: str, sop_instance: str, error: str) -> Prepared:
        return cls(sop_class, sop_instance, None, error)

    @property
    def outgoing(self) -> Outgoing | None:
        return self._outgoing

    @property
    def error(self) -> str:
        return self._error


def send_c_store(
    assoc: Association,
    outgoing: Outgoing,
    msg_id: int = 1,
    priority: int = 2,
    originator_aet: str | None = None,
    originator_id: int | None = None,
) -> Dataset:
    """pynetdicom's `Association.send_c_store` for an `Outgoing`: the same primitive, context rules and response
    handling, the data set's bytes taken as they are (exact transfer syntax match, no conversion).

    Raises:
        RuntimeError: the association is not established.
        ValueError: no accepted presentation context for the SOP class in that transfer syntax.
    """
    if not assoc.is_established:
        raise RuntimeError("the association is not established")
    req = C_STORE()
    req.MessageID = msg_id
    req.Priority = priority
    req.MoveOriginatorApplicationEntityTitle = originator_aet
    req.MoveOriginatorMessageID = originator_id
    req.AffectedSOPClassUID = outgoing.sop_class
    req.AffectedSOPInstanceUID = outgoing.sop_instance
    context = assoc._get_valid_context(outgoing.sop_class, outgoing.ts, "scu", allow_conversion=False)
    if outgoing.data is not None:
        req.DataSet = BytesIO(outgoing.data)
    elif outgoing.path is not None:
        req._dataset_path = (outgoing.path, outgoing.offset)  # streamed from the stored file (pynetdicom encode_msg)
    else:
        raise ValueError("nothing to send")
    # Pause the reactor so it does not take the response off the queue (as pynetdicom's send_c_store does).
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.0001)
    try:
        _send_message(assoc, req, outgoing, int(context.context_id or 0))
        _cx_id, rsp = assoc.dimse.get_msg(block=True)
    finally:
        assoc._reactor_checkpoint.set()
    if rsp is None:
        assoc._handle_no_response()
        return Dataset()
    return assoc._check_received_status(rsp)


BULK_BYTES = 4 << 20  # encoded PDUs per queued primitive: the memory one message holds beyond its data set
_QUEUED = 4  # primitives waiting for the DUL thread before the sender waits (a stored 1 GB file is read as sent)


class _Bulk(bytes):
    """The value of a P_DATA primitive's one PDV that stands for `pdus`: complete P-DATA-TF PDUs, encoded."""

    pdus: bytes


def _pdus(context_id: int, control: int, data: memoryview, fragment: int) -> Iterator[bytes | memoryview]:
    """P-DATA-TF PDUs (PS3.8 §9.3.5) of one PDV each carrying `data` in fragments of at most `fragment` bytes;
    `control` is the message control header of a fragment that is not the last (0x00 data set, 0x01 command),
    the last one gets bit 1 set (PS3.8 Annex E.2). Header and fragment are yielded separately (no copy here)."""
    n = len(data)
    for start in range(0, max(n, 1), fragment):
        piece = data[start : start + fragment]
        last = start + fragment >= n
        size = len(piece)
        yield struct.pack(">BBLLBB", 0x04, 0, size + 6, size + 2, context_id, control | (0x02 if last else 0))
        yield piece


def _data_set_chunks(outgoing: Outgoing, fragment: int) -> Iterator[tuple[memoryview, bool]]:
    """The data set's bytes in whole fragments of at most about BULK_BYTES, and whether each is the last (an empty
    data set is one empty last fragment)."""
    step = max(fragment, BULK_BYTES // fragment * fragment)
    if outgoing.data is not None:
        view = memoryview(outgoing.data)
        for start in range(0, max(len(view), 1), step):
            yield view[start : start + step], start + step >= len(view)
        return
    assert outgoing.path is not None
    with open(outgoing.path, "rb") as fh:
        length = fh.seek(0, 2) - outgoing.offset
        fh.seek(outgoing.offset)
        if length <= 0:
            yield memoryview(b""), True
        done = 0
        while done < length:
            chunk = fh.read(min(step, length - done))
            if not chunk:
                raise OSError(f"{outgoing.path} ended {length - done} bytes early")
            done += len(chunk)
            yield memoryview(chunk), done >= length


def message_pdus(command: bytes, outgoing: Outgoing, context_id: int, max_pdu: int) -> Iterator[bytes]:
    """A DIMSE message — `command` (implicit VR LE command set) then `outgoing`'s data set — as P-DATA-TF PDUs of
    one PDV each, fragmented at the peer's maximum PDU length `max_pdu` (0: none) as pynetdicom fragments them,
    yielded about BULK_BYTES of whole PDUs at a time."""
    fragment = max_pdu - 6 if max_pdu else 1 << 20  # PDV item: length (4), context ID, control header
    if fragment < 1:
        raise ValueError(f"peer maximum PDU length {max_pdu} is too small")
    pdus: list[bytes | memoryview] = list(_pdus(context_id, 0x01, memoryview(command), fragment))
    for chunk, last in _data_set_chunks(outgoing, fragment):
        pdus += _pdus(context_id, 0x00, chunk, fragment)
        if not last:  # the last fragment of a chunk that is not the data set's last is not "last" on the wire
            header = bytearray(pdus[-2])
            header[11] &= 0xFD
            pdus[-2] = bytes(header)
        yield b"".join(pdus)
        pdus = []


def _queue(assoc: Association, pdus: bytes, context_id: int) -> None:
    dul = assoc.dul
    while dul.to_provider_queue.qsize() >= _QUEUED and dul.is_alive() and not dul._kill_thread:
        time.sleep(0.0005)  # a large file is not read into memory faster than it is sent
    value = _Bulk(b"\x02")
    value.pdus = pdus
    primitive = P_DATA()
    primitive.presentation_data_value_list = [[context_id, value]]  # type: ignore[list-item]
    dul.send_pdu(primitive)


def _element(elem: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0x0000, elem, len(value)) + value


def _padded(value: Any, pad: bytes) -> bytes:
    raw = str(value).encode("ascii")
    return raw + pad if len(raw) % 2 else raw


def store_request_command(req: C_STORE) -> bytes:
    """The C-STORE-RQ command set (PS3.7 Table 9.3-1; implicit VR little endian) of `req`, which carries a data set,
    encoded here: byte for byte pynetdicom's (C_STORE_RQ.primitive_to_message + encode: ~0.27 ms per instance)."""
    parts = [
        _element(0x0002, _padded(req.AffectedSOPClassUID, b"\0")),
        _element(0x0100, struct.pack("<H", 0x0001)),
        _element(0x0110, struct.pack("<H", int(req.MessageID or 0))),
        _element(0x0700, struct.pack("<H", int(req.Priority or 0))),
        _element(0x0800, struct.pack("<H", 0x0001)),  # a data set follows
        _element(0x1000, _padded(req.AffectedSOPInstanceUID, b"\0")),
    ]
    if req.MoveOriginatorApplicationEntityTitle:
        parts.append(_element(0x1030, _padded(req.MoveOriginatorApplicationEntityTitle, b" ")))
    if req.MoveOriginatorMessageID is not None:
        parts.append(_element(0x1031, struct.pack("<H", int(req.MoveOriginatorMessageID))))
    body = b"".join(parts)
    return _element(0x0000, struct.pack("<I", len(body))) + body


def _send_message(assoc: Association, req: C_STORE, outgoing: Outgoing, context_id: int) -> None:
    """The C-STORE-RQ's command and data set as P-DATA-TF PDUs (`message_pdus`), queued to the DUL thread a few MB
    at a time (see the module's docstring)."""
    _bulk_sender(assoc)
    command = None if assoc.get_handlers(evt.EVT_DIMSE_SENT) else store_request_command(req)
    if command is None:  # someone listens for the message (pynetdicom's debug logging): pynetdicom encodes it
        message = C_STORE_RQ()
        message.primitive_to_message(req)
        message.context_id = context_id
        evt.trigger(assoc, evt.EVT_DIMSE_SENT, {"message": message})
        command = encode(message.command_set, True, True)
    assert command is not None
    for pdus in message_pdus(command, outgoing, context_id, int(assoc.dimse.maximum_pdu_size or 0)):
        _queue(assoc, pdus, context_id)


def _bulk_sender(assoc: Association) -> None:
    """Let this association's DUL write a `_Bulk` primitive's PDUs as they are (one socket send); every other PDU
    is encoded and sent by pynetdicom as before."""
    dul: Any = assoc.dul
    if getattr(dul, "_telerad_bulk", False):
        return
    original = dul._send

    def send(pdu: Any) -> None:
        items = getattr(pdu, "presentation_data_value_items", None)
        if items and len(items) == 1 and type(items[0].presentation_data_value) is _Bulk:
            if dul.socket is not None:
                dul.socket.send(memoryview(items[0].presentation_data_value.pdus))
            return
        original(pdu)

    dul._send = send
    dul._telerad_bulk = True


def install(assoc: Association) -> None:
    """Let `assoc.send_c_store` (called by pynetdicom's C-GET/C-MOVE SCP) send `Prepared` data sets."""
    if getattr(assoc, "_telerad_outgoing", False):
        return
    original = type(assoc).send_c_store

    def send(
        dataset: Any, msg_id: int = 1, priority: int = 2, originator_aet: Any = None, originator_id: Any = None
    ) -> Dataset:
        if isinstance(dataset, Prepared):
            if dataset.outgoing is None:
                raise ValueError(dataset.error)
            return send_c_store(assoc, dataset.outgoing, msg_id, priority, originator_aet, originator_id)
        return original(assoc, dataset, msg_id, priority, originator_aet, originator_id)

    assoc.send_c_store = send  # type: ignore[method-assign]
    assoc._telerad_outgoing = True  # type: ignore[attr-defined]
