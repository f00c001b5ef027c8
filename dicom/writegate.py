"""One writer at a time on SQLite, across receiver threads and processes, without SQLite's busy back-off.

SQLite allows one write transaction at a time; a connection that finds the database locked sleeps in growing
steps (1, 2, 5, 10 … 100 ms) until busy_timeout. With several associations storing at once (threads, or
`telerad dicom --processes N`) those sleeps, not the work, set the pace (measured: 4 associations on 2 processes
ran slower than on 1). A blocking lock — a thread lock plus `flock` on a file beside the database — hands the
write over as soon as it is free. PostgreSQL needs none of this.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType


class WriteGate:
    """Context manager serialising the DICOM ingest transactions of this process and of its sibling processes."""

    def __init__(self, lock_path: Path) -> None:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> WriteGate:
        self._lock.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    def close(self) -> None:
        """Close the lock file (a gate made for one retrieval; the SCP's lives as long as its process)."""
        os.close(self._fd)
