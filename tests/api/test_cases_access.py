"""Who may see and do what on cases, tasks and reports: separation of duties in review, isolation between
hospitals and between doctors, no clinical data for the three administrators, strict request schemas.

REQ: AC-06, AC-02, AC-03 (clinical endpoints × admin roles), AC-04.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from engine import uow
from engine.audit import AuditEvent
from engine.cases.models import Case
from tests.api.test_cases_flow import (
    APPROVE,
    REPORT,
    Team,
    case_body,
    case_of,
    complete,
    new_case,
    ok,
    refused,
    report_row,
    task_ids,
    the_task,
)
from tests.factories import Session, as_user

CLINICAL_PREFIXES = ("/api/cases", "/api/tasks", "/api/reports", "/api/doctors", "/api/groups", "/api/processes")


def alerts(app: Flask, user_id: int) -> list[tuple[str | None, str | None]]:
    with app.app_context():
        rows = uow.session().execute(
            select(AuditEvent.object_type, AuditEvent.object_id)
            .where(AuditEvent.event_type == "security_alert", AuditEvent.user_id == user_id)
            .order_by(AuditEvent.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def case_count(app: Flask) -> int:
    with app.app_context():
        return int(uow.session().execute(select(func.count()).select_from(Case)).scalar_one())


# --- AC-06: three distinct, qualified signers -----------------------------------------------------------------


def test_ac06_the_author_cannot_take_or_complete_the_next_level(app: Flask) -> None:
    team = Team(app)
    dual = as_user(app, "report_l1", "report_l2")  # a senior doctor holding both levels
    dispatcher = as_user(app, "dispatcher")
    case_id = new_case(team.req)["id"]
    draft = the_task(app, case_id, "draft_report")
    ok(dual.post(f"/api/tasks/{draft.id}/claim"))
    ok(complete(dual, draft.id, REPORT))
    l2 = the_task(app, case_id, "report_level2")
    for scope in ("mine", "group", "pool", "all"):  # all: the case stays visible (dual worked on it), the task not
        assert l2.id not in task_ids(dual, scope)
    assert l2.id in task_ids(team.l2, "group")
    assert l2.id in task_ids(team.l2, "all")
    assert ok(dual.get(f"/api/cases/{case_id}"))["id"] == case_id
    refused(dual.post(f"/api/tasks/{l2.id}/claim"), 403, "not_candidate")
    refused(complete(dual, l2.id, APPROVE), 403, "not_candidate")
    refused(dispatcher.post(f"/api/tasks/{l2.id}/assign", json={"user_id": dual.user.id}), 403, "separation_of_duties")
    refused(complete(team.l1, l2.id, APPROVE), 404)  # no report_l2 role and no part in the case: invisible
    assert the_task(app, case_id).id == l2.id  # nothing moved
    assert report_row(app, case_id).author_l2_id is None


def test_ac06_earlier_signers_cannot_complete_the_final_review(app: Flask) -> None:
    team = Team(app)
    a = as_user(app, "report_l1", "report_l3")
    b = as_user(app, "report_l2", "report_l3")
    case_id = new_case(team.req)["id"]
    draft = the_task(app, case_id)
    ok(a.post(f"/api/tasks/{draft.id}/claim"))
    ok(complete(a, draft.id, REPORT))
    ok(complete(b, the_task(app, case_id, "report_level2").id, APPROVE))
    l3 = the_task(app, case_id, "review_level3")
    for signer in (a, b):
        assert l3.id not in task_ids(signer, "group")
        refused(complete(signer, l3.id, APPROVE), 403, "not_candidate")
    refused(complete(team.l2, l3.id, APPROVE), 404)  # holds only report_l2: not a candidate at level 3
    ok(complete(team.l3, l3.id, APPROVE))
    rep = report_row(app, case_id)
    assert rep.status == "released"
    assert (rep.author_l1_id, rep.author_l2_id, rep.reviewer_l3_id) == (a.user.id, b.user.id, team.l3.user.id)


def test_ac06_rework_at_level_two_cannot_be_handed_to_the_author(app: Flask) -> None:
    team = Team(app)
    dual = as_user(app, "report_l1", "report_l2")
    case_id = new_case(team.req)["id"]
    draft = the_task(app, case_id)
    ok(dual.post(f"/api/tasks/{draft.id}/claim"))
    ok(complete(dual, draft.id, REPORT))
    ok(complete(team.l2, the_task(app, case_id).id, APPROVE))
    ok(complete(team.l3, the_task(app, case_id).id, {"decision": "reject", "reject_reason": "请补充结论"}))
    rework = the_task(app, case_id, "report_level2")
    assert rework.assignee_id == team.l2.user.id
    refused(
        team.l2.post(f"/api/tasks/{rework.id}/consult", json={"user_id": dual.user.id}), 403, "separation_of_duties"
    )
    refused(complete(dual, rework.id, APPROVE), 403)
    assert the_task(app, case_id).assignee_id == team.l2.user.id


# --- AC-02: visibility of cases, reports, revisions and diagrams ----------------------------------------------


def _released_case(app: Flask, team: Team) -> tuple[int, int]:
    case_id = new_case(team.req)["id"]
    ok(complete(team.l3, team.to_level(case_id, "review_level3").id, APPROVE))
    return case_id, report_row(app, case_id).id


def test_ac02_another_hospital_gets_404_and_one_alert_per_object(app: Flask) -> None:
    team = Team(app)
    case_id, rid = _released_case(app, team)
    stranger = as_user(app, "requester", institution_code="M02")
    calls = [
        ("get", f"/api/cases/{case_id}"),
        ("get", f"/api/cases/{case_id}/diagram"),
        ("get", f"/api/reports/{rid}/revisions"),
        ("post", f"/api/reports/{rid}/print"),
    ]
    for method, url in calls:
        before = len(alerts(app, stranger.user.id))
        refused(getattr(stranger, method)(url), 404, "not_found")
        assert alerts(app, stranger.user.id)[before:] == [("case", str(case_id))], url
    assert case_id not in [c["id"] for c in ok(stranger.get("/api/cases"))["items"]]
    assert ok(stranger.get(f"/api/cases?q={case_of(team.req, case_id)['case_no']}"))["total"] == 0
    assert report_row(app, case_id).print_count == 0
    for method, url in calls:  # the requesting hospital itself may, except read the revisions (UX.md R25)
        if url.endswith("/revisions"):
            refused(team.req.get(url), 404, "not_found")
        else:
            ok(getattr(team.req, method)(url))


def test_ac02_a_central_doctor_without_a_task_on_the_case_gets_404(app: Flask) -> None:
    team = Team(app)
    bystander = as_user(app, "report_l1")
    case_id = new_case(team.req)["id"]
    task = the_task(app, case_id)
    ok(bystander.get(f"/api/cases/{case_id}"))  # while it sits in the pool, every 初级报告医生 may look
    ok(team.l1.post(f"/api/tasks/{task.id}/claim"))
    rid = report_row(app, case_id).id
    for url in (
        f"/api/cases/{case_id}",
        f"/api/cases/{case_id}/diagram",
        f"/api/reports/{rid}/revisions",
        f"/api/tasks/{task.id}/form",
    ):
        refused(bystander.get(url), 404)
    refused(bystander.post(f"/api/reports/{rid}/lock"), 404)
    assert case_id not in [c["id"] for c in ok(bystander.get("/api/cases"))["items"]]
    assert len(alerts(app, bystander.user.id)) == 5  # one per refused request


def test_ac02_the_requesting_hospital_never_sees_a_report_before_release(app: Flask) -> None:
    team = Team(app)
    case_id = new_case(team.req)["id"]
    rid = report_row(app, case_id).id
    for level in ("draft_report", "report_level2", "review_level3"):
        detail = case_of(team.req, case_id)
        assert detail["report"] is None
        assert detail["report_status"] in ("draft", "preliminary", "pending_review")
        refused(team.req.get(f"/api/reports/{rid}/revisions"), 404)
        task = the_task(app, case_id, level)
        doctor = {"draft_report": team.l1, "report_level2": team.l2, "review_level3": team.l3}[level]
        if level == "draft_report":
            ok(doctor.post(f"/api/tasks/{task.id}/claim"))
            ok(complete(doctor, task.id, REPORT))
        else:
            ok(complete(doctor, task.id, APPROVE))
    report = case_of(team.req, case_id)["report"]
    assert report["status"] == "released"
    assert report["current"]["findings"] == REPORT["findings"]


@pytest.mark.parametrize("role", ["sys_admin", "sec_admin", "audit_admin"])
def test_ac03_administrators_get_403_on_every_clinical_endpoint(app: Flask, role: str) -> None:
    team = Team(app)
    case_id, rid = _released_case(app, team)
    admin = as_user(app, role)
    ids = {"case_id": case_id, "report_id": rid, "task_id": 1, "deployment_id": 1, "instance_id": 1}
    checked = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(CLINICAL_PREFIXES):
            continue
        url = rule.rule
        for name, value in ids.items():
            url = url.replace(f"<int:{name}>", str(value))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            r = admin.client.open(url, method=method, json=None if method == "GET" else {}, headers=_csrf(admin))
            assert r.status_code == 403, (method, url, r.get_json())
            body = r.get_json()
            assert set(body) == {"code", "message", "details"}  # no clinical data in the refusal
            checked.append(f"{method} {url}")
    assert len(checked) >= 20
    assert not alerts(app, admin.user.id)


def _csrf(sess: Session) -> dict[str, str]:
    return {"X-CSRF-Token": sess.csrf}


# --- AC-04: strict request schemas ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"status": "completed"},
        {"requesting_institution_id": 1},
        {"patient": {"patient_no": "X1", "name": "张三", "sex": "M", "institution_id": 1}},
        {"exams": [{"modality": "DX", "body_part": "胸部", "exam_item": "胸片", "status": "released"}]},
    ],
)
def test_ac04_case_creation_refuses_unknown_fields(app: Flask, extra: dict[str, Any]) -> None:
    req = as_user(app, "requester", institution_code="M01")
    before = case_count(app)
    body = refused(req.post("/api/cases", json=case_body(**extra)), 400)
    assert body["details"]["fields"]
    assert case_count(app) == before


def test_ac04_nested_field_errors_are_dotted_and_chinese(app: Flask) -> None:
    """The case form marks the field under its dotted name (patient.name, exams.0.modality)."""
    req = as_user(app, "requester", institution_code="M01")
    body = case_body(patient={"patient_no": "X1", "sex": "M"}, exams=[{"body_part": "胸部", "exam_item": "胸片"}])
    fields = refused(req.post("/api/cases", json=body), 400)["details"]["fields"]
    assert fields["patient.name"] == ["必填项"]
    assert fields["exams.0.modality"] == ["必填项"]


def test_ac04_task_completion_refuses_unknown_fields_and_extra_form_properties(app: Flask) -> None:
    team = Team(app)
    case_id = new_case(team.req)["id"]
    task = the_task(app, case_id)
    ok(team.l1.post(f"/api/tasks/{task.id}/claim"))
    url = f"/api/tasks/{task.id}/complete"
    refused(team.l1.post(url, json={"data": REPORT, "assignee_id": team.l2.user.id}), 400, "validation_error")
    for extra in ({"signed_by": team.l3.user.id}, {"decision": "approve"}, {"status": "released"}):
        body = refused(complete(team.l1, task.id, {**REPORT, **extra}), 400, "form_invalid")
        assert any("Additional properties" in e["message"] for e in body["details"]["errors"])
    refused(complete(team.l1, task.id, {**REPORT, "positive": "可疑"}), 400, "form_invalid")
    rep = report_row(app, case_id)
    assert (rep.status, rep.author_l1_id) == ("draft", None)
    assert the_task(app, case_id).id == task.id
    ok(complete(team.l1, task.id, REPORT))
    assert report_row(app, case_id).author_l1_id == team.l1.user.id


def test_ac04_manual_assignment_form_is_strict_too(app: Flask) -> None:
    team = Team(app, "M05")
    dispatcher = as_user(app, "dispatcher")
    task = the_task(app, new_case(team.req)["id"], "assign_case")
    refused(complete(dispatcher, task.id, {"assignee_id": team.l1.user.id, "role": "report_l3"}), 400, "form_invalid")
    refused(complete(dispatcher, task.id, {"assignee_id": "1; DROP TABLE"}), 400, "form_invalid")
    assert the_task(app, task.case_id).id == task.id
