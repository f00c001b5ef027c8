"""DICOMweb rate limit (issue 15; REQ: WEB-06, DSEC-11): per user or OAuth client, not per session or IP, sized for a
viewer.

A viewer loading a 1,000-frame study sends a request per frame plus metadata and searches, and every user of a
hospital may share one NAT address: the API's per-IP default (RATELIMIT_DEFAULT) would trip. `/dicomweb` therefore
has its own limit (Settings.dicomweb_rate_limit, TELERAD_DICOMWEB_RATE_LIMIT, default "6000 per minute": six such
studies a minute, a runaway client stopped within a minute at 100 requests a second), counted per principal:

- a browser session counts against its **user** (two tabs or two logins of one doctor share one budget), and so does
  a token from the authorization code grant (a viewer the doctor authorised acts as the doctor);
- a client-credentials token counts against its **OAuth client** (every token of that client).

The principal is known only once the request guard (api/security.py) has loaded the session or resolved the token,
so the check runs in this blueprint's before_request, after the guard; over the limit it answers 429
`dicomweb_rate_limited` in Chinese with Retry-After. A request the guard refuses as unauthenticated never reaches it:
those are counted per IP by flask-limiter instead (only the 401 answers count, against the same figure), so a flood
of requests with a missing, expired or forged credential is stopped without a hospital's NAT address sharing one
budget for its real users.
"""

from __future__ import annotations

import time
from functools import lru_cache

from flask import Response, current_app, g
from limits import RateLimitItem, parse

from api.dicomweb import blp
from api.extensions import client_ip, limiter
from engine.actor import Actor
from engine.errors import RateLimited

NAMESPACE = "dicomweb"


def principal_key(actor: Actor, client_id: str | None = None) -> str | None:
    """The budget a request counts against: its user, else its OAuth client (`client_id`: the bearer token's); None
    for a request with neither (the guard refused it already)."""
    if actor.user_id is not None:
        return f"user:{actor.user_id}"
    client = client_id or actor.client_id
    return f"client:{client}" if client else None


@lru_cache(maxsize=8)
def _item(text: str) -> RateLimitItem:
    return parse(text)


def _limit() -> str:
    return str(current_app.extensions["telerad_settings"].dicomweb_rate_limit)


@blp.before_request
def _per_principal() -> None:
    if not limiter.enabled:
        return
    bearer = g.get("oauth")
    key = principal_key(g.actor, bearer.client_id if bearer is not None else None)
    if key is None:
        return
    item = _item(_limit())
    strategy = limiter.limiter
    if strategy.hit(item, NAMESPACE, key):
        return
    reset_at = strategy.get_window_stats(item, NAMESPACE, key).reset_time
    retry = max(1, int(reset_at - time.time() + 0.999))
    g.retry_after = retry
    period = _PERIOD.get(item.GRANULARITY.name, item.GRANULARITY.name)
    per = f"{item.amount} 次/{f'{item.multiples} ' if item.multiples > 1 else ''}{period}"
    raise RateLimited(
        "dicomweb_rate_limited",
        f"DICOMweb 请求过于频繁（每个用户或接入客户端的上限为 {per}），请 {retry} 秒后再试",
        {"limit": str(item), "retry_after": retry},
    )


_PERIOD = {"second": "秒", "minute": "分钟", "hour": "小时", "day": "天", "month": "月", "year": "年"}


@blp.after_request
def _retry_after(resp: Response) -> Response:
    if resp.status_code == 429 and g.get("retry_after"):
        resp.headers["Retry-After"] = str(g.retry_after)
    return resp


def _ip_key() -> str:
    return "dw-ip:" + client_ip()


def _unauthenticated(resp: Response) -> bool:
    return resp.status_code == 401


# Requests refused as unauthenticated: per IP (see the module docstring). Replaces RATELIMIT_DEFAULT here.
limiter.limit(_limit, key_func=_ip_key, deduct_when=_unauthenticated)(blp)
