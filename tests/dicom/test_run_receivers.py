"""The DICOM receiver count a newcomer gets (issue 12, benchmark; REQ: DCM-01): by default from the core count
(engine.config.default_dicom_processes), and `telerad run` honours it — several receivers run as a child
`telerad dicom --processes N` that stops with `telerad run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask import Flask

from dicom import status
from engine import config
from engine.imaging.models import Instance
from tests.dicom import synthetic
from tests.dicom.conftest import count, echo_ok, store
from tests.dicom.test_cli import _env, _free_port

TELERAD = Path(sys.executable).with_name("telerad")


def test_dcm01_default_receivers_follow_the_core_count(tmp_path: Path) -> None:
    assert [config.default_dicom_processes(c) for c in (1, 2, 3, 4, 6, 8, 64)] == [2, 4, 4, 4, 4, 4, 8]
    base = {"TELERAD_MODE": "test", "TELERAD_INSTANCE_DIR": str(tmp_path)}
    assert config.load_settings(base).dicom_processes == config.default_dicom_processes()
    assert config.load_settings({**base, "TELERAD_DICOM_PROCESSES": "3"}).dicom_processes == 3
    for bad in ("0", "-1", "65"):
        with pytest.raises(config.ConfigError, match="TELERAD_DICOM_PROCESSES"):
            config.load_settings({**base, "TELERAD_DICOM_PROCESSES": bad})


def _tree(root: int) -> list[int]:
    """`root`'s descendants (children first)."""
    out: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        out += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_dcm01_run_serves_several_receivers_and_stops_them(
    app: Flask, settings: config.Settings, tmp_path: Path
) -> None:
    """`telerad run` with TELERAD_DICOM_PROCESSES=2 (before: always one receiver in the web process) serves the
    DICOM port from two receiver processes under a child supervisor; SIGTERM to `telerad run` stops them all."""
    port = _free_port()
    env = {**_env(settings, port), "TELERAD_DICOM_PROCESSES": "2", "TELERAD_HTTP_PORT": str(_free_port())}
    subprocess.run(
        [str(TELERAD), "dicom", "node", "add", "--aet", "MODALITY1", "--host", "127.0.0.1", "--institution", "M01"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    proc = subprocess.Popen([str(TELERAD), "run"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    tree: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not echo_ok(port, "MODALITY1"):
            assert time.monotonic() < deadline, "DICOM port did not answer"
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.3)
        children = _tree(proc.pid)
        while len(children) < 3 and time.monotonic() < deadline:  # the supervisor and its two receivers
            time.sleep(0.2)
            children = _tree(proc.pid)
        supervisor = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                     text=True).stdout.split()]  # fmt: skip
        assert len(supervisor) == 1
        assert len(_tree(supervisor[0])) == 2  # two receivers share the port
        tree = _tree(proc.pid)
        files = [synthetic.ct(tmp_path / f"{i}.dcm") for i in range(6)]
        for f in files:  # one association each: the kernel spreads them over both receivers
            assert store(port, "MODALITY1", [f]) == [status.SUCCESS]
        assert count(app, Instance) == 6
        proc.send_signal(signal.SIGTERM)  # to `telerad run` only: it stops the supervisor, which stops the rest
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in tree if _alive(p)]
        assert not echo_ok(port, "MODALITY1")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for pid in tree:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
