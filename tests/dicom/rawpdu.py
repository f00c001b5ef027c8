"""A raw DICOM Upper Layer client for bad-input tests (PS3.8 §9.3): hand-built PDUs over a plain socket, so a test
can send what no well-behaved SCU would (SECURITY.md §C1)."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.filewriter import write_dataset
from pynetdicom.dsutils import encode

APP_CONTEXT = b"1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"

A_ASSOCIATE_RQ, A_ASSOCIATE_AC, A_ASSOCIATE_RJ, P_DATA_TF = 0x01, 0x02, 0x03, 0x04
A_RELEASE_RQ, A_RELEASE_RP, A_ABORT = 0x05, 0x06, 0x07


def item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def pdu(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBI", kind, 0, len(body)) + body


def context_item(context_id: int, abstract: str, syntaxes: list[str]) -> bytes:
    body = bytes([context_id, 0, 0, 0]) + item(0x30, abstract.encode())
    body += b"".join(item(0x40, ts.encode()) for ts in syntaxes)
    return item(0x20, body)


def associate_rq(
    calling: bytes | str = b"MODALITY1",
    called: bytes | str = b"TELERAD",
    contexts: list[tuple[int, str, list[str]]] | None = None,
    *,
    max_pdu: int | None = 16384,
    user_items: bytes = b"",
) -> bytes:
    """An A-ASSOCIATE-RQ PDU; `contexts` as (id, abstract syntax, transfer syntaxes); default: Verification."""

    def ae(v: bytes | str) -> bytes:
        raw = v.encode("latin-1") if isinstance(v, str) else v
        return raw[:16].ljust(16, b" ")

    if contexts is None:
        contexts = [(1, VERIFICATION, [IMPLICIT_LE])]
    user = b""
    if max_pdu is not None:
        user += item(0x51, struct.pack(">I", max_pdu))
    user += item(0x52, b"1.2.826.0.1.3680043.8.498.1") + user_items
    body = struct.pack(">HH", 1, 0) + ae(called) + ae(calling) + b"\0" * 32 + item(0x10, APP_CONTEXT)
    body += b"".join(context_item(*c) for c in contexts) + item(0x50, user)
    return pdu(A_ASSOCIATE_RQ, body)


def pdata(*pdvs: tuple[int, int, bytes]) -> bytes:
    """A P-DATA-TF PDU of (context id, message control header, fragment) PDVs."""
    body = b"".join(struct.pack(">IB", len(frag) + 2, cid) + bytes([ctrl]) + frag for cid, ctrl, frag in pdvs)
    return pdu(P_DATA_TF, body)


def command(**elements: object) -> bytes:
    """A DIMSE command set (implicit VR little endian, with its group length)."""
    ds = Dataset()
    for k, v in elements.items():
        setattr(ds, k, v)
    raw = encode(ds, True, True)
    assert raw is not None
    return bytes(raw)


def echo_rq(message_id: int = 1) -> bytes:
    return command(
        AffectedSOPClassUID=VERIFICATION, CommandField=0x0030, MessageID=message_id, CommandDataSetType=0x0101
    )


def store_rq(sop_class: str, sop_instance: str, message_id: int = 1, has_dataset: bool = True) -> bytes:
    return command(
        AffectedSOPClassUID=sop_class,
        CommandField=0x0001,
        MessageID=message_id,
        Priority=0,
        CommandDataSetType=0x0000 if has_dataset else 0x0101,
        AffectedSOPInstanceUID=sop_instance,
    )


def dataset_bytes(ds: Dataset, explicit: bool = True) -> bytes:
    """The data set (no file meta) encoded little endian, as sent in P-DATA."""
    buf = BytesIO()
    from pydicom.filebase import DicomFileLike

    fp = DicomFileLike(buf)
    fp.is_little_endian = True
    fp.is_implicit_VR = not explicit
    write_dataset(fp, ds)
    return buf.getvalue()


@dataclass
class Reply:
    kind: int
    body: bytes


class RawAssociation:
    """One TCP connection speaking hand-built PDUs."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def read(self) -> Reply | None:
        """The next PDU, or None when the SCP closed (or reset) the connection.

        Raises:
            TimeoutError: nothing arrived within the socket timeout (the SCP neither answered nor closed).
        """
        try:
            head = self._exact(6)
            kind, _, length = struct.unpack(">BBI", head)
            return Reply(kind, self._exact(length))
        except TimeoutError:
            raise
        except OSError:  # closed or reset
            return None

    def refused(self) -> bool:
        """True when the SCP answers with A-ABORT or A-ASSOCIATE-RJ, or closes the connection; False when it answers
        anything else. A SCP that neither answers nor closes raises TimeoutError."""
        reply = self.read()
        return reply is None or reply.kind in (A_ABORT, A_ASSOCIATE_RJ)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawAssociation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def accepted_contexts(ac_body: bytes) -> dict[int, int]:
    """{context id: result} of the presentation context items of an A-ASSOCIATE-AC body."""
    out: dict[int, int] = {}
    pos = 68  # protocol version, reserved, called/calling AE, 32 reserved bytes
    while pos + 4 <= len(ac_body):
        kind, _, length = struct.unpack(">BBH", ac_body[pos : pos + 4])
        if kind == 0x21:
            out[ac_body[pos + 4]] = ac_body[pos + 6]
        pos += 4 + length
    return out


def pdvs(pdata_body: bytes) -> list[tuple[int, int, bytes]]:
    """The (context id, control header, fragment) PDVs of a P-DATA-TF body."""
    out = []
    pos = 0
    while pos + 6 <= len(pdata_body):
        (length,) = struct.unpack(">I", pdata_body[pos : pos + 4])
        out.append((pdata_body[pos + 4], pdata_body[pos + 5], pdata_body[pos + 6 : pos + 4 + length]))
        pos += 4 + length
    return out


def response_status(conn: RawAssociation) -> int | None:
    """Read PDUs until a complete command set arrives; its Status, or None when the SCP closed or aborted."""
    from pynetdicom.dsutils import decode

    fragments = b""
    while True:
        reply = conn.read()
        if reply is None or reply.kind != P_DATA_TF:
            return None
        for _cid, ctrl, frag in pdvs(reply.body):
            if ctrl & 1:
                fragments += frag
                if ctrl & 2:
                    ds = decode(BytesIO(fragments), True, True)
                    return int(ds.Status)
