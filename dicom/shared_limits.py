"""Per-device association counts shared by the receiver processes of `telerad dicom --processes N` (DSEC-07).

Each receiver counted only its own associations, so N processes let a device open N times its limit. The parent
now allocates one row of counters per receiver in shared memory before forking; a receiver writes only its own
row (zeroed when it starts, so a restarted receiver leaves no stale counts behind) and checks the sum of all rows.
Check and increment run under `WriteGate` (a thread lock plus `flock`, released by the kernel if a process dies).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import threading
from pathlib import Path
from typing import Any

from dicom.writegate import WriteGate

SLOTS = 4096  # counters per receiver; a device uses slot id % SLOTS (ids share a slot only beyond 4,096 devices,
# and then count against each other: stricter, never looser)


class SharedCounts:
    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._counts: Any = multiprocessing.get_context("fork").RawArray(ctypes.c_int32, processes * SLOTS)
        self._row = -1
        self._gate: WriteGate | None = None

    def bind(self, index: int, lock_path: Path) -> None:
        """In receiver `index`, after the fork: forget that receiver's earlier counts, open the lock."""
        self._row = index
        self._gate = WriteGate(lock_path)
        with self._gate:
            for slot in range(SLOTS):
                self._counts[index * SLOTS + slot] = 0

    def _bound(self) -> WriteGate:
        if self._gate is None:
            raise RuntimeError("SharedCounts.bind() must run in the receiver first")
        return self._gate

    def acquire(self, node_id: int, limit: int) -> bool:
        gate = self._bound()
        slot = node_id % SLOTS
        with gate:
            total = sum(self._counts[row * SLOTS + slot] for row in range(self.processes))
            if total >= limit:
                return False
            self._counts[self._row * SLOTS + slot] += 1
            return True

    def release(self, node_id: int) -> None:
        gate = self._bound()
        i = self._row * SLOTS + node_id % SLOTS
        with gate:
            if self._counts[i] > 0:
                self._counts[i] -= 1


class AcceptBalance:
    """Least-connections accept for the receivers of `telerad dicom --processes N` (issue 12).

    With SO_REUSEPORT the kernel hashes each connection's address to one receiver: four modality connections could
    land 3 + 1 on two receivers, and the CPU-bound receiver with three set the pace while the other idled. The
    receivers now share one listening socket (made by the supervisor, non-blocking), and a receiver takes a pending
    connection only while it holds no more open associations than the least-loaded receiver (ties: whoever is
    first). A receiver writes only its own counter; a lock keeps its accept thread and association threads from
    losing updates. A receiver that stands aside for longer than `MAX_DEFER_S` accepts anyway, so a receiver stuck
    with fewer associations (e.g. stopped by a debugger) cannot leave a connection waiting.
    """

    MAX_DEFER_S = 0.02

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._active: Any = multiprocessing.get_context("fork").RawArray(ctypes.c_int32, processes)
        self._row = -1
        self._lock = threading.Lock()

    def bind(self, index: int) -> None:
        """In receiver `index`, after the fork: a restarted receiver starts with no associations."""
        self._row = index
        self._active[index] = 0

    def my_turn(self) -> bool:
        mine = self._active[self._row]
        return all(mine <= self._active[row] for row in range(self.processes))

    def opened(self) -> None:
        with self._lock:
            self._active[self._row] += 1

    def closed(self) -> None:
        with self._lock:
            if self._active[self._row] > 0:
                self._active[self._row] -= 1

    def counts(self) -> list[int]:
        return [int(self._active[row]) for row in range(self.processes)]
