"""`telerad dicom --processes N`: a light parent that keeps N receiver processes on one port.

Balanced accept (issue 12). The parent binds the listening sockets itself and the receivers inherit them, taking a
pending connection by turns: the receiver with the fewest open associations accepts (dicom/shared_limits.py
AcceptBalance). With SO_REUSEPORT each receiver had its own socket and the kernel hashed each connection to one of
them, so four modalities could land 3 + 1 on two receivers. A receiver is CPU-bound while it receives (~1.5 ms per
small instance under the GIL), so the busier one set the pace. A restarted receiver inherits the same sockets.

Memory (issue 4: peak RSS < 300 MB while a 1 GB instance arrives). Receivers forked from one process that imported
everything share those pages, until a receiver writes to one (CPython's reference counts do, on every use): then the
receiver gets its own copy and the process it was forked from keeps the original — a third copy nobody uses. Here the
parent never imports the SCP: a short-lived template process imports it, freezes it (`gc.freeze()`), forks the
receivers and exits. The parent is a child subreaper (Linux `PR_SET_CHILD_SUBREAPER`), so the receivers become its
children when the template exits; it restarts a receiver that dies, through a new template. Measured idle (PSS summed
over the process tree, 4 receivers): 349 MB with each receiver importing alone, 199 MB forked from the parent,
175 MB forked from a template; after 12,000 stored instances 266 MB and 225 MB.

Only the standard library and dicom.shared_limits are imported here; dicom.scp is imported in the template. That
function-local import is the one documented exception to "no import cycles in dicom/" (dicom.scp imports this
module at its top to serve `--processes N`): pyproject.toml's `dicom-engine-imaging-acyclic` contract ignores
exactly `dicom.supervisor -> dicom.scp` and nothing else.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from dicom.shared_limits import AcceptBalance, SharedCounts

log = logging.getLogger("telerad.dicom")

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
_PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


class Supervisor:
    """The receivers of one `telerad dicom --processes N`: started through templates, restarted when they die."""

    def __init__(
        self, app_factory: Callable[[], Any], processes: int, listen: list[tuple[str, int]] | None = None
    ) -> None:
        self.app_factory = app_factory
        self.processes = processes
        self.shared = SharedCounts(processes)  # per-device association counts across the receivers (DSEC-07)
        self.balance = AcceptBalance(processes)
        self.sockets = [listening_socket(host, port) for host, port in (listen or [])]
        self.listeners = {sock.getsockname()[1]: sock.fileno() for sock in self.sockets}  # port -> fd
        self.receivers: dict[int, int] = {}  # pid -> receiver index
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def spawn(self, indices: list[int]) -> None:
        """Fork a template that imports the SCP and forks one receiver per index, then exits."""
        read_end, write_end = os.pipe()
        template = os.fork()
        if template == 0:  # the template: never returns
            status = 1
            try:
                os.close(read_end)
                from dicom import scp  # here, in the template only: the parent stays small (module docstring)

                scp.share_before_fork(self.app_factory)
                for index in indices:
                    pid = os.fork()
                    if pid == 0:
                        os.close(write_end)
                        scp.run_receiver(self.app_factory, self.shared, index, self.listeners or None, self.balance)
                    os.write(write_end, f"{pid} {index}\n".encode())
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as fh:  # EOF once the template has forked them all (or died)
            lines = fh.read().decode().split()
        with self._lock:
            for pid_text, index_text in zip(lines[::2], lines[1::2], strict=True):
                self.receivers[int(pid_text)] = int(index_text)
        if len(lines) // 2 < len(indices):
            log.error("DICOM receiver template started %s of %s receivers", len(lines) // 2, len(indices))

    def watch(self) -> None:
        """Reap children (templates and receivers); a receiver that exits while serving is restarted."""
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                if self.stopping.is_set():
                    return
                time.sleep(0.2)
                continue
            with self._lock:
                index = self.receivers.pop(pid, None)
            if index is None or self.stopping.is_set():
                continue
            log.warning("DICOM receiver %s exited (status %s); restarting", pid, status)
            self.spawn([index])

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self.receivers:
                    return
            time.sleep(0.05)
        self._signal_all(signal.SIGKILL)

    def _signal_all(self, sig: int) -> None:
        with self._lock:
            pids = list(self.receivers)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def listening_socket(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A non-blocking listening TCP socket the receivers inherit: the one that loses the race for a connection
    gets EAGAIN (which socketserver ignores) instead of blocking its accept loop."""
    family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]  # fmt: skip
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def serve(app_factory: Callable[[], Any], processes: int, listen: list[tuple[str, int]] | None = None) -> None:
    """Serve with `processes` receivers on the sockets `listen` ((host, port) pairs) until SIGTERM/SIGINT."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # before any thread starts, so sigwait gets them
    _become_subreaper()
    supervisor = Supervisor(app_factory, processes, listen)
    supervisor.spawn(list(range(processes)))
    watcher = threading.Thread(target=supervisor.watch, name="dicom-supervisor", daemon=True)
    watcher.start()
    signal.sigwait(STOP_SIGNALS)
    supervisor.stop()
