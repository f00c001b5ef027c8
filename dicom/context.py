"""What every SCP handler shares: the server `Context`, the association counts, the authorized association's state,
the refusal helper and value text (issue 12 §2).

dicom/handlers.py (association, C-ECHO, C-STORE, C-FIND), dicom/qr.py (C-MOVE, C-GET) and dicom/worklist.py
(worklist, MPPS) import these from here and never each other's internals, so no handler module imports another that
imports it back. Nothing here imports pynetdicom's server side or another handler module.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from pydicom.multival import MultiValue
from pynetdicom.events import Event

from dicom.shared_limits import SharedCounts
from engine import uow
from engine.imaging import services
from engine.imaging.ingest import IngestState
from engine.imaging.receive import Receiver
from engine.imaging.services import NodeInfo
from engine.imaging.source import Source
from engine.imaging.storage import ObjectStore


@dataclass
class Limits:
    """Association counts of this process: in total (pynetdicom checks that too) and per device (REQ: DSEC-07)."""

    per_ae: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    by_node: dict[int, int] = field(default_factory=dict)
    shared: SharedCounts | None = None  # several receiver processes: the per-device count is theirs together

    def acquire(self, node_id: int) -> bool:
        if self.shared is not None:
            return self.shared.acquire(node_id, self.per_ae)
        with self.lock:
            n = self.by_node.get(node_id, 0)
            if n >= self.per_ae:
                return False
            self.by_node[node_id] = n + 1
            return True

    def release(self, node_id: int) -> None:
        if self.shared is not None:
            self.shared.release(node_id)
            return
        with self.lock:
            n = self.by_node.get(node_id, 0) - 1
            if n <= 0:
                self.by_node.pop(node_id, None)
            else:
                self.by_node[node_id] = n


@dataclass
class Context:
    """What handlers need: the app (for its context), our AE title, limits, configured statuses and the receive
    service (engine/imaging/receive.py) every C-STORE data set goes through."""

    app: Any
    aet: str
    limits: Limits
    conflict_status: int
    find_limit: int
    receiver: Receiver

    @property
    def store(self) -> ObjectStore:
        return self.receiver.store

    @property
    def disk_full_percent(self) -> float:
        return self.receiver.disk_full_percent

    @disk_full_percent.setter
    def disk_full_percent(self, value: float) -> None:
        self.receiver.disk_full_percent = value


@dataclass
class AssociationState:
    """An authorized association: its device, the peer's address, and what the receive service remembers between
    the instances it stores (its source: this device, via C-STORE)."""

    node: NodeInfo
    ip: str
    ingest: IngestState

    @classmethod
    def of(cls, node: NodeInfo, ip: str) -> AssociationState:
        return cls(node, ip, IngestState(Source.device(node, ip, via="c-store")))


def authorized(event: Event) -> AssociationState:
    """The state `handlers.handle_requested` attached to the association.

    Raises:
        RuntimeError: the association was not authorized (no handler runs before that).
    """
    found = getattr(event.assoc, "telerad", None)
    if not isinstance(found, AssociationState):
        raise RuntimeError("association was not authorized")
    return found


def refuse_op(ctx: Context, st: AssociationState, op: str) -> None:
    """The device may not perform `op`: a security alert (REQ: DSEC-10); the caller answers the refusal status."""
    with ctx.app.app_context(), uow.unit_of_work():
        services.record_rejection(st.node.aet, st.ip, f"设备 {st.node.aet} 无权执行 {op}", {"code": "op", "op": op})


def text(value: Any) -> str:
    """A data element's value as text: multi-values joined with a backslash, surrounding blanks stripped."""
    if value is None:
        return ""
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    return str(value).strip()
