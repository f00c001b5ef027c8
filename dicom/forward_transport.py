"""The forwarding worker's DICOM transport (engine/imaging/forwarding.py `Transport`; REQ: IMG-08, DCM-02).

One association per forward batch, opened with dicom/scu.py's `associate`; `ScuError` when the association cannot
be opened or breaks (the worker then retries with backoff).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydicom import dcmread
from pynetdicom.association import Association

from dicom.scu import MAX_CONTEXTS, NodeLike, Options, ScuError, accepted_syntaxes, associate, response_status
from engine.imaging.compression import UNCOMPRESSED


def contexts_for(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Presentation contexts for (SOP class, transfer syntax) pairs (PS3.8 §9.3.2.2).

    A compressed syntax is proposed in a context of its own, and every SOP class also gets an uncompressed
    context, so a destination that refuses the compressed syntax can still be served (decompressed first).
    """
    out: list[tuple[str, list[str]]] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for sop_class, ts in sorted(set(pairs)):
        for syntaxes in ((ts,), UNCOMPRESSED) if ts not in UNCOMPRESSED else (UNCOMPRESSED,):
            key = (sop_class, tuple(syntaxes))
            if key not in seen:
                seen.add(key)
                out.append((sop_class, list(syntaxes)))
    if len(out) > MAX_CONTEXTS:
        raise ValueError("too many presentation contexts for one association")
    return out


class Channel:
    """One open association of a forward batch."""

    def __init__(self, assoc: Association) -> None:
        self.assoc = assoc

    def accepted(self, sop_class: str) -> set[str]:
        return accepted_syntaxes(self.assoc, sop_class)

    def send(self, path: Path) -> int:
        """C-STORE one Part-10 file (its transfer syntax accepted, or an uncompressed one when the file is
        uncompressed: pynetdicom converts implicit/explicit VR); its status.

        Raises:
            ScuError: the association broke (no response).
        """
        ds = dcmread(path)
        if not self.assoc.is_established:
            raise ScuError("连接已断开")
        code = response_status(self.assoc.send_c_store(ds))
        if code is None:
            raise ScuError("C-STORE 无响应（连接中断）")
        return code


class StoreTransport:
    """Opens one association per forward batch (REQ: IMG-08)."""

    def __init__(self, opts: Options | None = None) -> None:
        self.opts = opts or Options()

    @contextmanager
    def open(self, node: NodeLike, pairs: Iterable[tuple[str, str]]) -> Iterator[Channel]:
        with associate(node, contexts_for(pairs), self.opts) as assoc:
            yield Channel(assoc)
