"""Web and API hygiene: CSRF, injection-safe search, security headers, generic errors, production refusals and
resource caps (REQ: WEB-01, WEB-03, WEB-04, WEB-05, WEB-06, DAT-01)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from click.testing import CliRunner
from flask import request

from api.accounts.schemas import ReviewQuerySchema, RoleQuerySchema, UserQuerySchema
from api.audit.views import AuditQuerySchema
from api.security import PUBLIC, permission_of, requires
from engine.config import ConfigError, load_settings
from telerad.cli import main as cli
from tests.factories import as_user, make_user

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
CJK = re.compile(r"[\u4e00-\u9fff]")
PAYLOADS = ("'", "' OR '1'='1", "1;select pg_sleep(5)--", "%", "_", "\\")
LISTS = {
    "/api/users": UserQuerySchema,
    "/api/accounts/reviews": ReviewQuerySchema,
    "/api/roles": RoleQuerySchema,
    "/api/audit/events": AuditQuerySchema,
    "/api/audit/export": AuditQuerySchema,
}
_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


@pytest.fixture
def settings(settings, tmp_path):  # type: ignore[no-untyped-def]
    """A built SPA of our own, so the headers of the index page are tested whatever web/ holds."""
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<!doctype html><div id="app"></div><script src="/assets/app.js"></script>')
    (dist / "assets" / "app.js").write_text("console.log('telerad')")
    settings.web_dist = dist
    return settings


@pytest.fixture(autouse=True)
def _error_bodies_are_uniform(app):  # type: ignore[no-untyped-def]
    """Every API error is {"code", "message" (Chinese), "details"} — nothing else, whatever raised it."""
    errors: list[tuple[str, int, Any]] = []

    @app.after_request
    def _keep(resp):  # type: ignore[no-untyped-def]
        if request.path.startswith("/api/") and resp.status_code >= 400:
            errors.append((request.path, resp.status_code, resp.get_json(silent=True)))
        return resp

    yield
    for path, status, body in errors:
        assert isinstance(body, dict), (path, status)
        assert set(body) == {"code", "message", "details"}, (path, body)
        assert CJK.search(body["message"]), (path, body)
        assert isinstance(body["details"], dict), (path, body)


def _unsafe_routes(app: Any) -> list[tuple[str, str, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods & set(UNSAFE)):
            url = _PARAM.sub(lambda m: "1" if m.group(1) == "int" else "x", rule.rule)
            out.append((rule.endpoint, method, url))
    return out


def test_web01_every_unsafe_endpoint_needs_the_csrf_token(app):  # type: ignore[no-untyped-def]
    s = as_user(app, "sec_admin")
    checked = 0
    for endpoint, method, url in _unsafe_routes(app):
        view = app.view_functions[endpoint]
        if permission_of(app, endpoint) == PUBLIC and not getattr(view, "_telerad_anon_csrf", False):
            continue  # login and status lookups are JSON-only instead (see below)
        for headers, code in (
            ({}, "csrf_failed"),
            ({"X-CSRF-Token": "wrong-token-wrong-token-wrong"}, "csrf_failed"),
            ({"X-CSRF-Token": s.csrf, "Origin": "https://evil.example"}, "csrf_origin"),
            ({"X-CSRF-Token": s.csrf, "Origin": "null"}, "csrf_origin"),
        ):
            r = s.client.open(url, method=method, json={}, headers=headers)
            assert (r.status_code, r.get_json()["code"]) == (403, code), (method, url, headers)
        checked += 1
    assert checked >= 15
    assert s.get("/api/auth/me").status_code == 200  # none of that touched the session
    r = s.client.post("/api/roles", json={}, headers={"X-CSRF-Token": s.csrf, "Origin": "http://localhost"})
    assert r.get_json()["code"] == "validation_error"  # same origin and the right token pass the guard


def test_web01_json_only_public_endpoints_cannot_be_posted_cross_site(app, client):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    body = f"username={user.username}&password={user.password}"
    for url in ("/api/auth/login", "/api/registrations/status"):
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
            r = client.post(url, data=body, headers={"Content-Type": ctype})
            assert (r.status_code, r.get_json()["code"]) == (415, "unsupported_media_type"), (url, ctype)
    r = client.post("/api/auth/login", json={"username": user.username, "password": user.password})
    assert r.status_code == 200
    r = client.post("/api/registrations", data={"username": "x"}, headers={"X-CSRF-Token": "no-cookie-behind-it-x"})
    assert (r.status_code, r.get_json()["code"]) == (403, "csrf_failed")


def test_web03_injection_payloads_in_every_list_parameter(app):  # type: ignore[no-untyped-def]
    for name in ("lit_a", "litxa", "pct%b", "pctxb"):
        make_user(app, "report_l1", username=name)
    sysadmin, sec, auditor = as_user(app, "sys_admin"), as_user(app, "sec_admin"), as_user(app, "audit_admin")
    who = {"/api/users": sysadmin, "/api/accounts/reviews": sec, "/api/roles": sec}
    slowest = 0.0
    for url, schema in LISTS.items():
        session = who.get(url, auditor)
        for param in schema().fields:
            for payload in PAYLOADS:
                start = time.monotonic()
                r = session.get(url, query_string={param: payload})
                slowest = max(slowest, time.monotonic() - start)
                assert r.status_code in (200, 400), (url, param, payload, r.status_code)
                if r.status_code == 200 and param == "q" and "'" in payload:  # matched literally: nothing
                    body = r.get_json()
                    assert (body if isinstance(body, list) else body["items"]) == [], (url, payload)
    assert slowest < 2.0  # pg_sleep(5) never ran

    def found(q: str) -> list[str]:
        return sorted(u["username"] for u in sysadmin.get("/api/users", query_string={"q": q}).get_json()["items"])

    names = {q: found(q) for q in ("_", "%", "t_a", "t%b", "lit")}
    assert names == {"_": ["lit_a"], "%": ["pct%b"], "t_a": ["lit_a"], "t%b": ["pct%b"], "lit": ["lit_a", "litxa"]}
    for extra in ({"sort": "name;select pg_sleep(5)"}, {"order": "id desc"}, {"q": "a", "password_hash": "x"}):
        r = sysadmin.get("/api/users", query_string=extra)
        assert (r.status_code, r.get_json()["code"]) == (400, "validation_error"), extra


def _csp(headers: Any) -> dict[str, str]:
    return {d.split()[0]: d for d in (p.strip() for p in headers["Content-Security-Policy"].split(";")) if d}


def test_web04_security_headers_on_api_spa_and_errors(app, client):  # type: ignore[no-untyped-def]
    s = as_user(app, "report_l1")
    pages = {
        "api": client.get("/api/health"),
        "api_session": s.get("/api/auth/me"),
        "spa_index": client.get("/"),
        "spa_route": client.get("/admin/users"),
        "asset": client.get("/assets/app.js"),
        "not_found": client.get("/api/nope"),
        "unauthenticated": client.get("/api/users"),
        "method": client.delete("/api/health"),
    }
    assert pages["spa_index"].status_code == 200
    assert b'<div id="app">' in pages["spa_route"].data
    for name, r in pages.items():
        csp = _csp(r.headers)
        assert csp["default-src"] == "default-src 'self'", name
        assert "'unsafe-inline'" not in r.headers["Content-Security-Policy"], name
        assert "'unsafe-eval'" not in r.headers["Content-Security-Policy"], name
        # WEB-03/issue 15: Cornerstone3D's WASM codecs need exactly 'wasm-unsafe-eval' in script-src, nothing else
        assert csp["script-src"] == "script-src 'self' 'wasm-unsafe-eval'", name
        assert csp["frame-ancestors"] == "frame-ancestors 'none'", name
        assert r.headers["X-Content-Type-Options"] == "nosniff", name
        assert r.headers["Referrer-Policy"] == "no-referrer", name
        assert r.headers["X-Frame-Options"] == "DENY", name
        if name.startswith(("api", "not_found", "unauthenticated", "method")):
            assert r.headers["Cache-Control"] == "no-store", name
    assert pages["spa_index"].headers["Cache-Control"] == "no-cache"


def test_web04_unknown_dicomweb_and_oauth_paths_answer_json_404_never_the_spa(app, client):  # type: ignore[no-untyped-def]
    """Issue 15: /dicomweb and /oauth are the guard's like /api — a client that mistypes a DICOMweb or token URL
    gets a JSON 404 (not index.html with 200), with no-store."""
    for url in ("/dicomweb", "/dicomweb/nope", "/dicomweb/studies/1.2.3/nope", "/oauth", "/oauth/nope", "/api"):
        r = client.get(url)
        assert r.status_code == 404, url
        assert r.mimetype == "application/json", url
        assert r.get_json()["code"] == "not_found", url
        assert r.headers["Cache-Control"] == "no-store", url
    assert b'<div id="app">' in client.get("/dicomweb-help").data  # only the prefixes themselves are the guard's


def test_web05_a_forced_500_answers_a_generic_body(app, client, caplog):  # type: ignore[no-untyped-def]
    @app.route("/api/_test/boom", endpoint="boom")
    @requires(PUBLIC)
    def boom() -> Any:
        raise RuntimeError("kaboom at /work/main/engine/secret.py line 42")

    r = client.get("/api/_test/boom")
    assert r.status_code == 500
    assert r.get_json() == {"code": "internal_error", "message": "服务器内部错误，请联系管理员", "details": {}}
    for leak in ("Traceback", "RuntimeError", "kaboom", "/work", ".py", 'File "'):
        assert leak not in r.get_data(as_text=True)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "kaboom" in caplog.text  # the log keeps what the body hides
    assert app.debug is False


def test_web05_production_refuses_to_start_with_debug_on(tmp_path):  # type: ignore[no-untyped-def]
    env = {
        "TELERAD_MODE": "production",
        "TELERAD_DEBUG": "1",
        "TELERAD_SECRET_KEY": "p" * 48,
        "TELERAD_INSTANCE_DIR": str(tmp_path),
        "TELERAD_DATABASE_URL": f"sqlite:///{tmp_path}/prod.db",
    }
    with pytest.raises(ConfigError, match="WEB-05"):
        load_settings(env)
    assert load_settings({**env, "TELERAD_DEBUG": "0"}).debug is False
    result = CliRunner().invoke(cli, ["web"], env=env)
    assert result.exit_code == 2
    assert "TELERAD_DEBUG" in result.output


def test_web06_page_size_nesting_body_size_and_unknown_fields(app, client):  # type: ignore[no-untyped-def]
    sec = as_user(app, "sec_admin")
    for url in ("/api/users", "/api/accounts/reviews"):
        assert sec.get(url, query_string={"page_size": 1000000}).get_json()["page_size"] == 100
    auditor = as_user(app, "audit_admin")
    assert auditor.get("/api/audit/events", query_string={"page_size": 1000000}).get_json()["page_size"] == 100

    deep = "[" * 10_000 + "]" * 10_000
    headers = {"Content-Type": "application/json"}
    r = client.post("/api/auth/login", data=deep, headers=headers)
    assert (r.status_code, r.get_json()["code"]) == (400, "json_too_deep")
    r = sec.post("/api/roles", data='{"code": "x", "permissions": ' + deep + "}", headers=headers)
    assert (r.status_code, r.get_json()["code"]) == (400, "json_too_deep")
    r = sec.post("/api/roles", data="[" * 33 + "]" * 33, headers=headers)
    assert r.get_json()["code"] == "json_too_deep"
    # Brackets inside strings are text, not nesting; 32 levels are allowed through to the schema.
    r = client.post("/api/auth/login", json={"username": "[" * 100, "password": "{" * 100})
    assert (r.status_code, r.get_json()["code"]) == (400, "validation_error")
    r = sec.post("/api/roles", data="[" * 32 + "]" * 32, headers=headers)
    assert (r.status_code, r.get_json()["code"]) == (400, "validation_error")

    big = '{"username": "a", "password": "' + "x" * (1024 * 1024) + '"}'
    r = client.post("/api/auth/login", data=big, headers=headers)
    assert (r.status_code, r.get_json()["code"]) == (413, "too_large")

    r = client.post("/api/auth/login", json={"username": "a", "password": "b", "remember_me": True})
    assert (r.status_code, r.get_json()["code"]) == (400, "validation_error")
    assert r.get_json()["details"]["fields"] == {"remember_me": ["不允许的字段"]}
    r = sec.post("/api/roles", json={"code": "unk_role", "name": "未知字段", "admin": True})
    assert (r.status_code, r.get_json()["details"]["fields"]) == (400, {"admin": ["不允许的字段"]})
