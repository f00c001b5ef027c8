"""The one receive service: every way an instance reaches telerad goes through `Receiver.receive` (issue 12 §2;
REQ: DSEC-03/04/05/06/08, DCM-02, IMG-03, IMG-06, IMG-07, IMG-08).

Callers: C-STORE to our SCP, streamed (dicom/fastpath.py) or not (dicom/handlers.py); instances telerad retrieves
itself by C-GET (dicom/scu.py; C-MOVE sub-operations arrive at the SCP as C-STOREs); later STOW-RS and browser
uploads. Each hands over a received Part-10 file and an `IngestState` naming its `Source` (a device, a user or an
OAuth client, always with an institution). The rules are the same for every source:

1. check — the data set's whole structure (engine/imaging/validate.py) and, on the same walk, its indexed tags
   (engine/imaging/header.py, never the pixel data), its UIDs against PS3.5 and against what the sender announced
   (the C-STORE command's, when there is one), the store's free space. A refusal is audited as the sender's
   failure and raised; nothing is stored (DSEC-04, DSEC-08).
2. durable — a helper thread links the file under its content key and fsyncs it and its directory (DSEC-05). A file
   hashed while it arrived (the C-STORE fast path) is linked before step 1 when its key is new, so these fsyncs
   overlap the check; a refusal takes the link back (`ObjectStore.unlink_new`). Meanwhile
3. index — this thread writes the rows (engine/imaging/ingest.py: new, identical resend or conflict, DSEC-06),
   queues the study's audit event and, for a new study, its exam match (IMG-06) as one outbox row that the worker
   applies (engine/imaging/outbox.py, events.py), and applies the routing rules (forward jobs, storage placement;
   DCM-02, IMG-07/08) in one transaction that commits only once step 2 is done — through the injected committer,
   which may commit it together with other receipts' rows (dicom/groupcommit.py), or in a unit of work of its own.
4. The caller acknowledges (e.g. C-STORE 0x0000) only after `receive` returned.

Nothing here imports Flask or dicom/: the app context, the committer, the write gate and the fault points (crash
tests) are passed in by the composition root (dicom/receiving.py). The received file is gone when `receive`
returns, whatever happened (its content lives on under its key, or nowhere).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine import uow
from engine.imaging import header, ingest, routing
from engine.imaging.ingest import IngestResult, IngestState, InstanceMeta, InvalidInstance
from engine.imaging.source import Source
from engine.imaging.storage import ObjectStore, StorageFull, StoredObject, key_for

__all__ = ["Committer", "IngestState", "Receiver", "Source", "index"]

SEALER_THREADS = 8


class Committer(Protocol):
    """Runs `work` (index writes through `uow.session()`) in a transaction that commits only after `durable` has
    completed, and returns its result once committed (dicom/groupcommit.py's GroupCommit). `state` is the
    IngestState the work updates, whose caches are restored if the transaction rolls back; `entry` (state, stored,
    meta) lets a batch of receipts resolve their rows together (engine/imaging/ingest_batch.py)."""

    def run(
        self, work: Callable[[], Any], durable: Future[Any] | None = None, state: Any = None, entry: Any = None
    ) -> Any: ...


def _no_fault(point: str) -> None:
    return None


def index(state: IngestState, stored: StoredObject, meta: InstanceMeta) -> IngestResult:
    """Index one instance whose bytes are durable under `stored.key`, in the caller's unit of work: its rows, the
    outbox row of its study's audit event and exam match (engine/imaging/outbox.py; the worker applies them), its
    routing (REQ: DSEC-03/06, IMG-06, DCM-02, IMG-07/08). Never commits."""
    result = ingest.ingest_instance(state, stored, meta)
    routing.apply_at_ingest(state.source, meta, result)
    return result


@dataclass(eq=False)
class Receiver:
    """The receive service of one process: its object store and free-space threshold, and how it commits."""

    store: ObjectStore
    disk_full_percent: float
    app_context: Callable[[], AbstractContextManager[Any]]  # the Flask app's, for a unit of work in any thread
    committer: Committer | None = None  # None: one unit of work per instance
    write_gate: AbstractContextManager[Any] | None = None  # SQLite: one ingest transaction at a time
    fault: Callable[[str], None] = _no_fault  # crash-test points (dicom/faults.py): after_rename, after_fsync, …
    sealer: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(SEALER_THREADS, thread_name_prefix="dicom-seal")
    )

    def close(self) -> None:
        """Wait for the helper threads' work and stop them."""
        self.sealer.shutdown(wait=True)

    # -- the steps -----------------------------------------------------------------------------------------------
    def check(self, path: Path, sop_class: object = None, sop_instance: object = None) -> InstanceMeta:
        """Step 1: the file's structure, its indexed tags, its UIDs — against what the sender announced, if it did
        (`sop_class`, `sop_instance`; None: nothing announced) — and the free space.

        Raises:
            InvalidInstance: broken, unreadable, a non-conforming UID, or not what was announced (DSEC-04/08).
            StorageFull: the store is at its threshold (REQ: REL-01).
        """
        # REQ: DSEC-05/DSEC-08: the whole structure checked, before anything is placed or indexed, and the indexed
        # tags read on the same walk (engine/imaging/validate.py via header.read_meta: one pass over the header)
        meta = header.read_meta(path)
        meta = ingest.check_instance(
            meta,
            meta.sop_class_uid if sop_class is None else sop_class,
            meta.sop_instance_uid if sop_instance is None else sop_instance,
        )
        self.store.check_space(self.disk_full_percent)
        return meta

    def receive(
        self,
        state: IngestState,
        path: Path,
        *,
        sop_class: object = None,
        sop_instance: object = None,
        digest: str | None = None,
        size: int | None = None,
        accept: Callable[[InstanceMeta], None] | None = None,
    ) -> IngestResult:
        """Receive the Part-10 file at `path` (in the store's tmp/, so linking it is atomic) from `state.source`:
        check, make durable, index and route, commit (module docstring). `digest` and `size` (SHA-256 of the whole
        file) when the caller hashed it while writing it (dicom/fastpath.py); otherwise it is hashed here, in a
        helper thread, while the header is checked. `accept`, if given, sees the checked instance's indexed tags
        before anything is stored and may refuse it with InvalidInstance, audited like any refusal (STOW-RS: an
        instance of another study than the request's). The file is consumed.

        Raises:
            InvalidInstance, StorageFull: refused (audited); nothing stored.
            OSError: the file could not be hashed or made durable; no row committed.
        """
        try:
            return self._receive(state, path, sop_class, sop_instance, digest, size, accept)
        finally:
            path.unlink(missing_ok=True)

    def refuse(self, state: IngestState, exc: InvalidInstance | StorageFull) -> None:
        """Audit a refusal as the sender's failure (its own unit of work; REQ: DSEC-04, DSEC-08, DSEC-10)."""
        with self.app_context(), uow.unit_of_work():
            if isinstance(exc, InvalidInstance):
                ingest.record_store_failure(state, exc.message, {"code": exc.code, **exc.details})
            else:
                ingest.record_store_failure(state, "存储空间不足", {"code": "disk_full"})

    # -- internals -----------------------------------------------------------------------------------------------
    def _receive(
        self,
        state: IngestState,
        path: Path,
        sop_class: object,
        sop_instance: object,
        digest: str | None,
        size: int | None,
        accept: Callable[[InstanceMeta], None] | None = None,
    ) -> IngestResult:
        hashing = self.sealer.submit(self.store.digest_of, path) if digest is None or size is None else None
        early: Future[Any] | None = None  # the early link's fsyncs
        linked: int | None = None  # its mtime (ns), to take it back
        try:
            try:
                if digest is not None:
                    # Hashed while it arrived (dicom/fastpath.py): linked under its key now if the key is new and
                    # made durable in a helper thread while this one checks it; taken back below if refused.
                    self.store.check_space(self.disk_full_percent)
                    linked = self.store.link_new(path, digest)
                    if linked is not None:
                        early = self.sealer.submit(self._make_durable, digest)
                meta = self.check(path, sop_class, sop_instance)
                if accept is not None:
                    accept(meta)
            finally:
                if hashing is not None:  # also on refusal: never unlink under the hasher
                    digest, size = hashing.result()
        except (InvalidInstance, StorageFull) as exc:
            self._take_back(early, digest, linked)
            self.refuse(state, exc)
            raise
        except BaseException:
            self._take_back(early, digest, linked)
            raise
        assert digest is not None
        assert size is not None
        # Durable under its key in a helper thread while this one runs the index INSERT; the transaction commits
        # only after the file is durable (never a row without its file, never a success before both).
        if early is not None:
            publishing: Future[Any] = early
        else:  # not linked early (the key existed, or no digest yet): place it now
            publishing = self.sealer.submit(self._place_durably, path, digest, size)
        try:
            stored = StoredObject(key_for(digest), digest, size)
            if self.committer is not None:  # may commit with other receipts' rows, after `publishing`
                result: IngestResult = self.committer.run(
                    lambda: index(state, stored, meta), publishing, state, (state, stored, meta)
                )
                return result
            with self.write_gate or nullcontext(), self.app_context(), uow.unit_of_work():
                result = index(state, stored, meta)
                publishing.result()  # durable under its key before the commit; an OSError rolls the row back
                self.fault("after_db_insert")
            return result
        finally:
            futures.wait([publishing])  # never unlink (in `receive`) under a link still in progress

    def _make_durable(self, digest: str) -> StoredObject:
        """fsync a file linked early under its key, and its directory (REQ: DSEC-05)."""
        stored = StoredObject(key_for(digest), digest, 0)
        self.fault("after_rename")  # REQ: DSEC-05 crash test: under its key, not durable, no row
        self.store.make_durable(stored)
        self.fault("after_fsync")  # durable under its key, no row
        return stored

    def _take_back(self, early: Future[Any] | None, digest: str | None, linked: int | None) -> None:
        """A refused receipt that was linked early leaves nothing under its key (DSEC-04: no file, no row)."""
        if early is not None:
            futures.wait([early])
        if digest is not None and linked is not None:
            self.store.unlink_new(key_for(digest), linked)

    def _place_durably(self, path: Path, digest: str, size: int) -> StoredObject:
        """Link a checked file under its content key, then fsync it and its directory: one journal commit for the
        name and the data (engine/imaging/storage.py). The file in tmp/ is consumed, also on failure."""
        try:
            stored = self.store.place(path, digest, size)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.fault("after_rename")  # REQ: DSEC-05 crash test: under its key, not durable, no row
        self.store.make_durable(stored)
        self.fault("after_fsync")  # durable under its key, no row
        return stored
