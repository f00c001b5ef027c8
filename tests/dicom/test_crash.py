"""DSEC-05 crash test: the SCP (`telerad dicom`, a real subprocess) is killed with os._exit(9) at each of five points
of the receive path while a series is sent; it is restarted and the whole series is re-sent. Invariants after each
crash and after the resend (SECURITY.md DSEC-05):

- never an SCU-observed 0x0000 whose instance is missing (row + file + digest) after the restart;
- database rows == distinct UIDs; every row's file exists and its SHA-256 matches; no row without a file;
- after the sweeper (`telerad dicom sweep`), no file without a row and no temp file.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from sqlalchemy import func, select

from dicom import faults, status
from dicom.scp import Running
from engine import config, uow
from engine.actor import Actor
from engine.imaging import ingest
from engine.imaging.models import Instance, InstanceConflict
from engine.imaging.storage import ObjectStore
from tests.conftest import TEST_SECRET
from tests.dicom import synthetic
from tests.dicom.conftest import add_node, nodelay, rows, scalar

TELERAD = Path(sys.executable).with_name("telerad")
AET = "CRASH_CT"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(settings: config.Settings, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TELERAD_DICOM_FAULT"}
    env.update(
        {
            "TELERAD_MODE": "test",
            "TELERAD_INSTANCE_DIR": str(settings.instance_dir),
            "TELERAD_STORAGE_DIR": str(settings.storage_dir),
            "TELERAD_DATABASE_URL": settings.database_url,
            "TELERAD_SECRET_KEY": TEST_SECRET,
            "TELERAD_DICOM_PORT": str(port),
            "TELERAD_DICOM_HOST": "127.0.0.1",
            # one receiver in this process: its death is the crash (under `--processes N` the supervisor would
            # restart it; tests/dicom/test_cli.py covers that)
            "TELERAD_DICOM_PROCESSES": "1",
            **extra,
        }
    )
    return env


def _connectable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def scp_process(settings: config.Settings, port: int, fault: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """`telerad dicom` (with the fault armed) in its own session; stopped with SIGTERM unless it already died."""
    extra = {"TELERAD_DICOM_FAULT": fault} if fault else {}
    proc = subprocess.Popen(
        [str(TELERAD), "dicom"],
        env=_env(settings, port, **extra),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not _connectable(port):
            assert proc.poll() is None, (proc.stderr.read() if proc.stderr else b"").decode()
            assert time.monotonic() < deadline, "SCP did not start"
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        if proc.stderr:
            proc.stderr.close()


def make_series(n: int) -> list[Dataset]:
    """`n` small synthetic CT instances of one series (8×8 pixels, distinct content)."""
    study, series = generate_uid(), generate_uid()
    out = []
    for i in range(n):
        ds = synthetic.image(
            synthetic.base(synthetic.CT_IMAGE, modality="CT", StudyInstanceUID=study, SeriesInstanceUID=series)
        )
        ds.InstanceNumber = i + 1
        out.append(ds)
    return out


def send(port: int, series: list[Dataset]) -> dict[str, int]:
    """C-STORE the series over one association; the status of each instance that got a response."""
    ae = AE(ae_title=AET)
    # Generous: the invariants are the point, not latency; a loaded CI disk can stall one fsync for seconds.
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    ae.add_requested_context(synthetic.CT_IMAGE, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title="TELERAD")
    assert assoc.is_established
    nodelay(assoc)
    observed: dict[str, int] = {}
    try:
        for ds in series:
            if not assoc.is_established:
                break
            rsp = assoc.send_c_store(ds)
            if "Status" not in rsp:
                # No response: the SCP died. pynetdicom may not have marked the association ended yet, and the next
                # send would wait its whole DIMSE timeout (60 s per crash case, issue 13).
                break
            observed[str(ds.SOPInstanceUID)] = int(rsp.Status)
    finally:
        if assoc.is_established:
            assoc.release()
    return observed


def check_index(app: Flask, store: ObjectStore) -> set[str]:
    """Rows == distinct UIDs, every row's file exists with its digest; returns the indexed SOP Instance UIDs."""
    found = rows(app, select(Instance.sop_instance_uid, Instance.storage_key, Instance.sha256, Instance.size))
    uids = [r.sop_instance_uid for r in found]
    assert len(uids) == len(set(uids))
    for uid, key, digest, size in found:
        path = store.path(key)
        assert path.is_file(), f"row without a file: {uid}"
        assert path.stat().st_size == size
        assert store.verify(key, digest), f"digest mismatch: {uid}"
    return set(uids)


def sweep(settings: config.Settings) -> str:
    res = subprocess.run(
        [str(TELERAD), "dicom", "sweep"],
        env=_env(settings, 0, TELERAD_DICOM_ORPHAN_AGE_MIN="0"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def sweep_in_process(app: Flask, store: ObjectStore) -> int:
    with app.app_context(), uow.unit_of_work():
        return ingest.sweep_store(Actor.system("test"), store, 0)


def run_crash_case(
    app: Flask, settings: config.Settings, scp: Running, point: str, nth: int, n: int, *, cli_sweep: bool = False
) -> tuple[dict[str, int], int, int]:
    add_node(app, AET)
    store = ObjectStore(settings.storage_dir / "dicom")
    series = make_series(n)
    uids = {str(ds.SOPInstanceUID) for ds in series}
    port = _free_port()

    # 1. The SCP process dies at `point` while the nth instance is received.
    with scp_process(settings, port, fault=f"{point}:{nth}") as proc:
        observed = send(port, series)
        assert proc.wait(timeout=60) == faults.EXIT_CODE
    successes = {uid for uid, st in observed.items() if st == status.SUCCESS}
    assert len(successes) == nth - 1  # everything before the fatal instance was acknowledged, nothing after
    assert len(observed) == nth - 1

    # 2. After the crash: no acknowledged instance is missing, no row without its file.
    indexed = check_index(app, store)
    assert successes <= indexed, "an SCU-observed 0x0000 whose instance is missing"
    committed_fatal = point == "before_response"  # the only point at which the unanswered instance is durable
    assert len(indexed) == len(successes) + (1 if committed_fatal else 0)
    tmp_left = len(list(store.tmp_dir.iterdir()))

    # 3. Restarted (a fresh receiver on the same database and store), the whole series is re-sent: every instance
    #    acknowledged, the already-stored ones idempotently.
    again = send(scp.port, series)
    assert again == dict.fromkeys(uids, status.SUCCESS)
    assert check_index(app, store) == uids
    assert int(scalar(app, select(func.count()).select_from(InstanceConflict)) or 0) == 0

    # 4. The sweeper removes what the crash left behind, and only that.
    swept = int(sweep(settings).split()[1]) if cli_sweep else sweep_in_process(app, store)
    assert list(store.tmp_dir.iterdir()) == []
    keys = {k for k, _ in store.iter_keys()}
    indexed_keys = {r.storage_key for r in rows(app, select(Instance.storage_key))}
    assert keys == indexed_keys, "a file without a row after the sweep"
    assert check_index(app, store) == uids
    return observed, tmp_left, swept


# The nth instance at which each point fires, spread over the first half of the series (the resend is whole).
CASES = [
    ("after_receive", 100),
    ("after_fsync", 150),
    ("after_rename", 60),
    ("after_db_insert", 200),
    ("before_response", 250),
]


@pytest.mark.parametrize(("point", "nth"), CASES, ids=[p for p, _ in CASES])
def test_dsec05_crash_at_each_point_then_resend_keeps_invariants(
    app: Flask, settings: config.Settings, scp: Running, point: str, nth: int
) -> None:
    # The CLI sweeper (`telerad dicom sweep`) once, the service function otherwise (saves a process start).
    observed, tmp_left, swept = run_crash_case(app, settings, scp, point, nth, 500, cli_sweep=point == "after_fsync")
    # What the crash left: nothing half-indexed anywhere; a temp file until the receipt ended (swept). A C-STORE
    # hashed while it arrived is linked under its key while it is checked and keeps its temp name until the receipt
    # ends (engine/imaging/receive.py), so a crash from after_receive to after_db_insert leaves that temp name; the
    # linked file of after_rename/after_fsync/after_db_insert is adopted by the resend's row.
    if point == "before_response":
        assert tmp_left == 0
        assert swept == 0
    else:
        assert tmp_left == 1
        assert swept == 1
    assert len(observed) == nth - 1


def test_dsec05_fault_hook_is_inert_unless_set() -> None:
    """The hook parses only known points, and without the variable every call returns."""
    assert faults._parse("") == (None, 0)
    assert faults._parse("after_fsync:7") == ("after_fsync", 7)
    with pytest.raises(ValueError, match="unknown point"):
        faults._parse("after_lunch")
    for point in faults.POINTS:
        faults.hit(point)  # this test process has no TELERAD_DICOM_FAULT: returns


@pytest.mark.slow
@pytest.mark.parametrize("point", faults.POINTS)
def test_dsec05_crash_long_series(app: Flask, settings: config.Settings, scp: Running, point: str) -> None:
    """test-long: a 3,000-instance series, killed late; the CLI sweeper."""
    run_crash_case(app, settings, scp, point, 2_750, 3_000, cli_sweep=True)
