"""Access control: deny by default, cross-hospital isolation, the role × function matrix, mass assignment and
三权分立 (REQ: AC-01..AC-05, PII-02)."""

from __future__ import annotations

import io
import re
from itertools import combinations
from typing import Any

import openpyxl
import pytest
from flask import Flask, request
from sqlalchemy import func, select

from api.accounts import schemas as acc
from api.auth.schemas import PasswordChangeSchema
from api.security import AUTHENTICATED, PUBLIC, permission_of
from engine import uow
from engine.accounts.models import Role, User
from engine.accounts.permissions import ADMIN_DOMAINS, BASELINE, BUILTIN_ROLES, BY_CODE, domains_of
from engine.attachments.models import Attachment
from engine.audit import AuditEvent
from engine.models import metadata
from tests.factories import (
    DEFAULT_PASSWORD,
    Session,
    anon_csrf,
    as_user,
    institution,
    make_user,
    registration_form,
    role_id,
)

PUBLIC_API = {"health.health", "api-docs.openapi_json", "auth.login", "auth.csrf", "accounts.public_institutions"}
PUBLIC_API |= {"accounts.register", "accounts.registration_status", "accounts.resubmit"}
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
ROLE_PERMS = {r.code: r.permissions | BASELINE for r in BUILTIN_ROLES}
_PARAM = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
ID_RE = re.compile(r"\b\d{17}[\dXx]\b")
PHONE_RE = re.compile(r"\b1[3-9]\d{9}\b")
# Every key a successful JSON answer may carry (AC-04 response allowlist); `details` of audit rows is free-form.
ALLOWED_KEYS = set(
    "id username full_name institution department title phone_masked review_status enabled locked roles "
    "last_login_at created_at code name kind parent_id departments items total page page_size submitted_at "
    "reviewed_at reviewed_by reject_reason source id_number_masked photos url history ts action actor reason "
    "description builtin permissions user_count menus state csrf_token mfa_enrolled last_login_ip "
    "failed_logins_since_last password_expires_at initial_password temporary_password institution_id "
    "department_id status database ok checked broken_at message parent domain event_type event_name "
    "object_type object_id outcome request_id details ip user_agent institution_code last_seen_at current "
    # case engine (issue 3)
    "content_hash deployed_at deployed_by latest process_id running_cases version bpmn_xml dmn forms errors "
    "migrated assigned case case_id case_no task_name title lane_role assignee in_pool group emergency "
    "patient_name modality body_part requesting_institution claimed_at patient exams exam_no accession_no "
    "exam_item exam_time status_name sex age patient_no current_tasks report_status printed clinical_info "
    "dispatch_mode target_group report deployment incident voided lock holder expires_at released_at printed_at "
    "print_count seq level author signed findings impression recommendation positive note changes event "
    "task_title active completed schema ui_schema data task lock_token members field before after "
    # DICOM devices and archive (issue 4: IMG-02, DCM-03/04/06, DSEC-06, IMG-06)
    "aet host port allow tls_required cert_fingerprint updated_at study_instance_uid patient_id patient_sex "
    "patient_birth_date study_date study_time accession_number study_description modalities series_count "
    "instance_count exam_id referring_physician source_aet series series_instance_uid series_number "
    "series_description instances sop_instance_uid sop_class_uid sop_class_name transfer_syntax_uid "
    "instance_number size received_at is_sr sha256 calling_aet original_size original_sha256 "
    "original_received_at study_id resolved_by resolved_at instance_id completion_flag verification_flag content "
    "relationship value_type concept text children elapsed_ms truncated failed warning reason_name study "
    # routing rules, forward queue, storage targets and tasks (issue 4: DCM-02, IMG-03/04/07/08/09)
    "priority stop node_ids institution_ids modalities body_parts sop_classes study_description_contains "
    "series_description_contains storage_target_id storage_compression forward_node_ids forward_compression "
    "lossy root_path is_default instance_count target filter total done percent copied missing mismatched "
    "last_error created_by started_at finished_at attempts next_attempt_at compression rule_id node counts "
    "pending sending modality received_before study_ids queued already_sent "
    # where a role or permission may be held (issue 11)
    "scope "
    # 拼音首字母 of institution names, for pick lists filtered in the browser (issue 14)
    "name_pinyin "
    # report templates and phrases (issue 17): the tree, a template's sections and parts, phrase shortcuts
    "tree label count parts category favorite owner pinyin sections exam_method fields shortcut "
    # 报告时限: the rule table and each case's limit and due time (issue 17: UX.md R3)
    "body_part_keyword patient_class limit_minutes working_hours due_at tat_limit_minutes case_created_at "
    # 我的诊断记录's status-chip counts (issue 17: REC-07, UX.md R2): the window and one count per chip
    "window date_from date_to registered in_progress examined awaiting preliminary pending_review review_rejected "
    "reviewed released printed corrected overdue institutions".split()
)
# Values that are documents in their own right (audit details, JSON Schema, form data): their keys are free-form.
FREE_FORM = {"details", "schema", "ui_schema", "data", "dmn"}
FORBIDDEN_KEYS = {"password_hash", "totp_secret", "totp_secret_enc", "phone_enc", "id_number_enc", "id_number", "phone"}


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for key, v in value.items() if key not in FREE_FORM for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


@pytest.fixture(autouse=True)
def _responses_are_allowlisted(app):  # type: ignore[no-untyped-def]
    """AC-04 / PII-02 over every JSON body this module produces."""
    seen: list[tuple[str, int, Any, str]] = []

    @app.after_request
    def _keep(resp):  # type: ignore[no-untyped-def]
        if resp.mimetype == "application/json":
            seen.append((request.path, resp.status_code, resp.get_json(silent=True), resp.get_data(as_text=True)))
        return resp

    yield
    for path, status, body, text in seen:
        assert not ID_RE.search(text), (path, text[:200])
        assert not PHONE_RE.search(text), (path, text[:200])
        if status < 300 and path != "/api/openapi.json":
            assert _keys(body) <= ALLOWED_KEYS, (path, _keys(body) - ALLOWED_KEYS)
            assert not _keys(body) & FORBIDDEN_KEYS


def api_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, rule) for every /api route."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            out += [(rule.endpoint, m, rule.rule) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return out


def fill(rule: str, number: int = 1, text: str = "x") -> str:
    return _PARAM.sub(lambda m: str(number) if m.group(1) == "int" else text, rule)


def _events(app: Flask, event_type: str, user_id: int) -> list[str | None]:
    """Object types of the committed audit events of one type by one user, oldest first."""
    with app.app_context():
        stmt = select(AuditEvent.object_type).where(AuditEvent.event_type == event_type, AuditEvent.user_id == user_id)
        return list(uow.session().execute(stmt.order_by(AuditEvent.id)).scalars())


# --- AC-01 deny by default ---------------------------------------------------------------------


def test_ac01_every_route_declares_a_permission_and_public_is_an_allowlist(app):  # type: ignore[no-untyped-def]
    rules = app.url_map.iter_rules()
    assert [f"{r.rule} ({r.endpoint})" for r in rules if permission_of(app, r.endpoint) is None] == []
    assert {e for e, _m, _r in api_routes(app) if permission_of(app, e) == PUBLIC} == PUBLIC_API


def test_ac01_a_route_without_a_declaration_is_refused(app, client):  # type: ignore[no-untyped-def]
    app.add_url_rule("/api/_undeclared", "undeclared", lambda: {"leak": True})
    assert permission_of(app, "undeclared") is None
    r = client.get("/api/_undeclared")
    assert (r.status_code, r.get_json()["code"]) == (403, "no_permission_declared")


def test_ac01_anonymous_calls_get_401_except_the_public_allowlist(app, client):  # type: ignore[no-untyped-def]
    wrong = []
    for endpoint, method, rule in api_routes(app):
        if endpoint in PUBLIC_API:
            assert method != "GET" or client.get(fill(rule)).status_code == 200, rule
            continue
        for headers in ({}, {"X-CSRF-Token": "forged-token-forged-token"}):
            r = client.open(fill(rule), method=method, json={} if method in UNSAFE else None, headers=headers)
            got = (r.status_code, r.get_json()["code"])
            # Without a session an unsafe request may be stopped by the CSRF check first; never by anything else.
            if got != (401, "unauthenticated") and not (method in UNSAFE and got == (403, "csrf_failed")):
                wrong.append((method, rule, got))
    assert wrong == []


# --- AC-02 cross-hospital isolation --------------------------------------------------------------

OBJECT_CALLS: tuple[tuple[str, str, str, dict[str, Any] | None, int], ...] = (
    ("GET", "/api/users/{user}", "user", None, 200),
    ("PATCH", "/api/users/{user}", "user", {"title": "主任医师"}, 200),
    ("POST", "/api/users/{user}/unlock", "user", None, 204),
    ("POST", "/api/users/{user}/reset-password", "user", None, 200),
    ("PUT", "/api/users/{user}/roles", "user", {"role_ids": ["requester"]}, 200),  # a role M02 may hold
    ("GET", "/api/accounts/reviews/{pending}", "user", None, 200),
    ("GET", "/api/attachments/{attachment}", "attachment", None, 200),
    ("POST", "/api/accounts/reviews/{pending}/approve", "user", {"role_ids": ["registrar"]}, 200),
    ("POST", "/api/accounts/reviews/{rejectee}/reject", "user", {"reason": "资料不全"}, 200),
    ("GET", "/api/roles/{role}", "role", None, 200),
    ("PATCH", "/api/roles/{role}", "role", {"description": "修改"}, 200),
    ("PUT", "/api/roles/{role}/permissions", "role", {"permissions": ["menu.home"]}, 200),
    ("DELETE", "/api/roles/{role}", "role", None, 204),
)


def _m02_objects(app: Flask, client: Any) -> dict[str, Any]:
    m02 = institution(app, "M02")
    ids: dict[str, Any] = {"user": make_user(app, "registrar", institution_code="M02").id}
    csrf = anon_csrf(client)
    for key, name in (("pending", "pendone"), ("rejectee", "pendtwo")):
        r = client.post("/api/registrations", data=registration_form(name, m02.id), headers={"X-CSRF-Token": csrf})
        ids[key] = r.get_json()["id"]
    with app.app_context():
        s = uow.session()
        role = Role(code="m02_custom", name="二院自定义", institution_id=m02.id, builtin=False, enabled=True)
        s.add(role)
        s.flush()
        ids["role"] = role.id
        photos = select(Attachment.public_id).where(Attachment.owner_user_id == ids["pending"])
        ids["attachment"] = s.execute(photos).scalars().first()
        uow.commit()
    return ids


@pytest.mark.parametrize("inst", ["CENTRAL", "M01", "M02"])
@pytest.mark.parametrize("role", ["sys_admin", "sec_admin", "audit_admin", "report_l1"])
def test_ac02_another_hospitals_object_ids_answer_404_and_one_alert(app, client, inst, role):  # type: ignore[no-untyped-def]
    ids = _m02_objects(app, client)
    actor = as_user(app, role, institution_code=inst)
    adapter = app.url_map.bind("localhost")
    wrong = []
    for method, template, kind, body, allowed in OBJECT_CALLS:
        url = template.format(**ids)
        if body and "role_ids" in body:
            body = {"role_ids": [role_id(app, c) for c in body["role_ids"]]}
        permission = permission_of(app, adapter.match(url, method=method)[0])
        before = len(_events(app, "security_alert", actor.user.id))
        r = getattr(actor, method.lower())(url, json=body)
        alerts = _events(app, "security_alert", actor.user.id)[before:]
        if permission not in ROLE_PERMS[role]:
            expected, want_alerts = (403, "forbidden"), []
        elif inst == "M01":  # a member admin using M02's id: 404, not 403, and exactly one committed alert
            expected, want_alerts = (404, "not_found"), [kind]
        else:  # central staff see every hospital; M02 staff their own
            expected, want_alerts = (allowed, None), []
        got = (r.status_code, r.get_json(silent=True)["code"] if r.status_code >= 400 else None)
        if got != expected or alerts != want_alerts:
            wrong.append((method, template, got, alerts))
    assert wrong == []


def test_ac02_list_filters_and_parameter_pollution_never_leak(app):  # type: ignore[no-untyped-def]
    m01, m02 = institution(app, "M01"), institution(app, "M02")
    for code in ("M01", "M02"):
        make_user(app, "report_l1", institution_code=code)
        make_user(app, institution_code=code, review_status="pending")
    with app.app_context():
        uow.session().add(Role(code="m02_only", name="二院专用", institution_id=m02.id, builtin=False, enabled=True))
        uow.commit()
    m01_sys = as_user(app, "sys_admin", institution_code="M01")
    m01_sec = as_user(app, "sec_admin", institution_code="M01")

    def insts(session: Session, url: str, params: Any) -> set[str]:
        r = session.get(url, query_string=params)
        assert r.status_code == 200, r.get_json()
        return {i["institution"]["code"] for i in r.get_json()["items"]}

    for url, session, extra in (
        ("/api/users", m01_sys, []),
        ("/api/accounts/reviews", m01_sec, [("status", "pending")]),
    ):
        assert insts(session, url, [*extra, ("institution_id", m02.id)]) == set()
        assert insts(session, url, [*extra, ("institution_id", m01.id), ("institution_id", m02.id)]) <= {"M01"}
        assert insts(session, url, [*extra, ("institution_id", m02.id), ("institution_id", m01.id)]) <= {"M01"}
        assert insts(session, url, extra) == {"M01"}
    assert insts(as_user(app, "sys_admin"), "/api/users", [("institution_id", m02.id)]) == {"M02"}
    assert "二院专用" not in [r["name"] for r in m01_sec.get("/api/roles").get_json()]
    assert [i["code"] for i in m01_sec.get("/api/institutions").get_json()] == ["M01"]


def test_ac02_a_member_auditor_sees_only_its_own_institution(app):  # type: ignore[no-untyped-def]
    for code in ("M01", "M02", "CENTRAL"):
        Session(app.test_client(), make_user(app, "report_l1", institution_code=code))
    m01_auditor = as_user(app, "audit_admin", institution_code="M01")
    m01 = institution(app, "M01")
    with app.app_context():
        own = uow.session().execute(select(func.count(AuditEvent.id)).where(AuditEvent.institution_id == m01.id))
        own_count = own.scalar_one()
    page = m01_auditor.get("/api/audit/events", query_string={"page_size": 100}).get_json()
    assert page["total"] == own_count
    assert {e["institution_code"] for e in page["items"]} == {"M01"}
    sheet = openpyxl.load_workbook(io.BytesIO(m01_auditor.get("/api/audit/export").data)).active
    assert {row[4] for row in sheet.iter_rows(min_row=2, values_only=True)} == {"M01"}
    everyone = as_user(app, "audit_admin").get("/api/audit/events", query_string={"page_size": 100}).get_json()
    assert {"M01", "M02", "CENTRAL"} <= {e["institution_code"] for e in everyone["items"]}


# --- AC-03 role × function matrix ------------------------------------------------------------------


def function_matrix(app: Flask) -> list[tuple[str, str, str, str, int | None]]:
    """(role, method, url, permission, expected): 403 where the role lacks the permission, None (= allowed)."""
    rows = []
    for endpoint, method, rule in api_routes(app):
        perm = permission_of(app, endpoint)
        if perm not in (PUBLIC, AUTHENTICATED, None):
            url = fill(rule, 999999, "0" * 16)  # ids that exist nowhere: an allowed call answers 404, never 403
            rows += [(role, method, url, perm, None if perm in ROLE_PERMS[role] else 403) for role in ROLE_PERMS]
    return rows


@pytest.mark.parametrize("role", sorted(ROLE_PERMS))
def test_ac03_role_function_matrix(app, role):  # type: ignore[no-untyped-def]
    session = as_user(app, role)
    before = len(_events(app, "permission_denied", session.user.id))
    cells = [row for row in function_matrix(app) if row[0] == role]
    wrong = []
    for _role, method, url, permission, expected in cells:
        r = getattr(session, method.lower())(url, json={} if method in UNSAFE else None)
        body = r.get_json(silent=True) if r.status_code >= 400 else {}
        want = (403, "forbidden", {"permission": permission})
        got = (r.status_code, body.get("code"), body.get("details"))
        ok = got == want if expected == 403 else r.status_code in (200, 201, 204, 400, 404)
        if not ok:
            wrong.append((method, url, permission, expected, r.status_code, body.get("code")))
    assert cells
    assert {c[3] for c in cells} <= set(BY_CODE)  # every route permission is in the catalogue, so grantable
    assert wrong == []
    denied = sum(1 for c in cells if c[4] == 403)
    assert len(_events(app, "permission_denied", session.user.id)) - before == denied  # AC-05: each one audited


# --- AC-04 mass assignment ---------------------------------------------------------------------------

FORBIDDEN_FIELDS: dict[str, Any] = {
    "id": 1, "institution_id": "M02", "roles": ["sys_admin"], "role": "sys_admin", "is_admin": True,
    "status": "approved", "review_status": "approved", "enabled": False, "created_at": "2000-01-01T00:00:00+00:00",
    "password_hash": "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA", "mfa_enabled": False, "totp_secret": "JBSWY3DP",
}  # fmt: skip
# endpoint → (method, url, actor role, request schema, valid body); no actor role means the anonymous form.
WRITES: dict[str, tuple[str, str, str | None, type, dict[str, Any]]] = {
    "new_user": ("POST", "/api/users", "sys_admin", acc.UserCreateSchema, {"username": "massu", "full_name": "甲"}),
    "update_user": ("PATCH", "/api/users/{user}", "sys_admin", acc.UserUpdateSchema, {"title": "主任医师"}),
    "user_roles": ("PUT", "/api/users/{user}/roles", "sec_admin", acc.UserRolesSchema, {"role_ids": ["report_l2"]}),
    "create_role": ("POST", "/api/roles", "sec_admin", acc.RoleCreateSchema, {"code": "mass_role", "name": "新角色"}),
    "update_role": ("PATCH", "/api/roles/{role}", "sec_admin", acc.RoleUpdateSchema, {"description": "说明"}),
    "role_perms": ("PUT", "/api/roles/{role}/permissions", "sec_admin", acc.RolePermissionsSchema, {"permissions": []}),
    "approve": ("POST", "/api/accounts/reviews/{pending}/approve", "sec_admin", acc.ApproveSchema, {"role_ids": []}),
    "reject": ("POST", "/api/accounts/reviews/{pending}/reject", "sec_admin", acc.RejectSchema, {"reason": "资料不全"}),
    "register": ("POST", "/api/registrations", None, acc.RegistrationFormSchema, {}),
    "password": ("POST", "/api/auth/password", "self", PasswordChangeSchema, {"new_password": "Fresh#Radiology26"}),
}
_VOLATILE = {"last_active_at", "last_login_at", "last_login_ip", "failed_logins_since_last"}


def _snapshot(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    with app.app_context():
        s = uow.session()
        out = {}
        for name in ("user_account", "role", "role_permission", "user_role", "attachment", "password_history"):
            cols = [c for c in metadata.tables[name].c if c.name not in _VOLATILE]
            out[name] = sorted((tuple(r) for r in s.execute(select(*cols)).all()), key=repr)
    return out


@pytest.mark.parametrize("name", sorted(WRITES))
def test_ac04_server_owned_fields_are_refused_and_nothing_changes(app, client, name):  # type: ignore[no-untyped-def]
    method, template, role, schema, valid = WRITES[name]
    target = make_user(app, "requester", institution_code="M01")
    pending = make_user(app, institution_code="M01", review_status="pending")
    m01, m02 = institution(app, "M01").id, institution(app, "M02").id
    with app.app_context():
        role_row = Role(code="mass_target", name="目标角色", builtin=False, enabled=True)
        uow.session().add(role_row)
        uow.commit()
        url = template.format(user=target.id, pending=pending.id, role=role_row.id)
    session = Session(client, target) if role == "self" else as_user(app, role) if role else None
    valid = {"institution_id": m01, "old_password": DEFAULT_PASSWORD, **valid} if name != "register" else valid
    valid = {k: v for k, v in valid.items() if k in schema().fields}
    if "role_ids" in valid:
        valid["role_ids"] = [role_id(app, "requester")]  # a role a member hospital's account may hold (issue 11)
    fields = [f for f in FORBIDDEN_FIELDS if f not in schema().fields]  # e.g. enabled is a field of PATCH users

    def send(extra: dict[str, Any]) -> Any:
        if session is None:
            extra = {k: str(v) for k, v in extra.items()}
            form = registration_form("massreg", m01, **extra)
            return client.post(url, data=form, headers={"X-CSRF-Token": anon_csrf(client)})
        return getattr(session, method.lower())(url, json={**valid, **extra})

    before = _snapshot(app)
    for field in fields:
        r = send({field: m02 if field == "institution_id" else FORBIDDEN_FIELDS[field]})
        assert r.status_code == 400, (field, r.get_json())
        assert r.get_json()["code"] == "validation_error"
        assert field in r.get_json()["details"]["fields"]
    assert fields
    assert _snapshot(app) == before
    assert send({}).status_code in (200, 201)  # the same request without the extra field is accepted


# --- AC-05 三权分立 ----------------------------------------------------------------------------------


def test_ac05_admin_roles_are_exclusive_and_never_combined_with_clinical_roles(app):  # type: ignore[no-untyped-def]
    sec = as_user(app, "sec_admin")
    pending = make_user(app, institution_code="M01", review_status="pending")
    approved = make_user(app, "report_l1", institution_code="M01")
    sets = [list(p) for p in combinations(("sys_admin", "sec_admin", "audit_admin"), 2)]
    sets += [["sys_admin", "sec_admin", "audit_admin"], ["sys_admin", "report_l1"], ["audit_admin", "dispatcher"]]
    sets += [["sec_admin", "report_l3"]]
    custom = [
        sec.post("/api/roles", json={"code": c, "name": c, "permissions": [p]}).get_json()["id"]
        for c, p in (("sys_view", "user.read"), ("aud_view", "audit.read"))
    ]
    before = _snapshot(app)
    for ids in [[role_id(app, c) for c in codes] for codes in sets] + [custom]:
        for r in (
            sec.post(f"/api/accounts/reviews/{pending.id}/approve", json={"role_ids": ids}),
            sec.put(f"/api/users/{approved.id}/roles", json={"role_ids": ids}),
        ):
            assert (r.status_code, r.get_json()["code"]) == (400, "separation_of_duties"), ids
    assert _snapshot(app) == before
    # Each administrator role on its own can be granted.
    r = sec.post(f"/api/accounts/reviews/{pending.id}/approve", json={"role_ids": [role_id(app, "sec_admin")]})
    assert r.status_code == 200
    r = sec.put(f"/api/users/{approved.id}/roles", json={"role_ids": [role_id(app, "audit_admin")]})
    assert r.status_code == 200


def test_ac05_a_custom_role_cannot_mix_admin_domains(app):  # type: ignore[no-untyped-def]
    sec = as_user(app, "sec_admin")
    mixes = (["user.manage", "audit.read"], ["role.manage", "user.manage"], ["audit.export", "account.review"])
    for n, perms in enumerate(mixes):
        r = sec.post("/api/roles", json={"code": f"mixed{n}", "name": f"混合{n}", "permissions": perms})
        assert (r.status_code, r.get_json()["code"]) == (400, "separation_of_duties")
    role = sec.post(
        "/api/roles", json={"code": "aud_only", "name": "仅审计", "permissions": ["menu.audit", "audit.read"]}
    )
    assert role.status_code == 201
    url = f"/api/roles/{role.get_json()['id']}"
    r = sec.put(f"{url}/permissions", json={"permissions": ["audit.read", "user.manage"]})
    assert (r.status_code, r.get_json()["code"]) == (400, "separation_of_duties")
    assert sec.get(url).get_json()["permissions"] == ["audit.read", "menu.audit"]


def test_ac05_sys_admin_cannot_touch_the_audit_log_and_each_attempt_is_audited(app):  # type: ignore[no-untyped-def]
    sysadmin = as_user(app, "sys_admin")
    for url in ("/api/audit/events", "/api/audit/export", "/api/audit/verify", "/api/audit/event-types"):
        before = len(_events(app, "permission_denied", sysadmin.user.id))
        r = sysadmin.get(url)
        assert (r.status_code, r.get_json()["code"]) == (403, "forbidden")
        assert _events(app, "permission_denied", sysadmin.user.id)[before:] == ["endpoint"]


def test_ac05_the_auditor_is_read_only(app):  # type: ignore[no-untyped-def]
    auditor = as_user(app, "audit_admin")
    assert auditor.get("/api/audit/events").status_code == 200
    assert auditor.get("/api/audit/verify").get_json()["ok"] is True
    protected = [(m, fill(r)) for e, m, r in api_routes(app) if permission_of(app, e) not in (PUBLIC, AUTHENTICATED)]
    writes = [(m, url) for m, url in protected if m in UNSAFE]
    assert len(writes) >= 10
    for method, url in writes:
        r = getattr(auditor, method.lower())(url, json={})
        assert (r.status_code, r.get_json()["code"]) == (403, "forbidden"), (method, url)


def test_ac05_only_the_security_admin_grants_roles_and_never_to_itself(app):  # type: ignore[no-untyped-def]
    target = make_user(app, "report_l1")
    body = {"role_ids": [role_id(app, "report_l2")]}
    for role in ("sys_admin", "audit_admin"):
        r = as_user(app, role).put(f"/api/users/{target.id}/roles", json=body)
        assert (r.status_code, r.get_json()["code"]) == (403, "forbidden")
    sec = as_user(app, "sec_admin")
    r = sec.put(f"/api/users/{sec.user.id}/roles", json={"role_ids": [role_id(app, "sec_admin")]})
    assert (r.status_code, r.get_json()["code"]) == (403, "self_grant")
    assert sec.put(f"/api/users/{target.id}/roles", json=body).status_code == 200


def test_ac05_no_role_or_account_spans_the_admin_domains(app):  # type: ignore[no-untyped-def]
    for role in ("sys_admin", "sec_admin", "audit_admin"):
        make_user(app, role, institution_code="M01")
    with app.app_context():
        s = uow.session()
        roles = list(s.execute(select(Role)).unique().scalars())
        assert len(roles) >= len(BUILTIN_ROLES)
        for role in roles:  # no built-in superuser: nobody holds all three, and sys never meets audit
            domains = domains_of(set(role.permission_codes)) & set(ADMIN_DOMAINS)
            assert len(domains) < 3, role.code
            assert not {"sys", "audit"} <= domains, role.code
        for user in s.execute(select(User)).unique().scalars():
            assert len(user.role_codes & {"sys_admin", "sec_admin", "audit_admin"}) <= 1, user.username
