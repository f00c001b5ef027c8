"""Flask extensions bound to the one declarative base (ARCHITECTURE.md "Database access")."""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import request
from flask_limiter import Limiter
from flask_sqlalchemy import SQLAlchemy
from limits.storage import MemoryStorage

from engine.db import Base

db = SQLAlchemy(model_class=Base)


def client_ip() -> str:
    # Only ProxyFix (configured with the number of trusted proxies) rewrites remote_addr (AUTH-04).
    return request.remote_addr or "unknown"


limiter = Limiter(key_func=client_ip)


class ThreadSafeMemoryStorage(MemoryStorage):
    """limits' in-process storage with every operation, and its expiry timer, under one lock.

    limits 5.8.0 (the newest release available here) is not safe across threads: two requests in two waitress
    threads can both find the expiry timer stopped and start the same Timer twice ("RuntimeError: threads can only be
    started once", an HTTP 500 seen in CI on an e2e admin page), and two first hits on a key can each create its lock
    and lose a count. Fixed upstream by alisaifee/limits#352, after 5.8.0. `api/app.py` uses this for `memory://`.
    """

    STORAGE_SCHEME = ["telerad+memory"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        self._lock = threading.RLock()
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)


def _locked(name: str) -> Any:
    unlocked = getattr(MemoryStorage, name)

    def method(self: ThreadSafeMemoryStorage, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return unlocked(self, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = unlocked.__doc__
    return method


# Every method that reads or changes the counters, and the two the base class calls itself (name-mangled): the timer's
# expiry pass and the timer's restart.
for _name in (
    "incr",
    "decr",
    "get",
    "clear",
    "acquire_entry",
    "get_expiry",
    "get_moving_window",
    "acquire_sliding_window_entry",
    "get_sliding_window",
    "clear_sliding_window",
    "reset",
    "_MemoryStorage__expire_events",
    "_MemoryStorage__schedule_expiry",
):
    setattr(ThreadSafeMemoryStorage, _name, _locked(_name))

SWEEP_EVERY_S = 1.0  # how often expired counters of other keys are dropped (each key's own expire on its next read)


def _sweep_inline(self: ThreadSafeMemoryStorage) -> None:
    """Replaces limits' expiry scheduling, which started a new 10 ms `threading.Timer` thread whenever the last one
    had ended — about every other DICOMweb frame request, a thread start each (issue 16: the rate limiter's share of a
    frame request). The sweep runs inline, under the storage's lock, at most every SWEEP_EVERY_S; counting is
    unchanged: `get` drops an expired counter of its own key before every hit (limits' MemoryStorage.get)."""
    with self._lock:
        now = time.monotonic()
        if now >= getattr(self, "_next_sweep", 0.0):
            self._next_sweep = now + SWEEP_EVERY_S
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


ThreadSafeMemoryStorage._MemoryStorage__schedule_expiry = _sweep_inline  # type: ignore[attr-defined]


def ratelimit_storage_uri(configured: str) -> str:
    """The limits storage URI for a configured one: `memory://` becomes the thread-safe in-process storage."""
    return "telerad+memory://" if configured.rstrip("/") in ("memory:", "memory") else configured
