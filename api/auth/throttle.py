"""Login throttling by source address, per (address, username) and per address (REQ: AUTH-04).

Every route that checks a secret goes through `attempt` with the same keys, so they share one allowance: the login
(`/api/auth/login`), the applicant's registration-status check (`/api/registrations/status`, username + password)
and the second factor (`/api/auth/mfa`, counted under the session's username). Otherwise each route would be a
separate budget for a password sprayer, and the per-account lockout alone cannot stop a spray across accounts.

A whole hospital often reaches the platform through one NAT address. Counting failures per address alone meant that
one typist who kept mistyping locked every colleague out for the rest of the window. So each failed login counts
against two ceilings:

- per (address, normalised username): stops one person, or one client retrying in a loop, long before the shared
  budget is gone. Its default (10) is above the account lockout (5 in 15 min), so a typist normally sees the
  informative 423 "账号已锁定" first; this ceiling only stops the retries after it;
- per address: stops a spray across many usernames (the account lockout cannot, each name fails only a few times).
  Addresses in `TELERAD_LOGIN_TRUSTED_NETWORKS` (a member hospital's NAT address) get a higher per-address ceiling.

An attempt refused by either ceiling is answered 429 before its password is looked at, so the answer is the same
whatever the password (no password oracle, no timing difference), and it does not count: a client hammering a
throttled key cannot use up the address's budget for everyone else.

Counts are fixed windows in flask-limiter's storage (`TELERAD_RATELIMIT_STORAGE_URI`): per process with memory://,
shared by every web process with redis. An attempt reserves its unit on both counters with one atomic increment each
before the password check, and gives it back when it succeeds or is refused, so concurrent attempts (threads, web
processes) cannot overshoot a ceiling the way check-then-count would.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage

from api.extensions import limiter
from engine import audit, config
from engine.accounts.passwords import normalise_username
from engine.actor import Actor
from engine.errors import RateLimited

THROTTLED = ("rate_limited", "登录尝试过于频繁，请稍后再试")
NAMESPACE = "telerad-login"


@dataclass(frozen=True)
class Ceiling:
    scope: str  # "address_user" or "address"
    item: RateLimitItem
    key: str


def source_of(ip: str) -> str:
    """What a ceiling counts: an IPv4 address, or the /64 of an IPv6 one (one subscriber is given a whole /64)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


@lru_cache(maxsize=8)
def _trusted_networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(config.parse_networks(value, "TELERAD_LOGIN_TRUSTED_NETWORKS"))


def trusted(ip: str, settings: config.Settings) -> bool:
    """Whether `ip` lies in a configured trusted NAT network."""
    return config.address_in(ip, _trusted_networks(settings.login_trusted_networks))


def ceilings(ip: str, username: str, settings: config.Settings) -> list[Ceiling]:
    """The two ceilings a login attempt from `ip` for `username` counts against, the narrower one first."""
    source = source_of(ip)
    # The username is hashed: bounded key length, and no account names in the rate-limit store.
    who = hashlib.sha256(normalise_username(username).encode()).hexdigest()[:32]
    per_user = parse(settings.login_user_ip_limit)
    per_address = parse(settings.login_trusted_ip_limit if trusted(ip, settings) else settings.login_ip_limit)
    return [
        Ceiling("address_user", per_user, per_user.key_for(NAMESPACE, "address-user", source, who)),
        Ceiling("address", per_address, per_address.key_for(NAMESPACE, "address", source)),
    ]


def _give_back(storage: Storage, ceiling: Ceiling) -> None:
    if isinstance(storage, MemoryStorage):
        storage.decr(ceiling.key)  # never below 0
    else:
        # Redis has no decrement in limits' API; incr by -1 is one atomic INCRBY. Should the window end between the
        # reservation and this, the new window starts at -1 for one extra attempt; never fewer than configured.
        storage.incr(ceiling.key, ceiling.item.get_expiry(), amount=-1)


def _reserve(storage: Storage, wanted: list[Ceiling]) -> Ceiling | None:
    """Take one unit on each ceiling; if one is already full, give back what was taken and return that ceiling."""
    taken: list[Ceiling] = []
    for ceiling in wanted:
        count = storage.incr(ceiling.key, ceiling.item.get_expiry())
        taken.append(ceiling)
        if count > ceiling.item.amount:
            for c in taken:
                _give_back(storage, c)
            return ceiling
    return None


def _first_refusal(storage: Storage, ceiling: Ceiling) -> bool:
    """True once per window of a full ceiling, for its audit event (a flood of refusals writes one row, not each)."""
    left = math.ceil(storage.get_expiry(ceiling.key) - time.time())
    return storage.incr(f"{ceiling.key}/refused", max(left, 1)) == 1


def _window(item: RateLimitItem) -> str:
    seconds = item.get_expiry()
    return f"{seconds // 60} 分钟" if seconds % 60 == 0 else f"{seconds} 秒"


def _audit_refusal(actor: Actor, ip: str, username: str, ceiling: Ceiling) -> None:
    limit = f"{ceiling.item.amount} 次/{_window(ceiling.item)}"
    source = source_of(ip)
    if ceiling.scope == "address":
        audit.security_alert(
            actor, "login_source", source, f"来源地址 {source} 登录失败次数达到上限（{limit}），该地址暂停登录"
        )
    else:
        audit.record(
            actor,
            "login_failure",
            outcome="failure",
            username=username,
            reason=f"同一来源地址对该账号登录失败次数达到上限（{limit}），暂停从该地址登录",
        )


@contextmanager
def attempt(actor: Actor, ip: str, username: str) -> Iterator[None]:
    """Guard one password check: refused (429) while a ceiling is full; counts it if the block raises.

    Raises:
        RateLimited: a ceiling is full; the password was not looked at.
    """
    storage = limiter.storage
    wanted = ceilings(ip, username, config.current())
    full = _reserve(storage, wanted)
    if full is not None:
        if _first_refusal(storage, full):
            _audit_refusal(actor, ip, username, full)  # a failure event: kept after the 429's rollback
        raise RateLimited(*THROTTLED)
    yield  # if the block raises (a failed attempt), the exception leaves here and the units stay taken
    for ceiling in wanted:
        _give_back(storage, ceiling)
