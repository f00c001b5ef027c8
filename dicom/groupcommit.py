"""Group commit of the C-STORE index rows of one receiver process (REQ: DSEC-05; issue 4 "group commit across
associations is fine as long as no success is sent before its commit").

Leader/follower, no extra thread: an association's thread that has a row to index queues it; the first one that
finds no commit in progress becomes the leader, takes every queued row (its own and those queued by the other
associations meanwhile), runs them in one transaction, waits until each row's file is durable under its key, commits
once and wakes the followers, whose rows were committed with it. With one association this is exactly one
transaction per instance (no hand-off); with several, one BEGIN/COMMIT — on SQLite one write-gate turn and one WAL
sync, on PostgreSQL one WAL flush — serves a whole batch.

A success is answered only by the thread that queued the row, after `run` returned, i.e. after the commit. When a
row fails (its work raises, or its file could not be made durable), the batch is rolled back and every other row is
run again alone, so one bad instance never costs the others their success. The per-association caches that an
ingest fills (study/series ids, audited studies) are restored on rollback: an id from a rolled-back transaction
must never be reused.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext, suppress
from typing import Any, Protocol

from dicom import faults
from engine import uow
from engine.db import DEFER_WAL_SYNC

MAX_BATCH = 64
_CACHES = ("studies", "series", "audited", "stored", "modalities", "fresh", "inserted")


class BatchHooks(Protocol):
    """Index work done for a whole batch (engine/imaging/ingest_batch.py's BatchIndexer): `prepare` gets the
    batch's entries before their work runs, `flush` runs after it (before the commit), `discard` when it failed."""

    def prepare(self, entries: list[Any]) -> None: ...

    def flush(self) -> None: ...

    def discard(self) -> None: ...


class _Item:
    __slots__ = ("work", "durable", "state", "entry", "result", "error", "done", "committed")

    def __init__(self, work: Callable[[], Any], durable: Future[Any] | None, state: Any, entry: Any) -> None:
        self.work = work
        self.durable = durable
        self.state = state
        self.entry = entry
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False
        self.committed = False


class GroupCommit:
    """Batches ingest transactions across the associations of this process; see the module docstring."""

    def __init__(
        self,
        app: Any,
        write_gate: AbstractContextManager[Any] | None = None,
        max_batch: int = MAX_BATCH,
        sync: Callable[[], None] | None = None,
        hooks: BatchHooks | None = None,
    ):
        self._app = app
        self._gate = write_gate
        self._max_batch = max_batch
        self._hooks = hooks  # a batch of several rows: its index statements shared (engine/imaging/ingest_batch.py)
        self._sync = sync  # SQLite: the WAL sync that makes a commit durable, run after the gate is released
        self._cond = threading.Condition()
        self._queue: list[_Item] = []
        self._leading = False
        self.transactions = 0  # statistics: transactions run and rows they carried
        self.rows = 0

    def run(
        self, work: Callable[[], Any], durable: Future[Any] | None = None, state: Any = None, entry: Any = None
    ) -> Any:
        """Run `work` (index writes through `uow.session()`) in a transaction that commits only after `durable`
        (the file linked under its key, it and its directory fsynced) has completed; returns its result once committed.

        `state` is the IngestState the work updates (its caches are restored if the batch rolls back); `entry` what
        the batch hooks' `prepare` gets for this row (None: nothing to prepare).
        Raises what `work` or `durable` raised, or the commit's error.
        """
        item = _Item(work, durable, state, entry)
        with self._cond:
            self._queue.append(item)
        while True:
            with self._cond:
                while not item.done and self._leading:
                    self._cond.wait()
                if item.done:
                    return _outcome(item)
                self._leading = True  # lead: our row is still queued (FIFO), in this batch or a later one
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
            try:
                self._commit(batch)
            finally:
                with self._cond:
                    for it in batch:
                        if not it.committed and it.error is None:
                            it.error = RuntimeError("ingest transaction not committed")
                        it.done = True
                    self._leading = False
                    self._cond.notify_all()

    # -- leader ------------------------------------------------------------------------------------------------
    def _commit(self, batch: list[_Item]) -> None:
        saved = _snapshot(batch)
        try:
            self._transaction(batch)
            return
        except Exception as exc:  # re-run alone below; each row gets its own outcome
            failure: BaseException = exc
        _restore(saved)
        if _connection_lost(failure):
            # The database dropped the connection (a restart, an idle timeout): the pool has discarded it
            # (engine.db.ping_when_idle only pings a connection that sat idle), so the batch runs once more on a new
            # one instead of answering every row in it with a failure. Ingest is idempotent: had a lost COMMIT
            # landed after all, the re-run finds the rows (an identical resend, DSEC-06).
            saved = _snapshot(batch)  # a fresh copy: the restored caches are the old copies themselves
            try:
                self._transaction(batch)
                return
            except Exception as exc:
                failure = exc
            _restore(saved)
        if len(batch) == 1:
            batch[0].error = failure
            return
        for it in batch:
            single = _snapshot([it])
            try:
                self._transaction([it])
            except Exception as exc:  # reported to that row's thread
                _restore(single)
                it.error = exc

    def _transaction(self, batch: list[_Item]) -> None:
        self.transactions += 1
        self.rows += len(batch)
        with self._app.app_context():  # pushed (and popped: session teardown) outside the gate
            try:
                with self._gate or nullcontext(), uow.unit_of_work() as session:
                    self._run_work(batch)
                    for it in batch:
                        if it.durable is not None:
                            it.durable.result()  # durable under its key before the commit (DSEC-05)
                        faults.hit("after_db_insert")  # DSEC-05 crash test: row inserted, file published, no commit
                    if self._sync is not None:
                        session.info[DEFER_WAL_SYNC] = True  # synced below, once the gate is free for the next writer
            except BaseException:
                if self._sync is not None:  # the failure audit that a rollback replays and commits (engine.uow)
                    with suppress(OSError):
                        self._sync()
                raise
            if self._sync is not None:
                self._sync()  # the commit durable (engine.db.durable_wal_commits) before any success is answered
        for it in batch:
            it.committed = True

    def _run_work(self, batch: list[_Item]) -> None:
        entries = [it.entry for it in batch if it.entry is not None]
        hooks = self._hooks if len(entries) > 1 else None  # one row: the per-row path is already one INSERT
        if hooks is None:
            for it in batch:
                it.result = it.work()
            return
        try:
            hooks.prepare(entries)
            for it in batch:
                it.result = it.work()
            hooks.flush()
        except BaseException:
            hooks.discard()
            raise


def _connection_lost(exc: BaseException) -> bool:
    """SQLAlchemy marks a DBAPI error that means the connection is gone (`connection_invalidated`)."""
    return bool(getattr(exc, "connection_invalidated", False))


def _outcome(item: _Item) -> Any:
    if item.error is not None:
        raise item.error
    return item.result


def _snapshot(batch: list[_Item]) -> list[tuple[Any, dict[str, Any]]]:
    seen: dict[int, tuple[Any, dict[str, Any]]] = {}
    for it in batch:
        st = it.state
        if st is not None and id(st) not in seen:
            seen[id(st)] = (st, {name: copy.copy(getattr(st, name)) for name in _CACHES if hasattr(st, name)})
    return list(seen.values())


def _restore(saved: list[tuple[Any, dict[str, Any]]]) -> None:
    for st, values in saved:
        for name, value in values.items():
            setattr(st, name, value)
