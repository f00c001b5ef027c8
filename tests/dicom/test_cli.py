"""The fixed CLI interface (issue 4): `telerad dicom node add|list` and `telerad dicom --processes N` serving on one
port (one listening socket shared by the receivers), as real subprocesses against the per-test database."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from flask import Flask
from sqlalchemy import select, text

from dicom import status
from engine import config
from engine.imaging.models import DicomNode, Instance
from tests.conftest import TEST_SECRET
from tests.dicom import synthetic
from tests.dicom.conftest import count, echo_ok, rows, store

TELERAD = Path(sys.executable).with_name("telerad")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(settings: config.Settings, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "TELERAD_MODE": "test",
        "TELERAD_INSTANCE_DIR": str(settings.instance_dir),
        "TELERAD_STORAGE_DIR": str(settings.storage_dir),
        "TELERAD_DATABASE_URL": settings.database_url,
        "TELERAD_SECRET_KEY": TEST_SECRET,
        "TELERAD_DICOM_PORT": str(port),
        "TELERAD_DICOM_HOST": "127.0.0.1",
    }


def test_img02_node_add_and_list(app: Flask, settings: config.Settings) -> None:
    env = _env(settings, _free_port())
    fp = "AB:" * 31 + "AB"
    res = subprocess.run(
        [str(TELERAD), "dicom", "node", "add", "--aet", "CT01", "--host", "10.1.2.3", "--port", "104",
         "--institution", "M02", "--allow", "echo,store,find", "--tls", "--cert-fingerprint", fp],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    cols = (DicomNode.aet, DicomNode.host, DicomNode.port, DicomNode.allowed_ops, DicomNode.tls_required)
    node = rows(app, select(*cols, DicomNode.cert_fingerprint))[0]
    assert tuple(node) == ("CT01", "10.1.2.3", 104, "echo,store,find", True, "ab" * 32)
    listed = subprocess.run([str(TELERAD), "dicom", "node", "list"], env=env, capture_output=True, text=True)
    for shown in ("CT01", "M02", "echo,store,find"):
        assert shown in listed.stdout
    bad = subprocess.run(
        [str(TELERAD), "dicom", "node", "add", "--aet", "X", "--host", "h", "--institution", "M02", "--allow", "rm"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "未知的操作" in bad.stderr


@contextmanager
def _serving(
    env: dict[str, str], port: int, processes: int, prefix: tuple[str, ...] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """`telerad dicom --processes N` (behind `prefix`, e.g. strace) as a real process with MODALITY1 registered,
    until it answers C-ECHO; it must stop cleanly on SIGTERM."""
    subprocess.run(
        [str(TELERAD), "dicom", "node", "add", "--aet", "MODALITY1", "--host", "127.0.0.1", "--institution", "M01"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    proc = subprocess.Popen([*prefix, str(TELERAD), "dicom", "--processes", str(processes)], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not echo_ok(port, "MODALITY1"):
            assert time.monotonic() < deadline, "SCP did not start"
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.3)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0


def test_dicom_serves_with_several_processes_on_one_port(app: Flask, settings: config.Settings, tmp_path: Path) -> None:
    port = _free_port()
    with _serving(_env(settings, port), port, 2) as proc:
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 2  # two receiver processes share the port
        files = [synthetic.ct(tmp_path / f"{i}.dcm") for i in range(6)]
        for f in files:  # one association each
            assert store(port, "MODALITY1", [f]) == [status.SUCCESS]
        assert count(app, Instance) == 6


def _established(pid: int, port: int) -> int:
    """How many established TCP connections on `port` process `pid` holds (its socket fds in /proc/net/tcp*)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    held = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            held += local_port == port and state == "01" and inode in inodes
    return held


def test_receivers_take_connections_by_load(app: Flask, settings: config.Settings) -> None:
    """Issue 12: the receivers share one listening socket and the least-loaded one accepts (dicom/shared_limits.py
    AcceptBalance). With SO_REUSEPORT the kernel hashed four connections over two receivers, often 3 + 1."""
    from pynetdicom import AE

    port = _free_port()
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context("1.2.840.10008.1.1")
    try:
        with _serving(_env(settings, port), port, 2) as proc:
            for _ in range(2):  # twice: closed associations are counted off
                held = [ae.associate("127.0.0.1", port, ae_title="TELERAD") for _ in range(4)]
                assert all(a.is_established for a in held)
                assert sorted(_established(pid, port) for pid in _receivers(proc.pid)) == [2, 2]
                for a in held:
                    a.release()
                time.sleep(0.5)  # the receivers see the releases
    finally:
        ae.shutdown()


def _receivers(parent: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
    return {int(pid) for pid in out}


def test_a_receiver_that_dies_is_restarted(app: Flask, settings: config.Settings, tmp_path: Path) -> None:
    """The receivers are forked by a template process that exits (dicom/supervisor.py); the parent adopts them
    (child subreaper), and a receiver killed outright is replaced; the port keeps serving throughout."""
    port = _free_port()
    with _serving(_env(settings, port), port, 2) as proc:
        first = _receivers(proc.pid)
        assert len(first) == 2  # the receivers are the parent's children; the template is gone
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:
            now = _receivers(proc.pid)
            if len(now) == 2 and victim not in now:
                break
            assert time.monotonic() < deadline, f"receiver {victim} was not replaced: {now}"
            time.sleep(0.2)
        deadline = time.monotonic() + 60
        while not echo_ok(port, "MODALITY1"):  # the replacement is serving (or the survivor answers)
            assert time.monotonic() < deadline
            time.sleep(0.2)
        files = [synthetic.ct(tmp_path / f"{i}.dcm") for i in range(6)]
        for f in files:  # one association each: the kernel spreads them over both receivers
            assert store(port, "MODALITY1", [f]) == [status.SUCCESS]
        assert count(app, Instance) == 6


def test_dsec07_per_device_limit_holds_across_receiver_processes(app: Flask, settings: config.Settings) -> None:
    """With `--processes 2` a device may still hold only its configured number of associations: the receivers
    share the per-device count (dicom/shared_limits.py); before, each receiver counted alone (2 × the limit)."""
    from pynetdicom import AE

    port = _free_port()
    env = {**_env(settings, port), "TELERAD_DICOM_MAX_ASSOCIATIONS_PER_AE": "1"}
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context("1.2.840.10008.1.1")
    try:
        with _serving(env, port, 2):
            for _ in range(2):  # twice: the first round's counts are released with its associations
                # Eight connections, each from a new source port: the kernel spreads them over both receivers.
                held = [ae.associate("127.0.0.1", port, ae_title="TELERAD") for _ in range(8)]
                accepted = [a for a in held if a.is_established]
                assert len(accepted) == 1, [a.is_established for a in held]
                # Refused, none held. Under CPU load a refusal now and then reaches the SCU as an abort (the
                # A-ASSOCIATE-RJ lost to the connection's reset; seen with the SO_REUSEPORT receivers too, 2 of 6
                # runs beside 3 busy loops): the limit holds either way, which is what DSEC-07 asks.
                assert all(a.is_rejected or a.is_aborted for a in held if not a.is_established)
                assert sum(a.is_rejected for a in held) >= 5
                for a in accepted:
                    a.release()
                time.sleep(0.5)  # the receivers see the release
    finally:
        ae.shutdown()


_OBJECT = re.compile(r"/dicom/[0-9a-f]{2}/[0-9a-f]{64}>")  # a stored file, by its content key (not tmp/)
_SYSCALL = re.compile(r"^(\d+)\s+(?:(\w+)\((.*)|<\.\.\. (\w+) resumed>(.*))$")


def _syscalls(log: Path) -> list[tuple[str, str]]:
    """(name, first argument with its `-y` path) of each completed syscall in `strace -f -y` output, in the order they
    returned; a call another thread interrupted (`<unfinished ...>`) counts where it resumed and returned."""
    pending: dict[str, tuple[str, str]] = {}
    out: list[tuple[str, str]] = []
    for line in log.read_text(errors="replace").splitlines():
        m = _SYSCALL.match(line)
        if not m:
            continue
        pid = m.group(1)
        if m.group(2):
            call = (m.group(2), re.split(r", |\) = ", m.group(3), maxsplit=1)[0])
            if line.endswith("<unfinished ...>"):
                pending[pid] = call
            else:
                out.append(call)
        elif pid in pending:
            out.append(pending.pop(pid))
    return out


def test_dsec05_success_only_after_the_index_commit_is_synced(
    app: Flask, settings: config.Settings, tmp_path: Path
) -> None:
    """REQ: DSEC-05 — a C-STORE success promises a durable file and a durable index row. Watched with strace on the
    real receiver: for every stored instance, the file's fsync, then (SQLite) an fdatasync of the database's WAL, then
    the response. The WAL sync runs after COMMIT has released SQLite's write lock (engine.db.durable_wal_commits), so
    no success may overtake it. PostgreSQL: the commit itself waits for the server's WAL flush (synchronous_commit)."""
    if not settings.database_url.startswith("sqlite"):
        with app.app_context():
            from engine import uow

            assert uow.session().execute(text("SHOW synchronous_commit")).scalar() == "on"
            uow.session().rollback()
        return
    port = _free_port()
    log = tmp_path / "strace.log"
    prefix = ("strace", "-f", "-y", "-qq", "-s", "4", "-e", "trace=fsync,fdatasync,sendto", "-o", str(log))
    files = [synthetic.ct(tmp_path / f"{i}.dcm") for i in range(5)]
    with _serving(_env(settings, port), port, 1, prefix):
        assert store(port, "MODALITY1", files) == [status.SUCCESS] * 5
    calls = _syscalls(log)
    objects = [i for i, (name, arg) in enumerate(calls) if name == "fsync" and _OBJECT.search(arg)]
    assert len(objects) == 5, calls
    for i in objects:
        response = next(j for j in range(i, len(calls)) if calls[j][0] == "sendto" and "socket:" in calls[j][1])
        wal_syncs = [c for c in calls[i:response] if c[0] == "fdatasync" and c[1].endswith("telerad.db-wal>")]
        assert wal_syncs, f"response sent without syncing the WAL after the file: {calls[i : response + 1]}"
