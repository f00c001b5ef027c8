"""Per-process cache of a WADO-RS frame request's study resolution and pixel-access decision (issue 16; REQ: AC-02,
DSEC-03).

A viewer fetches a 1,000-slice series as 1,000 frame requests; resolving the study for the caller, deciding its
pixel access (visibility.may_read_pixels) and finding the instance's file cost half of each request's server time.
The first request of a series does that work once and keeps the outcome here — the study (id, UID, patient ID), why
that copy was chosen, its institution code and the series' instances (SOP Instance UID → stored file) — for
`config.dicomweb_decision_ttl_s` seconds (at most 5; 0 turns the cache off).

Only granted decisions are kept; a refusal is decided (and alerted) anew on every request. The key holds everything
the decision depends on that the request guard reads per request: the user, the session (or OAuth client), the
institution, the roles and permissions, and the request's study UID, `institution=`, `case=` and series. So:
  - logout, session expiry and a role or permission change end access at once (the guard checks the session per
    request; a new permission set is another key);
  - a revocation the guard cannot see (a case handed back, a study moved or deleted) lags by at most the TTL;
  - one user's (or session's) decision is never served to another.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from engine import config
from engine.actor import Actor
from engine.dicomweb.wado import InstanceRef

MAX_KEYS = 4096  # decisions kept (a series each); the oldest go first


@dataclass(frozen=True)
class StudyKey:
    """What a frame request needs of its resolved study (the access audit, the request's audit context)."""

    id: int
    study_instance_uid: str
    patient_id: str
    institution_id: int


@dataclass(frozen=True)
class Decision:
    """A granted resolution: the study, why that copy (resolve.CHOICES), its institution code and, unless the series
    was too large to list, its instances by SOP Instance UID (None: look the instance up per request)."""

    study: StudyKey
    why: str
    code: str
    instances: dict[str, InstanceRef] | None


Key = tuple[Any, ...]


def key_of(actor: Actor, study_uid: str, institution: str | None, case_id: int | None, series_uid: str) -> Key:
    """The cache key: the caller as the request guard built it (never the request's IP, agent or id) and what the
    request names."""
    who = (
        actor.user_id,
        actor.session_id,
        actor.client_id,
        actor.institution_id,
        actor.institution_kind,
        actor.roles,
        actor.permissions,
    )
    return (who, study_uid, institution, case_id, series_uid)


class _Cache:
    def __init__(self, size: int = MAX_KEYS) -> None:
        self.size = size
        self._items: OrderedDict[Key, tuple[float, Decision]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> Decision | None:
        now = time.monotonic()
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            if found[0] <= now:
                del self._items[key]
                return None
            return found[1]

    def put(self, key: Key, decision: Decision, ttl: float) -> None:
        with self._lock:
            self._items[key] = (time.monotonic() + ttl, decision)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_cache = _Cache()


def ttl() -> float:
    return config.current().dicomweb_decision_ttl_s


def get(key: Key) -> Decision | None:
    """The decision kept for `key`, if it has not expired (and the cache is on)."""
    return _cache.get(key) if ttl() > 0 else None


def put(key: Key, decision: Decision) -> None:
    """Keep a granted decision for the configured TTL."""
    seconds = ttl()
    if seconds > 0:
        _cache.put(key, decision, seconds)


def clear() -> None:
    """Forget every decision (tests; an operator never needs to: they expire within the TTL)."""
    _cache.clear()
