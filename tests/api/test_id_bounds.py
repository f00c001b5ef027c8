"""Out-of-range ids and integers: 404 in a path, 400 in a body or query string, never 500 (issue 11 §3).

Primary keys are 32-bit on PostgreSQL, so an id is 1..2^31−1 on both databases; a larger integer used to reach the
database driver and raise there (HTTP 500). Every route and every integer field of every request schema is found
from the app itself (app.url_map and flask-smorest's argument schemas), so a new route is covered without editing
this file. REQ: DAT-01 (schema validation on every interface), WEB-05 (no 500 for bad input), WEB-06 (paging caps).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from marshmallow import Schema, fields

from api.schemas import ID_MAX
from api.security import AUTHENTICATED, PUBLIC, permission_of
from engine.accounts.permissions import BUILTIN_ROLES
from tests.api.test_cases_flow import Team, complete, new_case, ok, refused, the_task
from tests.factories import Session, anon_csrf, as_user

OUT_OF_RANGE = (2**31, 2**63, 2**70)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CJK = re.compile(r"[\u4e00-\u9fff]")
_PARAM = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def _role_for(permission: str) -> str:
    """A built-in role holding `permission` (a central user with it can reach the route)."""
    if permission == AUTHENTICATED:
        return "registrar"
    for role in BUILTIN_ROLES:
        if permission in role.permissions:
            return role.code
    raise AssertionError(f"no built-in role holds {permission}")


class _Callers:
    """One logged-in central session per role, made when first needed; an anonymous client for public routes."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.sessions: dict[str, Session] = {}

    def call(self, endpoint: str, method: str, url: str, **kw: Any) -> Any:
        permission = permission_of(self.app, endpoint)
        assert permission, endpoint
        if permission == PUBLIC:
            client = self.app.test_client()
            return client.open(url, method=method, headers={"X-CSRF-Token": anon_csrf(client)}, **kw)
        role = _role_for(permission)
        if role not in self.sessions:
            self.sessions[role] = as_user(self.app, role)
        sess = self.sessions[role]
        return sess.client.open(url, method=method, headers={"X-CSRF-Token": sess.csrf}, **kw)


def _url(rule: str, big: dict[str, int]) -> str:
    """The rule with `big` for the named int parameters, 1 for the other ints and "x" for strings."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) == "int":
            return str(big.get(m.group(2), 1))
        return "x"

    return _PARAM.sub(sub, rule)


def _int_fields(schema: Schema, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, payload value) for every integer input of `schema`, nested schemas and lists included."""
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        key = field.data_key or name
        if isinstance(field, fields.Integer):
            yield prefix + key, None
        elif isinstance(field, fields.List) and isinstance(field.inner, fields.Integer):
            yield prefix + key, "list"
        elif isinstance(field, fields.Nested) and isinstance(field.schema, Schema):
            yield from _int_fields(field.schema, f"{prefix}{key}.")


def _payload(path: str, kind: Any, value: int) -> dict[str, Any]:
    head, _, rest = path.partition(".")
    if rest:
        return {head: _payload(rest, kind, value)}
    return {head: [value] if kind == "list" else value}


def _schema_inputs(app: Flask) -> Iterator[tuple[str, str, str, str, str, Any]]:
    """(endpoint, method, rule, location, field path, kind) for every integer field of every request schema."""
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        view = app.view_functions[rule.endpoint]
        params = getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", [])
        for param in params:
            schema = param["schema"]
            schema = schema() if isinstance(schema, type) else schema
            for path, kind in _int_fields(schema):
                for method in sorted(rule.methods & set(METHODS)):
                    yield rule.endpoint, method, rule.rule, param["in"], path, kind


def _request_kw(location: str, path: str, kind: Any, value: int) -> dict[str, Any]:
    payload = _payload(path, kind, value)
    if location == "query":
        return {"query_string": payload}
    if location == "form":
        return {"data": {k: str(v) for k, v in payload.items()}, "content_type": "multipart/form-data"}
    return {"json": payload}


def _field_errors(body: dict[str, Any], path: str) -> list[Any]:
    errs = body.get("details", {}).get("fields", {})
    return [m for key, msgs in errs.items() if key == path or key.startswith(path + ".") for m in msgs]


@pytest.mark.parametrize("value", OUT_OF_RANGE, ids=["2^31", "2^63", "2^70"])
def test_dat01_out_of_range_ids_in_every_path_body_and_query(app, value):  # type: ignore[no-untyped-def]
    callers = _Callers(app)
    failures: list[str] = []
    paths = 0
    for rule in app.url_map.iter_rules():
        ints = [name for conv, name in _PARAM.findall(rule.rule) if conv == "int"]
        for name in ints:
            url = _url(rule.rule, {name: value})
            for method in sorted(rule.methods & set(METHODS)):
                r = callers.call(rule.endpoint, method, url, json={} if method != "GET" else None)
                paths += 1
                body = r.get_json(silent=True) or {}
                if (r.status_code, body.get("code")) != (404, "not_found"):
                    failures.append(f"{method} {url}: {r.status_code} {body}")
    inputs = 0
    for endpoint, method, rule, location, path, kind in _schema_inputs(app):
        if location == "files":
            continue
        r = callers.call(endpoint, method, _url(rule, {}), **_request_kw(location, path, kind, value))
        inputs += 1
        body = r.get_json(silent=True) or {}
        errors = _field_errors(body, path)
        if r.status_code != 400 or body.get("code") != "validation_error" or not errors:
            failures.append(f"{method} {rule} {location}:{path}: {r.status_code} {body}")
        elif not all(CJK.search(str(m)) for m in errors):
            failures.append(f"{method} {rule} {location}:{path}: message not Chinese: {errors}")
    assert paths >= 40, paths  # the URL map and the schemas were really walked
    assert inputs >= 30, inputs
    assert failures == [], "\n".join(failures)


def test_dat01_largest_id_is_an_ordinary_unknown_object(app):  # type: ignore[no-untyped-def]
    """2^31−1 is inside the range: it reaches the lookup and answers the usual 404, as an unknown id does."""
    doctor = as_user(app, "report_l1")
    for url in (f"/api/cases/{ID_MAX}", "/api/cases/999999"):
        r = doctor.get(url)
        assert (r.status_code, r.get_json()["code"]) == (404, "not_found"), url
    for url in ("/api/cases/0", "/api/cases/00", f"/api/cases/{ID_MAX + 1}"):
        assert doctor.get(url).status_code == 404, url
    r = doctor.put(f"/api/reports/{ID_MAX}/draft", json={"lock_token": ID_MAX})
    assert r.status_code == 404, r.get_json()
    spec = app.test_client().get("/api/openapi.json").get_json()
    param = spec["paths"]["/api/cases/{case_id}"]["parameters"][0]
    assert (param["schema"]["minimum"], param["schema"]["maximum"]) == (1, ID_MAX)


def _paginated(app: Flask) -> Iterator[tuple[str, str]]:
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or "<" in rule.rule:
            continue
        params = getattr(app.view_functions[rule.endpoint], "_apidoc", {}).get("arguments", {}).get("parameters", [])
        for param in params:
            schema = param["schema"]
            schema = schema() if isinstance(schema, type) else schema
            if param["in"] == "query" and "page" in schema.fields and "page_size" in schema.fields:
                yield rule.endpoint, rule.rule


def test_web06_every_paginated_list_past_its_last_page_is_empty_and_absurd_pages_are_400(app):  # type: ignore[no-untyped-def]
    callers = _Callers(app)
    lists = sorted(set(_paginated(app)))
    assert len(lists) >= 8, lists  # users, reviews, audit, cases, tasks, studies, conflicts, unmatched, jobs
    for endpoint, url in lists:
        for page in (2, 1000, ID_MAX):
            r = callers.call(endpoint, "GET", url, query_string={"page": page, "page_size": 100})
            if r.mimetype != "application/json":
                continue  # an export: the page arguments do not apply
            body = r.get_json()
            assert r.status_code == 200, (url, page, body)
            if body["total"] <= 100:
                assert (body["items"], body["page"]) == ([], page), (url, page)
        for query in ({"page": 2**31}, {"page_size": 2**31}, {"page": -(2**63)}, {"page": 10**30, "page_size": 10**30}):
            r = callers.call(endpoint, "GET", url, query_string=query)
            body = r.get_json(silent=True) or {}
            assert (r.status_code, body.get("code")) == (400, "validation_error"), (url, query, r.status_code, body)
            assert all(CJK.search(m) for msgs in body["details"]["fields"].values() for m in msgs), body


def test_dat01_manual_assignment_form_ids_are_checked_before_the_database(app):  # type: ignore[no-untyped-def]
    """The 人工分配 form's assignee_id is JSON-schema data, not a marshmallow field: the engine bounds it and
    refuses anyone but a qualified central doctor (an unknown id used to fail the foreign key: HTTP 500)."""
    team = Team(app, "M05")
    dispatcher = as_user(app, "dispatcher")
    registrar = as_user(app, "registrar")
    task = the_task(app, new_case(team.req)["id"], "assign_case")
    for assignee in (*OUT_OF_RANGE, ID_MAX, 999_999, registrar.user.id):
        refused(complete(dispatcher, task.id, {"assignee_id": assignee}), 400, "not_qualified")
    assert the_task(app, task.case_id).id == task.id  # nothing moved
    ok(complete(dispatcher, task.id, {"assignee_id": team.l1.user.id}))
    assert the_task(app, task.case_id, "draft_report").assignee_id == team.l1.user.id
