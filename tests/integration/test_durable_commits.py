"""SQLite commits made durable after COMMIT (engine.db.durable_wal_commits; REQ: DSEC-05): a write transaction's
commit returns only after an fdatasync of the database's WAL; a read-only one syncs nothing; a caller that defers the
sync (the DICOM group commit) gets none from the commit. Watched with strace on this very process. The receiver's
end-to-end order (file fsync, WAL sync, then the C-STORE response) is tests/dicom/test_cli.py's
test_dsec05_success_only_after_the_index_commit_is_synced.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import text

from api.extensions import db
from engine import audit, uow
from engine.actor import Actor
from engine.db import DEFER_WAL_SYNC, durable_wal_commits
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite", reason="SQLite 专用：PostgreSQL 的提交由服务器同步（synchronous_commit）"
)


def _wal_syncs_per_phase(tmp_path: Path, phases: list[Callable[[], None]]) -> list[int]:
    """Run each phase while strace watches this process's fdatasync calls; WAL syncs counted per phase (phases are
    separated by an fdatasync of a marker file)."""
    marker = tmp_path / "phase-marker"
    marker.write_bytes(b"x")
    log = tmp_path / "strace.log"
    tracer = subprocess.Popen(
        ["strace", "-f", "-y", "-qq", "-e", "trace=fdatasync", "-o", str(log), "-p", str(os.getpid())],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not (log.exists() and "phase-marker" in log.read_text()):  # attached: it sees our marker syncs
            assert tracer.poll() is None, tracer.stderr.read() if tracer.stderr else b""
            assert time.monotonic() < deadline, "strace did not attach"
            fd = os.open(marker, os.O_RDONLY)
            os.fdatasync(fd)
            os.close(fd)
            time.sleep(0.05)
        for phase in phases:
            phase()
            fd = os.open(marker, os.O_RDONLY)
            os.fdatasync(fd)
            os.close(fd)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(10)
    counts: list[int] = []
    current: int | None = None
    for line in log.read_text().splitlines():
        if "phase-marker" in line:
            if current is not None:
                counts.append(current)
            current = 0
        elif current is not None and re.search(r"fdatasync\(\d+<[^>]*-wal>", line):
            current += 1
    return counts


def test_dsec05_write_commit_syncs_the_wal_read_only_and_deferred_do_not(app: Flask, tmp_path: Path) -> None:
    with app.app_context():
        sync = durable_wal_commits(db.engine)
    assert sync is not None

    def read_only() -> None:
        with app.app_context(), uow.unit_of_work() as s:
            s.execute(text("SELECT count(*) FROM audit_event")).scalar()

    def write() -> None:
        with app.app_context(), uow.unit_of_work():
            audit.record(Actor.system("test"), "dicom_association_accepted", details={"n": 1})

    def deferred_write() -> None:
        with app.app_context(), uow.unit_of_work() as s:
            audit.record(Actor.system("test"), "dicom_association_accepted", details={"n": 2})
            s.info[DEFER_WAL_SYNC] = True

    def deferred_then_synced() -> None:
        deferred_write()
        sync()

    with app.app_context(), uow.unit_of_work() as s:
        assert s.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL: COMMIT itself does not sync
    counts = _wal_syncs_per_phase(tmp_path, [read_only, write, deferred_write, deferred_then_synced, read_only])
    assert counts[0] == 0, counts  # read-only: nothing to sync
    assert counts[1] >= 1, counts  # a write: synced before its commit returned
    assert counts[2:] == [0, 1, 0], counts  # deferred: none from the commit, one from the caller's sync
