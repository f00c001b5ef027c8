"""The DICOM side of the receive service (engine/imaging/receive.py; issue 12 §2): how a process builds its
`Receiver`, how a receipt's outcome becomes a C-STORE status, and the sink that telerad's own C-GET stores into.

- `receiver`: the object store, the group commit (dicom/groupcommit.py) with SQLite's write gate and durable WAL
  sync, the crash-test fault points (dicom/faults.py) — the same for the SCP (dicom/scp.py) and for a C-GET run
  by the API or the CLI, so durability, duplicates and routing follow one set of rules (REQ: DSEC-05/06, DCM-02).
- `store_status`: receive one data set and answer the status a storage SCP answers (PS3.4 B.2.3): success, the
  configured conflict status, 0xA900 for a data set that is not the announced one, 0xC000 for one that cannot be
  understood (with an Error Comment where the validator says where it is broken), 0xA700 for no space or a storage
  error, 0x0122 for a SOP class outside the negotiated context (DSEC-09).
- `RetrieveSink` / `retrieval`: the C-STORE sub-operations of `scu.get`, each through the receive service with the
  node as its source (`via` c-get) and answered only once durable and committed.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from dicom import faults, status
from dicom.groupcommit import GroupCommit
from dicom.writegate import WriteGate
from engine import config, uow
from engine.db import durable_wal_commits
from engine.imaging.ingest import CONFLICT, IngestState, InvalidInstance
from engine.imaging.ingest_batch import BatchIndexer
from engine.imaging.receive import Receiver
from engine.imaging.services import NodeInfo
from engine.imaging.source import Source
from engine.imaging.storage import ObjectStore, StorageFull

log = logging.getLogger("telerad.dicom")


def durable_commits(app: Any) -> Callable[[], None] | None:
    """SQLite: every write this receiver commits is durable before the commit returns (REQ: DSEC-05), by a WAL sync
    after the commit rather than inside it (engine.db.durable_wal_commits); returns that sync for the group commit,
    which runs it after releasing the write gate. PostgreSQL keeps synchronous_commit on (its default): None.

    engine/db.py opens SQLite in WAL mode with synchronous=NORMAL, where a commit survives a process crash but may be
    rolled back by a power loss or an OS crash; a C-STORE success promises a durable index row.
    """
    with app.app_context():
        engine = uow.session().get_bind().engine
    if engine.dialect.name != "sqlite":
        return None
    sync = getattr(engine, "_telerad_wal_sync", None)
    if sync is None:
        sync = durable_wal_commits(engine)
        engine._telerad_wal_sync = sync  # type: ignore[attr-defined]
    return sync


def receiver(app: Any, settings: config.Settings) -> Receiver:
    """This process's receive service: the object store under TELERAD_STORAGE_DIR, index rows group-committed
    (one transaction per instance with one association, batches with several), on SQLite one writer at a time
    across processes and the WAL synced before a success. `close()` it (and its write gate) when done."""
    sqlite = settings.database_url.startswith("sqlite")
    gate = WriteGate(settings.instance_dir / "dicom-ingest.lock") if sqlite else None
    return Receiver(
        store=ObjectStore(settings.storage_dir / "dicom"),
        disk_full_percent=settings.dicom_disk_full_percent,
        app_context=app.app_context,
        committer=GroupCommit(app, gate, sync=durable_commits(app), hooks=BatchIndexer()),
        write_gate=gate,
        fault=faults.hit,
    )


_SHARED_LOCK = threading.Lock()


def shared_receiver(app: Any, settings: config.Settings) -> Receiver:
    """The receiver the HTTP requests of this process that store instances (STOW-RS) share: the rows of
    concurrent requests are group-committed together — one transaction, one WAL flush (PostgreSQL) or one write-gate
    turn and WAL sync (SQLite) for instances of several requests, as for several associations of the SCP — and its
    helper threads are started once, not per request. Kept on the app; closed when the app is collected."""
    key = (str(settings.storage_dir), settings.database_url)
    with _SHARED_LOCK:
        found = app.extensions.get("telerad_shared_receiver")
        if found is not None and found[0] == key:
            return found[1]  # type: ignore[no-any-return]
        rx = receiver(app, settings)
        app.extensions["telerad_shared_receiver"] = (key, rx)
        weakref.finalize(app, _close_quietly, rx)
        return rx


def _close_quietly(rx: Receiver) -> None:
    rx.sealer.shutdown(wait=False)
    if isinstance(rx.write_gate, WriteGate):
        rx.write_gate.close()


def close(rx: Receiver) -> None:
    rx.close()
    if isinstance(rx.write_gate, WriteGate):
        rx.write_gate.close()


def refused_status(exc: InvalidInstance | StorageFull) -> int | Dataset:
    """The C-STORE status of a refusal (PS3.4 B.2.3)."""
    if isinstance(exc, StorageFull):
        return status.STORE_OUT_OF_RESOURCES
    code = status.STORE_DATASET_MISMATCH if exc.code == "uid_mismatch" else status.STORE_CANNOT_UNDERSTAND
    comment = exc.details.get("comment")  # a broken data set says where (engine/imaging/validate.py)
    return status.with_comment(code, comment) if comment else code


def store_status(
    rx: Receiver,
    state: IngestState,
    path: Path,
    sop_class: object,
    sop_instance: object,
    conflict_status: int,
    *,
    digest: str | None = None,
    size: int | None = None,
) -> int | Dataset:
    """Receive the data set in `path` (consumed) from `state.source` and answer its C-STORE status — success only
    once it is durable and its rows are committed (REQ: DSEC-04/05/06)."""
    try:
        result = rx.receive(state, path, sop_class=sop_class, sop_instance=sop_instance, digest=digest, size=size)
    except (InvalidInstance, StorageFull) as exc:
        return refused_status(exc)
    except OSError:
        log.exception("C-STORE: storage error")
        return status.STORE_OUT_OF_RESOURCES
    faults.hit("before_response")  # REQ: DSEC-05 crash test: committed, no response yet
    return conflict_status if result.outcome == CONFLICT else status.SUCCESS


def context_mismatch(rx: Receiver, state: IngestState, sop_class: object, abstract_syntax: object) -> int | None:
    """REQ: DSEC-09 — the SOP class allowlist is the negotiated context: an instance whose command names another
    class than its presentation context (an RT Plan over an accepted CT context) is refused, audited, never stored.
    None when they agree."""
    named = str(sop_class).rstrip("\0 ")
    if named == str(abstract_syntax):
        return None
    rx.refuse(
        state,
        InvalidInstance("context_mismatch", "命令中的 SOP 类与协商的表示上下文不一致", {"sop_class_uid": named[:64]}),
    )
    return status.SOP_CLASS_NOT_SUPPORTED


class RetrieveSink:
    """Where `scu.get` puts each instance it receives: through the receive service, with the node it retrieves from
    as the source (its institution owns them, DSEC-03), answered with the status a C-STORE to our SCP would get — so
    the peer counts a refused instance as a failed sub-operation."""

    def __init__(self, rx: Receiver, source: Source, conflict_status: int) -> None:
        self.rx = rx
        self.state = IngestState(source)
        self.conflict_status = conflict_status
        self.indexed = 0  # new rows, identical resends and conflicts kept aside
        self.refused = 0
        self._lock = threading.Lock()  # one association: one sub-operation at a time; the counts stay exact anyway

    @property
    def tmp_dir(self) -> Path:
        """Where to write a received data set (the store's filesystem, so it is linked under its key atomically)."""
        return self.rx.store.tmp_dir

    def __call__(self, path: Path, sop_class: object, sop_instance: object, abstract_syntax: object) -> int | Dataset:
        refused = context_mismatch(self.rx, self.state, sop_class, abstract_syntax)
        if refused is not None:
            path.unlink(missing_ok=True)
            code: int | Dataset = refused
        else:
            code = store_status(self.rx, self.state, path, sop_class, sop_instance, self.conflict_status)
        value = int(code.Status) if isinstance(code, Dataset) else code
        with self._lock:
            if value in (status.SUCCESS, self.conflict_status):
                self.indexed += 1
            else:
                self.refused += 1
        return code


@contextmanager
def retrieval(app: Any, settings: config.Settings, node: NodeInfo, ip: str | None) -> Iterator[RetrieveSink]:
    """A sink for one C-GET from `node` (REQ: DCM-04), with a receive service of its own for the duration."""
    rx = receiver(app, settings)
    try:
        yield RetrieveSink(rx, Source.device(node, ip, via="c-get"), settings.dicom_conflict_status)
    finally:
        close(rx)
