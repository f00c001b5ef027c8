"""Smoke: the app answers health, login works, the OpenAPI document is served."""

from __future__ import annotations

from tests.factories import Session, make_user


def test_health(client):  # type: ignore[no-untyped-def]
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok", "database": "ok"}


def test_login_and_me(app, client):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    s = Session(client, user)
    me = s.get("/api/auth/me").get_json()
    assert me["username"] == user.username
    assert me["menus"] == ["menu.home", "menu.profile", "menu.cases", "menu.tasks", "menu.pool", "menu.imaging"]
    assert [r["code"] for r in me["roles"]] == ["report_l1"]


def test_admin_login_with_totp(app, client):  # type: ignore[no-untyped-def]
    user = make_user(app, "sec_admin")
    s = Session(client, user)
    me = s.get("/api/auth/me").get_json()
    assert "menu.account_review" in me["menus"]
    assert "menu.audit" not in me["menus"]


def test_openapi(client):  # type: ignore[no-untyped-def]
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    assert "/api/auth/login" in r.get_json()["paths"]
