"""Smoke: the app answers health, login works, the OpenAPI document is served."""

from __future__ import annotations

import re

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
    assert me["menus"] == [
        "menu.home",
        "menu.profile",
        "menu.cases",
        "menu.tasks",
        "menu.pool",
        "menu.imaging",
        "menu.templates",  # a doctor's own report templates and phrases (issue 17)
    ]
    assert [r["code"] for r in me["roles"]] == ["report_l1"]


def test_admin_login_with_totp(app, client):  # type: ignore[no-untyped-def]
    user = make_user(app, "sec_admin")
    s = Session(client, user)
    me = s.get("/api/auth/me").get_json()
    assert "menu.account_review" in me["menus"]
    assert "menu.audit" not in me["menus"]


def test_openapi(app, client):  # type: ignore[no-untyped-def]
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    paths = r.get_json()["paths"]
    assert "/api/auth/login" in paths
    # The document is built lazily on first read (api/app.py _Api): still every API route, each blueprint once
    routes = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/") and rule.endpoint != "api-docs.openapi_json"
    }
    assert routes <= set(paths), sorted(routes - set(paths))
    tags = [t["name"] for t in r.get_json()["tags"]]
    assert len(tags) == len(set(tags))
    assert client.get("/api/openapi.json").get_json() == r.get_json()  # read twice, built once
