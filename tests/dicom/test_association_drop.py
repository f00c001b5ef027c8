"""The association drop of bench/bench_dicom.py's C-FIND load (10,000 studies over 4 parallel storescu).

What happened: the bench started 4 `storescu -v` with stderr=PIPE and read the pipes one after the other
(`communicate()` on the first process, then the second, …). A storescu writes ~240 bytes of `-v` log per file, so
after ~270 files (64 KiB, the pipe's capacity) the 2nd–4th storescu blocked in a write to stderr, in the middle of
their association, until every process before them had exited. The 2nd resumed after the 1st finished (< 60 s);
the 3rd and 4th stayed silent longer than the SCP's network timeout (60 s) and telerad aborted them — correctly
(the peer *was* silent), but without a word in its log. Hence the deterministic drop position (file ~268 of an
association, e.g. part3/004051.dcm), the 5,544/7,772 acked, and no reproduction with a harness that read the
output.

Here, on a real SCP with a 1 s network timeout:
- the bench's `store()` keeps four storescu running to the end although each writes well over 64 KiB of log while
  the first one runs for more than the network timeout after the others' pipes would have filled (the old harness
  dropped the 3rd and 4th association here every time);
- a peer that goes silent for longer than the network timeout (what the blocked storescu looked like) is aborted and
  the SCP logs a warning with the calling AE title, the peer address and the reason; a peer A-ABORT and a connection
  closed without A-RELEASE are logged too.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from flask import Flask
from pydicom.uid import ExplicitVRLittleEndian
from sqlalchemy import select

from dicom import scp as scp_mod
from engine import config
from engine.imaging.models import Instance
from tests.dicom import synthetic
from tests.dicom.conftest import add_node, associate, count, echo_ok, rows

ROOT = Path(__file__).resolve().parents[2]
NETWORK_TIMEOUT = 1.0


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_dicom_under_test", ROOT / "bench" / "bench_dicom.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def quick_scp(app: Flask, settings: config.Settings) -> Iterator[scp_mod.Running]:
    """The SCP with a 1 s network timeout (the bench ran with the default 60 s)."""
    settings.dicom_network_timeout = NETWORK_TIMEOUT
    running = scp_mod.start(app, settings, host="127.0.0.1", port=0)
    yield running
    running.stop()


def _write(directory: Path, n: int) -> None:
    """`n` tiny Secondary Capture instances, one study each."""
    directory.mkdir(parents=True)
    for i in range(n):
        ds = synthetic.image(synthetic.base(synthetic.SECONDARY_CAPTURE, modality="OT"))
        ds.InstanceNumber = i + 1
        ds.save_as(directory / f"{i:05d}.dcm", enforce_file_format=True)


def _lost(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "ended abnormally" in r.getMessage()]


def _wait_for(predicate: Callable[[], object], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)


def test_bench_store_keeps_parallel_storescu_running_past_a_full_stderr_pipe(
    app: Flask, quick_scp: scp_mod.Running, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bench = _bench()
    add_node(app, bench.SCU_AET)
    # Directories 1–3: long paths, so that each storescu's `-v` log passes 64 KiB (a pipe's capacity) after ~60
    # files; directory 0: enough files to keep the first storescu busy well past the network timeout after that.
    deep = tmp_path.joinpath(*["d" * 200] * 4)
    dirs = [tmp_path / "part0", *(deep / f"part{i}" for i in (1, 2, 3))]
    _write(dirs[0], 600)
    for d in dirs[1:]:
        _write(d, 100)
    peer = SimpleNamespace(
        name="telerad", aet="TELERAD", port=quick_scp.port, pid=os.getpid(), workdir=tmp_path / "work"
    )  # the SCP runs in this process: bench.store reads its CPU time by pid
    caplog.set_level(logging.WARNING, logger="telerad.dicom")

    res = bench.store(peer, dirs, "drop")

    logs = sorted((tmp_path / "work" / "storescu").glob("drop-telerad-*.log"))
    assert [p.stat().st_size > 65536 for p in logs[1:]] == [True, True, True]  # the old harness blocked these
    assert res["failures"] == [], res["failures"]
    assert res["rc"] == [0, 0, 0, 0]
    assert res["ok"] == 900
    assert count(app, Instance) == 900
    assert _lost(caplog) == []


def test_bench_store_reports_every_failed_storescu(
    app: Flask, quick_scp: scp_mod.Running, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bench = _bench()  # BENCHSCU is not registered: the association is rejected, the failure must be reported
    _write(tmp_path / "part0", 2)
    peer = SimpleNamespace(
        name="telerad", aet="TELERAD", port=quick_scp.port, pid=os.getpid(), workdir=tmp_path / "work"
    )  # the SCP runs in this process: bench.store reads its CPU time by pid
    res = bench.store(peer, [tmp_path / "part0"], "rejected")
    assert res["ok"] == 0
    [failure] = res["failures"]
    assert failure["rc"] != 0
    assert failure["acked"] == 0
    assert any("Association Rejected" in e or "Association Request Failed" in e for e in failure["errors"])


def test_silent_peer_is_aborted_after_the_network_timeout_and_logged(
    app: Flask, quick_scp: scp_mod.Running, modality: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="telerad.dicom")
    _write(tmp_path / "in", 2)
    files = sorted((tmp_path / "in").iterdir())
    assoc = associate(quick_scp.port, modality, [(synthetic.SECONDARY_CAPTURE, [ExplicitVRLittleEndian])])
    assert assoc.is_established
    local_port = assoc.dul.socket.socket.getsockname()[1]
    try:
        for f in files:
            assert int(assoc.send_c_store(f).Status) == 0x0000
        # Silent like a storescu blocked on its stderr pipe: the SCP waits the network timeout, then aborts.
        _wait_for(lambda: assoc.is_aborted, timeout=NETWORK_TIMEOUT + 5)
        assert assoc.is_aborted
    finally:
        if assoc.is_established:
            assoc.abort()
    _wait_for(lambda: _lost(caplog))
    [message] = _lost(caplog)
    assert f"calling AE {modality} from 127.0.0.1:{local_port}" in message
    assert "network timeout" in message
    assert "A-ABORT sent" in message
    assert len(rows(app, select(Instance.id))) == 2  # what was acknowledged stays stored (DSEC-05)
    assert echo_ok(quick_scp.port, modality)


def test_peer_abort_and_lost_connection_are_logged(
    app: Flask, quick_scp: scp_mod.Running, modality: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="telerad.dicom")
    contexts = [(synthetic.SECONDARY_CAPTURE, [ExplicitVRLittleEndian])]
    assoc = associate(quick_scp.port, modality, contexts)
    assert assoc.is_established
    assoc.abort()
    _wait_for(lambda: _lost(caplog))
    assert any("A-ABORT received from the peer" in m and f"calling AE {modality}" in m for m in _lost(caplog))

    caplog.clear()
    assoc = associate(quick_scp.port, modality, contexts)
    assert assoc.is_established
    sock = assoc.dul.socket.socket
    sock.shutdown(socket.SHUT_RDWR)  # gone without A-RELEASE (a crashed or killed SCU)
    _wait_for(lambda: _lost(caplog))
    assoc.abort()
    assert any("connection lost without A-RELEASE" in m for m in _lost(caplog)), _lost(caplog)

    caplog.clear()
    assoc = associate(quick_scp.port, modality, contexts)
    assert assoc.is_established
    assoc.release()  # a normal release is not an abnormal end
    time.sleep(0.3)
    assert _lost(caplog) == []
