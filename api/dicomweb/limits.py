"""DICOMweb rate limit (issue 15): per user session or OAuth client, not per IP, sized for a viewer.

A viewer loading a 1,000-frame study sends a request per frame plus metadata, and every user of a hospital may
share one NAT address: the API's per-IP default (RATELIMIT_DEFAULT) would trip. `/dicomweb` therefore has its own
limit (Settings.dicomweb_rate_limit, TELERAD_DICOMWEB_RATE_LIMIT, default "6000 per minute"), which replaces the
default there, keyed by the credential the request carries: a hash of the bearer token (an OAuth client's token)
or of the session cookie (one browser session of one user). flask-limiter checks before the request guard has
loaded the session, so the key is taken from the credential itself; a request with neither (refused by the guard
anyway) is keyed by its IP.
"""

from __future__ import annotations

import hashlib

from flask import current_app, request

from api.dicomweb import blp
from api.extensions import client_ip, limiter


def principal_key() -> str:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return "dw-token:" + hashlib.sha256(auth[7:].strip().encode()).hexdigest()[:32]
    name = current_app.extensions["telerad_settings"].session_cookie_name
    cookie = request.cookies.get(name)
    if cookie:
        return "dw-session:" + hashlib.sha256(cookie.encode()).hexdigest()[:32]
    return "dw-ip:" + client_ip()


def _limit() -> str:
    return str(current_app.extensions["telerad_settings"].dicomweb_rate_limit)


limiter.limit(_limit, key_func=principal_key)(blp)
