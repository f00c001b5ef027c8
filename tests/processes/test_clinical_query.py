"""The second process kind, 临床资料补充, end to end through the HTTP API on a real database (issue 14, "Any
process": a new process is its BPMN, forms, service operations and visibility rule — no engine change).

A central doctor working on a case asks; only the case's requesting institution's registrars/requesters
(clinical_query.answer) see and take the answer task; the doctor reads the answer on the case; the due-time timer
fires once; a failing service task is an incident that the generic retry endpoint resumes. Runs on SQLite and
PostgreSQL (tests/processes is in POSTGRESQL_PATHS).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from engine import uow
from engine.cases import clinical_queries
from engine.cases.models import CaseEvent
from engine.workflow.models import HumanTask, Incident, ProcessInstance
from telerad import jobs
from tests.api.test_cases_flow import Team, case_of, new_case, ok, refused, task_ids
from tests.factories import Session, as_user, audit_count

QUESTION = "请补充患者既往胸部手术史及近期血常规结果。"


def _start(team: Team, **over: Any) -> tuple[int, dict[str, Any]]:
    case = new_case(team.req, modality="CT")  # routine CT: a 4-working-hour report limit (UX.md R3)
    task = team.to_level(case["id"], "draft_report")
    ok(team.l1.post(f"/api/tasks/{task.id}/claim"))
    body = {"question": QUESTION, **over}
    query = ok(team.l1.post(f"/api/cases/{case['id']}/clinical-queries", json=body), 201)
    return case["id"], query


def _open(sess: Session) -> list[dict[str, Any]]:
    return ok(sess.get("/api/process-tasks?scope=open"))["items"]  # type: ignore[no-any-return]


def _queries(sess: Session, case_id: int) -> list[dict[str, Any]]:
    return ok(sess.get(f"/api/cases/{case_id}/clinical-queries"))  # type: ignore[no-any-return]


def _events(app: Flask, case_id: int, name: str) -> list[dict[str, Any]]:
    with app.app_context():
        rows = uow.session().execute(
            select(CaseEvent.details).where(CaseEvent.case_id == case_id, CaseEvent.event == name)
        )
        return [dict(d or {}) for d in rows.scalars()]


def test_the_member_hospital_answers_and_the_doctor_reads_it(app: Flask) -> None:
    team = Team(app)
    case_id, query = _start(team)
    assert (query["status"], query["status_name"], query["question"]) == ("waiting", "待答复", QUESTION)
    case_no = case_of(team.req, case_id)["case_no"]
    assert audit_count(app, "clinical_query_started") == 1
    # The case's requester is notified (临床资料不全), with a link to the case where it is answered.
    (note,) = team.req.get("/api/notifications").get_json()["items"]
    assert (note["kind_name"], note["link"]) == ("临床资料不全", f"/cases/{case_id}")
    assert case_no in note["text"]
    assert "需要补充临床资料" in note["text"]

    # Only a doctor working on the case asks; the case's requester cannot (no task.claim).
    refused(team.l2.post(f"/api/cases/{case_id}/clinical-queries", json={"question": "x"}), 404)
    refused(team.req.post(f"/api/cases/{case_id}/clinical-queries", json={"question": "x"}), 403, "forbidden")

    registrar = as_user(app, "registrar", institution_code="M01")
    other_member = as_user(app, "registrar", institution_code="M02")
    third = as_user(app, "requester", institution_code="M03")

    (row,) = _open(registrar)
    assert (row["process_id"], row["process_name"], row["subject"], row["case_no"]) == (
        "clinical_query",
        "临床资料补充",
        case_no,
        case_no,
    )
    assert row["title"] == "答复临床资料补充"
    task_id = row["id"]
    # The requesting hospital's requester is a candidate too; other hospitals see nothing and get 404.
    assert [r["id"] for r in _open(team.req)] == [task_id]
    for stranger in (other_member, third):
        assert _open(stranger) == []
        assert ok(stranger.get("/api/process-tasks?scope=mine"))["items"] == []
        refused(stranger.get(f"/api/process-tasks/{task_id}/form"), 404)
        refused(stranger.post(f"/api/process-tasks/{task_id}/claim"), 404)
        refused(stranger.get(f"/api/cases/{case_id}/clinical-queries"), 404)
    # Member users still have no remote-diagnosis task lists (task.read stays central-only).
    refused(registrar.get("/api/tasks?scope=mine"), 403, "forbidden")
    # The central doctors' lists are unchanged: the query's task is not theirs to take.
    assert task_id not in task_ids(team.l1, "group") + task_ids(team.l1, "mine")
    # The answer task is the requesting hospital's: a dispatcher's 全部 list does not carry it, nor can they assign it.
    dispatcher = as_user(app, "dispatcher")
    assert task_id not in task_ids(dispatcher, "all")
    refused(dispatcher.post(f"/api/tasks/{task_id}/assign", json={"user_id": team.l1.user.id}), 404)

    claimed = ok(registrar.post(f"/api/process-tasks/{task_id}/claim"))
    assert claimed["assignee"]["id"] == registrar.user.id
    refused(team.req.post(f"/api/process-tasks/{task_id}/claim"), 409, "already_claimed")
    assert _open(team.req) == []
    assert [r["id"] for r in ok(registrar.get("/api/process-tasks?scope=mine"))["items"]] == [task_id]

    form = ok(registrar.get(f"/api/process-tasks/{task_id}/form"))
    assert form["data"] == {"question": QUESTION}
    assert form["schema"]["properties"]["answer"]["title"] == "答复内容"
    body = refused(registrar.post(f"/api/process-tasks/{task_id}/complete", json={"data": {"question": QUESTION}}), 400)
    assert body["code"] == "form_invalid"
    refused(team.req.post(f"/api/process-tasks/{task_id}/complete", json={"data": {"answer": "x"}}), 403)
    refused(team.l1.post(f"/api/tasks/{task_id}/complete", json={"data": {"answer": "x"}}), 404)  # not the doctor's

    answer = "2019年行右肺上叶切除术；血常规（2026-12-01）白细胞 6.2×10⁹/L。"
    done = ok(
        registrar.post(
            f"/api/process-tasks/{task_id}/complete", json={"data": {"question": QUESTION, "answer": answer}}
        )
    )
    assert done["process"]["status"] == "completed"
    (seen,) = _queries(team.l1, case_id)
    assert (seen["status"], seen["status_name"], seen["answer"], seen["unavailable"]) == (
        "answered",
        "已答复",
        answer,
        False,
    )
    assert _queries(team.req, case_id) == [seen]
    history = {e["event"]: e for e in case_of(team.l1, case_id)["history"]}
    assert history["clinical_query_asked"]["event_name"] == "发起临床资料补充"
    # Details are codes (the SPA labels them: web/src/utils/caseHistory.ts); the query's id ties them together.
    assert history["clinical_query_asked"]["details"] == {
        "query": query["id"],
        "question": QUESTION,
        "due": "PT24H",
        "request_images": False,
    }
    assert history["clinical_query_answered"]["details"] == {
        "query": query["id"],
        "answer": answer,
        "unavailable": False,
        "reason": "",
    }
    assert _open(registrar) == []
    assert ok(registrar.get("/api/process-tasks?scope=mine"))["items"] == []
    # The remote-diagnosis case goes on as before: the doctor still holds the draft task.
    assert case_of(team.l1, case_id)["status"] == "open"


def test_cannot_provide_needs_a_reason(app: Flask) -> None:
    team = Team(app)
    case_id, _ = _start(team)
    (row,) = _open(team.req)
    ok(team.req.post(f"/api/process-tasks/{row['id']}/claim"))
    url = f"/api/process-tasks/{row['id']}/complete"
    refused(team.req.post(url, json={"data": {"unavailable": True}}), 400, "form_invalid")
    ok(team.req.post(url, json={"data": {"unavailable": True, "reason": "患者未在本院做过血常规"}}))
    (seen,) = _queries(team.l1, case_id)
    assert (seen["status_name"], seen["unavailable"], seen["reason"]) == ("无法提供", True, "患者未在本院做过血常规")


def test_release_returns_the_task_to_the_candidates(app: Flask) -> None:
    team = Team(app)
    case_id, _ = _start(team)
    registrar = as_user(app, "registrar", institution_code="M01")
    (row,) = _open(registrar)
    ok(registrar.post(f"/api/process-tasks/{row['id']}/claim"))
    refused(team.req.post(f"/api/process-tasks/{row['id']}/release"), 409, "not_holder")
    ok(registrar.post(f"/api/process-tasks/{row['id']}/release"))
    assert [r["id"] for r in _open(team.req)] == [row["id"]]
    events = [e["event"] for e in case_of(team.l1, case_id)["history"]]
    assert "released_claim" in events


def test_the_due_time_timer_fires_once(app: Flask) -> None:
    team = Team(app)
    case_id, query = _start(team, due="PT1H")
    start = datetime.now(UTC)
    with time_machine.travel(start + timedelta(minutes=30), tick=False), app.app_context():
        assert jobs.fire_timers() == 0
    assert _queries(team.l1, case_id)[0]["status"] == "waiting"
    with time_machine.travel(start + timedelta(hours=2), tick=False), app.app_context():
        assert jobs.fire_timers() == 1
        assert jobs.fire_timers() == 0  # the next run of the job (or another worker after a restart) fires nothing
    # Not a cycle: the reminder runs once (before the case's own report limit of 4 working hours, which would fire).
    with time_machine.travel(start + timedelta(hours=3, minutes=50), tick=False), app.app_context():
        assert jobs.fire_timers() == 0
    assert len(_events(app, case_id, "clinical_query_overdue")) == 1
    (seen,) = _queries(team.l1, case_id)
    assert (seen["status"], seen["status_name"], seen["overdue"]) == ("overdue", "已超时", True)
    # The requester, who was asked, is reminded once (超时提醒), with a link to the case.
    notes = team.req.get("/api/notifications").get_json()["items"]
    (late,) = [n for n in notes if n["kind"] == "overdue"]
    assert (late["kind_name"], late["link"]) == ("超时提醒", f"/cases/{case_id}")
    assert "已超过答复时限" in late["text"]
    # Still answerable after the reminder; then the instance completes.
    (row,) = _open(team.req)
    ok(team.req.post(f"/api/process-tasks/{row['id']}/complete", json={"data": {"answer": "无手术史"}}))
    (seen,) = _queries(team.l1, case_id)
    assert (seen["status"], seen["overdue"]) == ("answered", True)
    with app.app_context():
        pi = uow.session().get(ProcessInstance, query["id"])
        assert pi is not None
        assert pi.status == "completed"


def test_a_failed_recording_is_an_incident_until_retried(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    team = Team(app)
    case_id, query = _start(team)
    monkeypatch.setattr(clinical_queries, "FAIL_RECORDING_FOR_TESTS", True)
    (row,) = _open(team.req)
    done = ok(team.req.post(f"/api/process-tasks/{row['id']}/complete", json={"data": {"answer": "有高血压病史"}}))
    assert done["process"]["status"] == "incident"
    assert _queries(team.l1, case_id)[0]["status_name"] == "流程异常"
    retry = f"/api/processes/instances/{query['id']}/retry"
    refused(team.req.post(retry), 403, "forbidden")  # retry is the dispatcher's (task.assign), as for cases
    dispatcher = as_user(app, "dispatcher")
    assert ok(dispatcher.post(retry))["status"] == "incident"  # the fault persists: still an incident
    monkeypatch.setattr(clinical_queries, "FAIL_RECORDING_FOR_TESTS", False)
    assert ok(dispatcher.post(retry))["status"] == "completed"
    refused(dispatcher.post(retry), 409, "no_incident")
    (seen,) = _queries(team.l1, case_id)
    assert (seen["status"], seen["answer"]) == ("answered", "有高血压病史")
    assert len(_events(app, case_id, "clinical_query_answered")) == 1
    with app.app_context():
        incidents = list(
            uow.session().execute(select(Incident).where(Incident.process_instance_id == query["id"])).scalars()
        )
        assert incidents
        assert all(i.resolved_at is not None for i in incidents)
        open_rows = uow.session().execute(
            select(HumanTask.id).where(HumanTask.process_instance_id == query["id"], HumanTask.completed_at.is_(None))
        )
        assert list(open_rows) == []
    assert audit_count(app, "incident_retried") == 2
    # The generic endpoint retries through visibility: a member user gets the guard's 403, an unknown id 404.
    refused(dispatcher.post("/api/processes/instances/999999/retry"), 404)


# REQ: AC-03 — the other process kinds' task lists are a function too: whoever no kind's task or candidate rule gives
# anything (the three administrators, the process administrator, central doctors and dispatchers, whose tasks are
# the remote-diagnosis lists) is refused with 403 `forbidden` and a Chinese message, audited, on every route — not
# an empty list; the answering institution's registrars and requesters keep them.
@pytest.mark.parametrize("role", ["sys_admin", "sec_admin", "audit_admin", "process_admin", "report_l1", "dispatcher"])
def test_ac03_process_task_routes_refuse_who_holds_no_process_task_function(app: Flask, role: str) -> None:
    team = Team(app)
    _start(team)
    (row,) = _open(team.req)
    outsider = as_user(app, role)
    before = audit_count(app, "permission_denied")
    calls = [
        outsider.get("/api/process-tasks?scope=mine"),
        outsider.get("/api/process-tasks?scope=open"),
        outsider.get(f"/api/process-tasks/{row['id']}/form"),
        outsider.post(f"/api/process-tasks/{row['id']}/claim"),
        outsider.post(f"/api/process-tasks/{row['id']}/release"),
        outsider.post(f"/api/process-tasks/{row['id']}/complete", json={"data": {"answer": "x"}}),
    ]
    for resp in calls:
        body = refused(resp, 403, "forbidden")
        assert body["message"] == "没有权限执行此操作"
        assert body["details"] == {"function": "process_tasks"}
    assert audit_count(app, "permission_denied") - before == len(calls)
    assert audit_count(app, "security_alert") == 0  # a function refused, not a probe of another hospital's task
    assert [r["id"] for r in _open(team.req)] == [row["id"]]  # nothing was claimed or completed
    for holder in (team.req, as_user(app, "registrar", institution_code="M02")):
        assert ok(holder.get("/api/process-tasks?scope=mine"))["items"] == []  # holders of the function: a list
