"""Work on untrusted input (decoding images and DICOM pixel data) runs in a child process with limits (REQ: DSEC-08).

A `Worker` owns one child process started with ``spawn`` or ``forkserver`` — never ``fork``: the web and DICOM
servers are threaded and large, and a forked child would start as a copy of all of that. The child caps its
address space (RLIMIT_AS), turns off core dumps, and before each job allows itself `cpu_s` more seconds of CPU
(RLIMIT_CPU: the kernel ends it with SIGXCPU). The caller's function runs as ``fn(*args)`` (``fn`` must be a
module-level function; bytes in, bytes out is the usual shape). A watchdog (one thread per worker, re-armed by each
call) kills the child once `wall_s` has passed since the call began, whatever the parent is blocked on. A child that
dies, overruns, runs out of memory or answers with nonsense is discarded, and the next call starts a fresh one.
``max_jobs=1`` gives each job a fresh process, so nothing one input left behind in memory outlives its job.

The reply is read defensively, since the child has just parsed hostile bytes: its size is capped, it is unpickled
with no globals at all (plain data only: bytes, str, numbers, tuples, lists, dicts), and an exception comes back as
its type name and message and is raised again only as a type the caller listed in `raises`.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import pickle
import resource
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import ModuleType
from typing import Any

log = logging.getLogger("telerad.sandbox")

START_METHODS = ("spawn", "forkserver")


@dataclass(frozen=True)
class Limits:
    """Per child: address space (MB), CPU seconds per job, wall-clock seconds per call (start included)."""

    memory_mb: int = 4096
    cpu_s: int = 120
    wall_s: float = 300.0


class SandboxError(Exception):
    """The job did not finish in the child.

    `reason` is one of: ``timeout`` (wall clock), ``cpu`` (RLIMIT_CPU), ``memory`` (RLIMIT_AS), ``crashed`` (the
    child died some other way or answered with nonsense), ``output`` (the reply is over the size cap) and
    ``failed`` (the function raised; `error_type` names the exception).
    """

    def __init__(self, reason: str, message: str, error_type: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.error_type = error_type


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the sandbox reply may not refer to {module}.{name}")


# A message is a pickle (protocol 5) whose top-level bytes — the value itself or the items of a tuple — travel as
# separate frames after it, out of band: a 10 MB image is written to the pipe from the caller's own buffer, and
# arrives as one bytes object, without a copy inside a pickle at either end.
def _out_of_band(value: Any) -> Any:
    if isinstance(value, bytes):
        return pickle.PickleBuffer(value)
    if isinstance(value, tuple):
        return tuple(pickle.PickleBuffer(v) if isinstance(v, bytes) else v for v in value)
    return value


def _pack(message: tuple[Any, ...]) -> list[Any]:
    frames: list[pickle.PickleBuffer] = []
    header = pickle.dumps(message, protocol=5, buffer_callback=frames.append)
    return [struct.pack(">I", len(frames)) + header, *frames]


def _send(conn: Connection, parts: list[Any]) -> None:
    for part in parts:
        conn.send_bytes(part)


def _receive(conn: Connection, limit: int | None, unpickler: type[pickle.Unpickler]) -> Any:
    """One message; over `limit` bytes in all raises OSError("bad message length") (Connection's own check)."""
    first = conn.recv_bytes(limit)
    (count,) = struct.unpack(">I", first[:4])
    budget = None if limit is None else limit - len(first)
    frames = []
    for _ in range(count):
        frame = conn.recv_bytes(budget)
        if budget is not None:
            budget -= len(frame)
        frames.append(frame)
    return unpickler(io.BytesIO(first[4:]), buffers=frames).load()


def _well_formed(reply: Any) -> bool:
    """("ok", value) | ("memory",) | ("error", type name, message, traceback), as the child sends them."""
    if not isinstance(reply, tuple) or not reply:
        return False
    if reply[0] == "ok":
        return len(reply) == 2
    if reply[0] == "memory":
        return len(reply) == 1
    return reply[0] == "error" and len(reply) == 4 and all(isinstance(x, str) for x in reply[1:])


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# -- the child ------------------------------------------------------------------------------------------------------
def _limit_cpu(cpu_s: int, last: bool) -> None:
    """RLIMIT_CPU counts the process's whole life: allow `cpu_s` more than used so far (SIGXCPU ends it). On the
    child's last job the hard limit comes down too (SIGKILL one second later; it cannot be raised again)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(used.ru_utime + used.ru_stime) + 1 + cpu_s
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    if last:
        hard = soft + 1 if hard == resource.RLIM_INFINITY else min(hard, soft + 1)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _reply(conn: Connection, message: tuple[Any, ...]) -> None:
    try:
        parts = _pack(message)
    except MemoryError:
        parts = _pack(("memory",))
    except Exception as exc:  # an unpicklable result is the function's fault, reported like an exception
        parts = _pack(("error", "builtins.TypeError", f"unpicklable result: {exc}"[:2000], ""))
    _send(conn, parts)


def _child_main(conn: Connection, memory_mb: int, max_jobs: int | None) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    done = 0
    while max_jobs is None or done < max_jobs:
        try:
            # The job comes from the parent, which is trusted; only the other direction is read with care.
            fn, args, cpu_s = _receive(conn, None, pickle.Unpickler)
            _limit_cpu(cpu_s, last=max_jobs is not None and done + 1 >= max_jobs)
            message: tuple[Any, ...] = ("ok", _out_of_band(fn(*args)))
        except EOFError:
            return  # the parent closed the pipe: retire
        except MemoryError:
            message = ("memory",)
        except Exception as exc:  # the function's own refusal (or a decoder's error on bad input)
            message = ("error", _type_name(type(exc)), str(exc)[:2000], traceback.format_exc()[-4000:])
        _reply(conn, message)
        if message[0] == "memory":
            return  # a heap that hit RLIMIT_AS is not reused
        done += 1


# -- the parent -----------------------------------------------------------------------------------------------------
_preload: set[str] = set()
_preload_lock = threading.Lock()


def _main_imports() -> set[str]:
    """The modules the parent's main script imported (``telerad`` → telerad.cli).

    multiprocessing runs a script-started parent's main script again in every child (Python 3.11's fork server
    never preloads it), so a child of the fork server pays for that script's imports unless the server has them.
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None or not getattr(main, "__file__", None):
        return set()  # `python -m …` and interactive parents: the children skip the main module
    names = set()
    for value in vars(main).values():
        name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
        if isinstance(name, str) and name in sys.modules and name not in ("__main__", "builtins"):
            names.add(name)
    return names


def _context(start_method: str, preload: Iterable[str]) -> Any:
    ctx = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        # The fork server is one per process: the modules every worker imports are loaded there once, so a child
        # is a fork of a small, prepared process. Modules named after the server started are imported per child.
        with _preload_lock:
            wanted = _preload | {__name__, *preload} | _main_imports()
            if wanted != _preload:
                _preload.update(wanted)
                ctx.set_forkserver_preload(sorted(_preload))
    return ctx


class _Watchdog:
    """The wall-clock limit of a worker's calls: one thread per worker, re-armed by each call (a lock and two
    assignments), instead of a timer thread started and cancelled per call (~80 µs of CPU and ~0.2 ms of wall time
    each on this machine: per instance of a C-GET). It kills the armed call's child once its deadline has passed,
    whatever the caller is blocked on, and says so when the call is disarmed. Idle for `idle_s`, the thread ends
    (the next call starts one): an unused worker leaves no thread behind, and the thread holds no reference to the
    worker."""

    def __init__(self, name: str, idle_s: float = 30.0) -> None:
        self.name = name
        self.idle_s = idle_s
        self._cond = threading.Condition(threading.Lock())
        self._proc: Any = None
        self._deadline: float | None = None
        self._ticket = 0
        self._killed = 0  # the ticket of the last call whose child was killed
        self._thread: threading.Thread | None = None
        self._wakes_at: float | None = None  # when the thread's current wait ends (None: not waiting on a deadline)

    def arm(self, proc: Any, wall_s: float) -> int:
        """Start timing a call on `proc`; returns its ticket for `disarm`."""
        with self._cond:
            self._ticket += 1
            self._proc, self._deadline = proc, time.monotonic() + wall_s
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"{self.name}-watchdog", daemon=True)
                self._thread.start()
            elif self._wakes_at is None or self._wakes_at > self._deadline:
                self._cond.notify()  # it would not look again before this deadline
            return self._ticket

    def disarm(self, ticket: int) -> bool:
        """Stop timing the call `ticket`; True when its child was killed for running over."""
        with self._cond:
            if self._ticket == ticket:
                self._proc = self._deadline = None
            return self._killed == ticket

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                if self._deadline is None:
                    self._wakes_at = now + self.idle_s
                    self._cond.wait(self.idle_s)
                    if self._deadline is None and time.monotonic() >= self._wakes_at:
                        self._thread = self._wakes_at = None
                        return  # idle: the next call starts a new thread
                    continue
                if now < self._deadline:
                    self._wakes_at = self._deadline
                    self._cond.wait(self._deadline - now)
                    continue
                proc, self._proc, self._deadline = self._proc, None, None
                self._killed = self._ticket
                try:
                    proc.kill()
                except (OSError, ValueError, AttributeError):
                    pass  # already gone (or closed)


class Worker:
    """One child process with `limits`, running one job at a time; replaced after a failure or `max_jobs` jobs."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        start_method: str = "spawn",
        max_jobs: int | None = None,
        raises: tuple[type[Exception], ...] = (),
        max_reply_bytes: int = 256 * 1024 * 1024,
        preload: Iterable[str] = (),
        name: str = "telerad-sandbox",
    ) -> None:
        if start_method not in START_METHODS:
            raise ValueError(f"start method must be one of {START_METHODS}, not {start_method!r}")
        self.limits = limits or Limits()
        self.max_jobs = max_jobs
        self.max_reply_bytes = max_reply_bytes
        self.name = name
        self._raises = {_type_name(cls): cls for cls in raises}
        self._ctx = _context(start_method, preload)
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Connection | None = None
        self._jobs = 0
        self._watchdog = _Watchdog(name)

    @property
    def pid(self) -> int | None:
        """The current child's pid (None when no child is running)."""
        return self._proc.pid if self._proc is not None else None

    def _start(self) -> None:
        parent_end, child_end = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_child_main, args=(child_end, self.limits.memory_mb, self.max_jobs), name=self.name, daemon=True
        )
        try:
            proc.start()
        finally:
            child_end.close()
        self._proc, self._conn, self._jobs = proc, parent_end, 0

    def _discard(self, *, grace: float = 0.0) -> None:
        """Close the pipe and make sure the child is gone (after `grace` seconds to end by itself)."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is not None:
            proc.join(grace)
            if proc.is_alive():
                proc.kill()
                proc.join()

    def _failure(self, proc: Any, timed_out: bool, exc: BaseException) -> SandboxError:
        """Discard the child and say why it failed."""
        too_long = isinstance(exc, OSError) and "bad message length" in str(exc)
        # A child ending by itself (SIGXCPU, a crash) closes its end first: let it finish dying, so that its exit
        # status says why. One that sent too much is still alive and is killed at once.
        self._discard(grace=0.0 if too_long else 2.0)
        if timed_out:
            return SandboxError("timeout", f"处理超时（超过 {self.limits.wall_s:g} 秒）")
        if too_long:
            return SandboxError("output", "处理结果过大")
        code = proc.exitcode
        if code == -signal.SIGXCPU:
            return SandboxError("cpu", f"超出 CPU 时间限制（{self.limits.cpu_s} 秒）")
        if code is not None and code < 0:
            sig = signal.Signals(-code).name
            return SandboxError("crashed", f"处理进程异常退出（{sig}，可能超出资源限制）")
        return SandboxError("crashed", f"处理进程异常退出（退出码 {code}）")

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in the child and return its (plain-data) result.

        Raises:
            SandboxError: the child timed out, ran out of CPU or memory, crashed, answered too much, or `fn`
                raised an exception whose type is not in `raises`.
            Exception: an exception of a type listed in `raises`, raised again with its message.
        """
        parts = _pack((fn, _out_of_band(args), self.limits.cpu_s))  # a caller's unpicklable argument raises here
        with self._lock:
            if self._proc is None:
                try:
                    self._start()
                except OSError as exc:
                    raise SandboxError("crashed", "无法启动处理进程") from exc
            proc, conn = self._proc, self._conn
            assert conn is not None
            ticket = self._watchdog.arm(proc, self.limits.wall_s)
            try:
                _send(conn, parts)
                reply = _receive(conn, self.max_reply_bytes, _NoGlobals)
            except (EOFError, OSError) as exc:
                error = self._failure(proc, self._watchdog.disarm(ticket), exc)
                log.warning("sandbox %s: %s (%s)", self.name, error.reason, error.message)
                raise error from None
            except pickle.UnpicklingError as exc:  # not plain data: never trust that child again
                self._watchdog.disarm(ticket)
                self._discard()
                raise SandboxError("crashed", "处理进程返回了无效结果") from exc
            except BaseException:
                self._watchdog.disarm(ticket)
                raise
            return self._answer(reply, self._watchdog.disarm(ticket))

    def _answer(self, reply: Any, killed: bool) -> Any:
        if not _well_formed(reply):
            self._discard()
            raise SandboxError("crashed", "处理进程返回了无效结果")
        status = reply[0]
        self._jobs += 1
        if killed or status == "memory" or (self.max_jobs is not None and self._jobs >= self.max_jobs):
            self._discard(grace=5.0)  # it ends by itself after its last job (or has been killed)
        if status == "ok":
            return reply[1]
        if status == "memory":
            log.warning("sandbox %s: memory (RLIMIT_AS %d MB)", self.name, self.limits.memory_mb)
            raise SandboxError("memory", f"超出内存限制（{self.limits.memory_mb} MB）")
        _, type_name, text, remote_tb = reply
        cls = self._raises.get(type_name)
        if cls is not None:
            raise cls(text)
        log.info("sandbox %s: job raised %s: %s\n%s", self.name, type_name, text, remote_tb)
        raise SandboxError("failed", f"{type_name.rsplit('.', 1)[-1]}: {text}", type_name)

    def close(self) -> None:
        """End the child (it exits when its pipe closes; killed if it does not within 5 s)."""
        with self._lock:
            self._discard(grace=5.0)
