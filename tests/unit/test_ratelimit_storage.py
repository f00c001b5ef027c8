"""The in-process rate-limit storage under concurrent requests (api/extensions.ThreadSafeMemoryStorage).

limits 5.8.0's MemoryStorage could start its expiry timer twice when two threads hit it as the timer ended (an HTTP
500, "threads can only be started once", seen in CI on an e2e admin page) and could lose a count when two first hits on
a key each made its lock. Real threads released together, many times, right after the timer stopped; the switch
interval is shortened so threads interleave inside those windows (with the plain MemoryStorage: ~1 round in 150 raised
here, and counts were lost within the first 100 rounds).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator

import pytest

from api.extensions import ThreadSafeMemoryStorage, ratelimit_storage_uri


@pytest.fixture
def fast_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_memory_storage_survives_simultaneous_hits_as_its_timer_ends(fast_switching: None) -> None:
    storage = ThreadSafeMemoryStorage("telerad+memory://")
    errors: list[BaseException] = []
    for round_no in range(400):
        while storage.timer.is_alive():
            time.sleep(0.002)
        barrier = threading.Barrier(12)

        def hit(key: str = f"k{round_no}", barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                storage.incr(key, 60)
            except RuntimeError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=hit) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert storage.get(f"k{round_no}") == 12
    assert errors == []


def test_memory_uri_maps_to_the_thread_safe_storage() -> None:
    from limits.storage import storage_from_string

    assert isinstance(storage_from_string(ratelimit_storage_uri("memory://")), ThreadSafeMemoryStorage)
    assert ratelimit_storage_uri("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_web06_hits_start_no_timer_thread_and_counters_still_expire() -> None:
    """Issue 16: limits started a 10 ms Timer thread about every other hit (a thread start per DICOMweb frame); the
    storage now sweeps inline at most once a second, and a key's own counter still expires on its next read."""
    storage = ThreadSafeMemoryStorage("telerad+memory://")
    storage.timer.join()  # the one timer limits starts in __init__
    before = {t.ident for t in threading.enumerate()}
    for n in range(20):
        assert storage.incr("frames", 60) == n + 1
        assert {t.ident for t in threading.enumerate()} <= before  # no Timer thread started by the hit
        time.sleep(0.012)  # past the old timer's 10 ms life: limits would start another on the next hit
    assert storage.incr("short", 0.05) == 1
    time.sleep(0.1)
    assert storage.get("short") == 0  # a key's counter still expires
    assert storage.incr("short", 60) == 1
    assert storage.get("frames") == 20
