"""Test factories: institutions, users with roles, logged-in clients (STYLE.md §8)."""

from __future__ import annotations

import io
import itertools
import re
from dataclasses import dataclass
from typing import Any

import pyotp
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select

from engine import uow
from engine.accounts import auth
from engine.accounts.models import Department, Institution, Role, User
from engine.accounts.passwords import normalise_username
from engine.accounts.permissions import ADMIN_ROLE_CODES, MFA_ROLE_CODES
from engine.audit import AuditEvent
from engine.db import utcnow

DEFAULT_PASSWORD = "Xk9#mQ2!vR7p"
ADMIN_PASSWORD = "Adm1n#Strong!2026"
_seq = itertools.count(1)


@dataclass
class TestUser:
    id: int
    username: str
    password: str
    institution_code: str
    roles: tuple[str, ...]
    totp_secret: str | None = None


def institution(app: Flask, code: str) -> Institution:
    with app.app_context():
        inst = uow.session().execute(select(Institution).where(Institution.code == code)).unique().scalar_one()
        uow.session().expunge(inst)
        return inst


def make_user(
    app: Flask,
    *roles: str,
    institution_code: str = "CENTRAL",
    username: str | None = None,
    password: str | None = None,
    review_status: str = "approved",
    must_change: str | None = None,
    phone: str | None = None,
    id_number: str | None = None,
) -> TestUser:
    """Create an account directly in the database (bypassing review) holding the given built-in roles."""
    username = username or f"user{next(_seq)}"
    admin = any(r in ADMIN_ROLE_CODES for r in roles)
    password = password or (ADMIN_PASSWORD if admin else DEFAULT_PASSWORD)
    secret = pyotp.random_base32() if set(roles) & MFA_ROLE_CODES else None
    with app.app_context():
        s = uow.session()
        inst = s.execute(select(Institution).where(Institution.code == institution_code)).unique().scalar_one()
        dep = s.execute(select(Department).where(Department.institution_id == inst.id)).scalars().first()
        role_rows = [
            s.execute(select(Role).where(Role.code == r, Role.builtin.is_(True))).unique().scalar_one() for r in roles
        ]
        c = auth.cipher()
        user = User(
            username=username,
            username_norm=normalise_username(username),
            full_name=f"测试{username}",
            institution_id=inst.id,
            department_id=dep.id if dep else None,
            password_hash=auth.hash_password(password),
            review_status=review_status,
            registration_source="admin",
            must_change_password=must_change,
            last_active_at=utcnow(),
            reviewed_at=utcnow() if review_status == "approved" else None,
        )
        if phone:
            from engine.crypto import mask_phone

            user.phone_enc, user.phone_masked = c.encrypt_str(phone), mask_phone(phone)
        if id_number:
            from engine.crypto import mask_id_number

            user.id_number_enc, user.id_number_masked = c.encrypt_str(id_number), mask_id_number(id_number)
        if secret:
            user.totp_secret_enc = c.encrypt_str(secret)
            user.totp_enabled = True
        user.roles = role_rows
        s.add(user)
        s.flush()
        uid = user.id
        uow.commit()
    return TestUser(uid, username, password, institution_code, tuple(roles), secret)


def login(client: FlaskClient, user: TestUser, *, expect_state: str = "active") -> str:
    """Log in (with TOTP when the user has one) and return the CSRF token of the session."""
    r = client.post("/api/auth/login", json={"username": user.username, "password": user.password})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    if body["state"] == "mfa_required":
        assert user.totp_secret
        r = client.post(
            "/api/auth/mfa",
            json={"code": pyotp.TOTP(user.totp_secret).now()},
            headers={"X-CSRF-Token": body["csrf_token"]},
        )
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
    assert body["state"] == expect_state, body
    return str(body["csrf_token"])


class Session:
    """A logged-in test client that sends the CSRF header on unsafe methods."""

    def __init__(self, client: FlaskClient, user: TestUser) -> None:
        self.client = client
        self.user = user
        self.csrf = login(client, user)

    def _h(self, kw: dict[str, Any]) -> dict[str, Any]:
        headers = dict(kw.pop("headers", {}) or {})
        headers.setdefault("X-CSRF-Token", self.csrf)
        kw["headers"] = headers
        return kw

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.client.post(url, **self._h(kw))

    def put(self, url: str, **kw: Any) -> Any:
        return self.client.put(url, **self._h(kw))

    def patch(self, url: str, **kw: Any) -> Any:
        return self.client.patch(url, **self._h(kw))

    def delete(self, url: str, **kw: Any) -> Any:
        return self.client.delete(url, **self._h(kw))


def as_user(app: Flask, *roles: str, institution_code: str = "CENTRAL", **kw: Any) -> Session:
    user = make_user(app, *roles, institution_code=institution_code, **kw)
    return Session(app.test_client(), user)


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 48), color: str = "blue", **save: Any) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt, **save)
    return buf.getvalue()


def role_id(app: Flask, code: str) -> int:
    with app.app_context():
        return int(uow.session().execute(select(Role.id).where(Role.code == code, Role.builtin.is_(True))).scalar_one())


VALID_ID_NUMBERS = ("11010519491231002X", "440524188001010014", "110101199003074477", "320311197001015434")


def registration_form(username: str, institution_id: int, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "username": username,
        "password": "Reg#Strong2026",
        "full_name": "张医生",
        "institution_id": str(institution_id),
        "title": "主治医师",
        "phone": "13912345678",
        "id_number": VALID_ID_NUMBERS[0],
        "id_card_photo": (io.BytesIO(image_bytes()), "id.jpg"),
        "qualification_photo": (io.BytesIO(image_bytes("PNG")), "qual.png"),
    }
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def anon_csrf(client: FlaskClient) -> str:
    return str(client.get("/api/auth/csrf").get_json()["csrf_token"])


def audit_count(app: Flask, event_type: str) -> int:
    with app.app_context():
        return int(uow.session().execute(select(func.count()).where(AuditEvent.event_type == event_type)).scalar_one())


def crawl_refused(app: Flask, client: FlaskClient, csrf: str, state: str) -> dict[str, tuple[int, str]]:
    """Call every non-public /api route the session state does not allow; return status and error code."""
    from api.security import PUBLIC, STATES_ATTR, permission_of

    out: dict[str, tuple[int, str]] = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if not rule.rule.startswith("/api/") or permission_of(app, rule.endpoint) == PUBLIC:
            continue
        if state in getattr(view, STATES_ATTR, ()):
            continue
        url = re.sub(r"<(?:string:|path:)?\w+>", "abc", re.sub(r"<int:\w+>", "1", rule.rule))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            r = client.open(url, method=method, json=None if method == "GET" else {}, headers={"X-CSRF-Token": csrf})
            out[f"{method} {url}"] = (r.status_code, (r.get_json() or {}).get("code", ""))
    return out
