"""The forwarding worker's DICOM transport (engine/imaging/forwarding.py `Transport`; REQ: IMG-08, DCM-02).

One association per forward batch, opened with dicom/scu.py's `associate`, proposing per SOP class each stored (or
policy) syntax and the uncompressed ones in separate presentation contexts (engine.imaging.transcode.plan_contexts),
so a destination that accepts the stored syntax gets the stored bytes and one that does not gets uncompressed data.
Instances go out prepared (transcode.Outgoing) through dicom/outgoing.py: streamed from the file as stored, or the
decoded bytes. `ScuError` when the association cannot be opened or breaks (the worker then retries with backoff).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from pynetdicom.association import Association

from dicom import outgoing
from dicom.scu import NodeLike, Options, ScuError, accepted_syntaxes, associate, response_status
from engine.imaging.transcode import Outgoing, plan_contexts


def contexts_for(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Presentation contexts for (SOP class, transfer syntax) pairs: transcode.plan_contexts (≤ 128)."""
    return plan_contexts(pairs)


class Channel:
    """One open association of a forward batch."""

    def __init__(self, assoc: Association) -> None:
        self.assoc = assoc

    def accepted(self, sop_class: str) -> set[str]:
        return accepted_syntaxes(self.assoc, sop_class)

    def send(self, item: Outgoing) -> int:
        """C-STORE one prepared instance (its syntax accepted on this association); its status.

        Raises:
            ScuError: the association broke (no response).
            ValueError: no accepted context for the instance's SOP class in its syntax.
        """
        if not self.assoc.is_established:
            raise ScuError("连接已断开")
        code = response_status(outgoing.send_c_store(self.assoc, item))
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
