"""Metadata templates built soon after ingest, off the receive path (issue 16; engine/dicomweb/metadata.py).

A series' first metadata request used to build every instance's DICOM JSON (1.9 s for a 1,000-slice CT, measured
by bench/bench_metadata.py) while the viewer waited. Building it inside the receive path would cost the C-STORE
fast path ~1–2 ms an instance (issue 12's store benchmark is at the edge of its target), so the receive service
only hands each newly stored file's content key to a `Prebuilder` (a deque append), whose one thread builds and
writes the templates when the receiver has been idle for IDLE_S seconds — after an association's burst, before a
reader opens the study — or when a key has waited MAX_WAIT_S under a continuous stream. What it has not built yet
(a crash, a full queue, a file stored by another path) the first request builds (metadata.templates): the
prebuilder is an optimisation, never needed for a correct answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from engine import uow
from engine.dicomweb import metadata
from engine.imaging.storage import ObjectStore, StoredObject

log = logging.getLogger("telerad.dicomweb")

IDLE_S = 0.5
MAX_WAIT_S = 30.0
BATCH = 100
MAX_PENDING = 200_000


class Prebuilder:
    """Builds the metadata templates of the files a receiver stored (`submit`), in a thread of its own started on
    the first key (so a receiver created before a fork starts it in the process that uses it)."""

    def __init__(
        self,
        app_context: Callable[[], AbstractContextManager[Any]],
        store: ObjectStore,
        write_gate: AbstractContextManager[Any] | None = None,
        idle_s: float = IDLE_S,
    ) -> None:
        self.app_context, self.store, self.write_gate, self.idle_s = app_context, store, write_gate, idle_s
        self._pending: deque[tuple[float, str]] = deque()
        self._last = 0.0
        self._wake = threading.Event()  # a key was queued
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._busy = False
        self.built = 0

    def submit(self, stored: StoredObject) -> None:
        """Queue a newly stored file (the receive path: constant time, no I/O)."""
        now = time.monotonic()
        was_empty = not self._pending
        if len(self._pending) < MAX_PENDING:
            self._pending.append((now, stored.key))
        self._last = now
        if self._thread is None:
            self._start()
        if was_empty:  # the thread waits for the first key only; it then watches the queue itself
            self._wake.set()

    def close(self, drain: bool = False) -> None:
        """Stop the thread (`drain`: after building what is queued)."""
        if drain and self._thread is not None:
            self.idle_s = 0.0
            self._wake.set()
            while (self._pending or self._busy) and self._thread.is_alive():
                time.sleep(0.01)
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dicomweb-prebuild", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            while self._pending and not self._stopping.is_set():
                now = time.monotonic()
                quiet = now - self._last
                if quiet < self.idle_s and now - self._pending[0][0] < MAX_WAIT_S:
                    self._stopping.wait(self.idle_s - quiet)  # not woken by each key: the receive path stays quiet
                    continue
                self._busy = True
                keys = [self._pending.popleft()[1] for _ in range(min(BATCH, len(self._pending)))]
                try:
                    self.built += self.build(keys)
                except Exception:  # noqa: BLE001 - the first request builds what is left
                    log.warning("prebuilding %d metadata templates failed", len(keys), exc_info=True)
                finally:
                    self._busy = False

    def build(self, keys: list[str]) -> int:
        """Build and write the templates of `keys` that have none yet; how many were written."""
        with self.app_context():
            with uow.unit_of_work():
                todo = metadata.missing(keys)
            rows = []
            for key in keys:
                if key not in todo:
                    continue
                try:
                    token, doc = metadata.build(self.store.path(key))
                except Exception:  # noqa: BLE001, S112 - unreadable or gone: the request reports it as it always did
                    continue
                rows.append({"storage_key": key, "marker": token, "doc": doc})
            if rows:
                with self.write_gate or nullcontext(), uow.unit_of_work():
                    metadata.store(rows)
            return len(rows)
