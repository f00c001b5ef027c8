"""报告时限 (UX.md R3; issue 17): the rule table, the working-hours calendar, each case's due time, the process's
timer reading that same due time, the overdue-first lists, and the rule administration API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from flask import Flask
from sqlalchemy import select

from engine import uow
from engine.accounts.models import Institution
from engine.cases import turnaround
from engine.cases.models import Case, TurnaroundRule
from engine.workflow.models import WorkflowTimer
from tests.api.test_cases_flow import new_case, ok, refused
from tests.factories import Session, as_user, audit_count

SH = turnaround.LOCAL_TZ


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)  # type: ignore[misc]


def test_r3_working_hours_skip_lunch_nights_and_weekends() -> None:
    # Friday 2026-12-11 16:30: one hour left that day, then Monday from 08:00.
    assert turnaround.add_working_minutes(local(2026, 12, 11, 16, 30), 240) == local(2026, 12, 14, 11, 0)
    # Across the lunch break: 11:00 + 2 h → 12:00, then 13:30 → 14:30.
    assert turnaround.add_working_minutes(local(2026, 12, 14, 11, 0), 120) == local(2026, 12, 14, 14, 30)
    # Requested on Saturday night or at 06:00: counted from the next working period's start.
    assert turnaround.add_working_minutes(local(2026, 12, 12, 22, 0), 60) == local(2026, 12, 14, 9, 0)
    assert turnaround.add_working_minutes(local(2026, 12, 15, 6, 0), 360) == local(2026, 12, 15, 15, 30)
    # Inside the lunch break: counted from 13:30.
    assert turnaround.add_working_minutes(local(2026, 12, 15, 12, 40), 30) == local(2026, 12, 15, 14, 0)
    assert turnaround.add_working_minutes(local(2026, 12, 15, 12, 40), 30).tzinfo == UTC


def _rule(**kw: Any) -> TurnaroundRule:
    base: dict[str, Any] = {"name": "r", "enabled": True, "working_hours": False}
    return TurnaroundRule(**(base | kw))


def test_r3_the_most_specific_rule_wins_and_ties_take_the_shorter_limit() -> None:
    rules = [
        _rule(id=1, priority="emergency", modality="CT", limit_minutes=60),
        _rule(id=2, priority="emergency", modality="CT", body_part_keyword="头", limit_minutes=30),
        _rule(id=3, priority="emergency", modality="CT", institution_id=7, limit_minutes=45),
        _rule(id=4, priority="emergency", modality="CT", institution_id=7, limit_minutes=40),
        _rule(id=5, modality="CT", limit_minutes=10, enabled=False),
        _rule(id=6, priority="routine", modality="CT", patient_class="inpatient", limit_minutes=360),
        _rule(id=7, priority="routine", modality="CT", limit_minutes=240),
    ]

    def pick(**kw: Any) -> int | None:
        args: dict[str, Any] = {"institution_id": 1, "modality": "CT", "body_part": "胸部", "emergency": True}
        return turnaround.pick(rules, **(args | kw)).rule_id

    assert pick() == 1
    assert pick(body_part="头颅") == 2
    assert pick(institution_id=7) == 4  # hospital + modality + priority, and the shorter of the two
    assert pick(emergency=False) == 7
    assert pick(emergency=False, patient_class="inpatient") == 6
    fallback = turnaround.pick(rules, institution_id=1, modality="US", body_part="肝", emergency=False)
    assert (fallback.rule_id, fallback.limit_minutes) == (None, turnaround.FALLBACK_MINUTES)


def _case_and_timer(app: Flask, case_id: int) -> tuple[Case, list[WorkflowTimer]]:
    with app.app_context():
        s = uow.session()
        case = s.get(Case, case_id)
        assert case is not None
        timers = list(
            s.execute(select(WorkflowTimer).where(WorkflowTimer.process_instance_id == case.process_instance_id))
            .scalars()
            .all()
        )
        s.expunge_all()
        return case, timers


def test_r3_each_case_gets_the_default_limits_and_the_timer_fires_at_that_same_time(app: Flask) -> None:
    registrar = as_user(app, "registrar", institution_code="M01")
    cases = {
        "emergency head CT": (new_case(registrar, modality="CT", body_part="头颅", emergency=True), 30),
        "emergency chest CT": (new_case(registrar, modality="CT", body_part="胸部", emergency=True), 60),
        "emergency DR": (new_case(registrar, modality="DR", body_part="胸部", emergency=True), 30),
        "routine DX": (new_case(registrar, modality="DX", body_part="胸部"), 120),
        "US (no rule)": (new_case(registrar, modality="US", body_part="肝胆"), 24 * 60),
    }
    for what, (body, minutes) in cases.items():
        assert body["tat_limit_minutes"] == minutes, what
        case, timers = _case_and_timer(app, body["id"])
        assert case.due_at == case.created_at + timedelta(minutes=minutes), what
        assert datetime.fromisoformat(body["due_at"]) == case.due_at, what
        # The process's 报告时限 timer is armed for the very due time the list counts down to.
        (timer,) = timers
        assert (timer.task_name, timer.due_at) == ("sla_timer", case.due_at), what

    # A routine CT counts 4 working hours: requested on a Friday at 16:00 (1.5 h that day), due on Monday at 10:30.
    with time_machine.travel(local(2026, 12, 11, 16, 0), tick=False):  # a session of that day
        ct = new_case(as_user(app, "registrar", institution_code="M01"), modality="CT", body_part="胸部")
    assert ct["tat_limit_minutes"] == 240
    assert datetime.fromisoformat(ct["due_at"]) == local(2026, 12, 14, 10, 30)


def test_r3_a_case_of_several_exams_is_due_when_its_most_urgent_exam_is(app: Flask) -> None:
    registrar = as_user(app, "registrar", institution_code="M01")
    exams = [
        {"modality": "CT", "body_part": "胸部", "exam_item": "胸部CT平扫"},
        {"modality": "CT", "body_part": "头颅", "exam_item": "头颅CT平扫"},
    ]
    body = new_case(registrar, modality="CT", emergency=True, exams=exams)
    assert body["tat_limit_minutes"] == 30


def _order(sess: Session, url: str, ids: set[int]) -> list[int]:
    return [t["case_id"] for t in ok(sess.get(url))["items"] if t["case_id"] in ids]


def test_r3_overdue_comes_first_and_the_due_sort_puts_the_most_urgent_first(app: Flask) -> None:
    registrar = as_user(app, "registrar", institution_code="M01")
    doctor = as_user(app, "report_l1")
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        routine = new_case(registrar, modality="DX", body_part="胸部")["id"]  # due in 2 h
        urgent = new_case(registrar, modality="US", body_part="肝胆", emergency=True)["id"]  # no rule: 24 h
        ids = {routine, urgent}
        # Nothing overdue: the emergency first (REC-10); by due time the routine DX (2 h) first.
        assert _order(doctor, "/api/tasks?scope=pool&page_size=100", ids) == [urgent, routine]
        assert _order(doctor, "/api/tasks?scope=pool&page_size=100&sort=due", ids) == [routine, urgent]
    with time_machine.travel(start + timedelta(hours=3), tick=False):
        doctor, registrar = as_user(app, "report_l1"), as_user(app, "registrar", institution_code="M01")  # sessions
        # The routine DX is overdue now: it comes before the emergency that still has time.
        assert _order(doctor, "/api/tasks?scope=pool&page_size=100", ids) == [routine, urgent]
        items = {t["case_id"]: t for t in ok(doctor.get("/api/tasks?scope=pool&page_size=100"))["items"]}
        assert items[routine]["tat_limit_minutes"] == 120
        assert datetime.fromisoformat(items[routine]["case_created_at"]) <= start + timedelta(seconds=1)
        cases = [c["id"] for c in ok(registrar.get("/api/cases?sort=due&page_size=100"))["items"] if c["id"] in ids]
        assert cases == [routine, urgent]
    refused(doctor.get("/api/tasks?scope=pool&sort=name"), 400)


def test_r3_rules_are_administered_with_versions_permissions_and_audit(app: Flask) -> None:
    admin = as_user(app, "process_admin")
    doctor = as_user(app, "report_l3")
    registrar = as_user(app, "registrar", institution_code="M01")
    rules = ok(admin.get("/api/turnaround-rules"))
    assert len(rules) == len(turnaround.default_rules())
    assert rules[0]["body_part_keyword"] == "头"  # the most specific rules read first
    refused(doctor.get("/api/turnaround-rules"), 403)
    refused(doctor.post("/api/turnaround-rules", json={"name": "x", "limit_minutes": 5}), 403)

    before = audit_count(app, "turnaround_rule_changed")
    # A hospital's own, shorter limit for emergency CT: applies to its new cases only.
    old = new_case(registrar, modality="CT", body_part="胸部", emergency=True)
    with app.app_context():
        m01_id = uow.session().execute(select(Institution.id).where(Institution.code == "M01")).scalar_one()
    made = ok(
        admin.post(
            "/api/turnaround-rules",
            json={
                "name": "M01 急诊 CT",
                "institution_id": m01_id,
                "modality": "CT",
                "priority": "emergency",
                "limit_minutes": 45,
            },
        ),
        201,
    )
    assert made["institution"]["code"] == "M01"
    assert made["version"] == 1
    new = new_case(registrar, modality="CT", body_part="胸部", emergency=True)
    assert (old["tat_limit_minutes"], new["tat_limit_minutes"]) == (60, 45)
    assert ok(registrar.get(f"/api/cases/{old['id']}"))["tat_limit_minutes"] == 60  # kept

    changed = ok(
        admin.put(f"/api/turnaround-rules/{made['id']}", json={**_editable(made), "limit_minutes": 50, "version": 1})
    )
    assert (changed["limit_minutes"], changed["version"]) == (50, 2)
    refused(
        admin.put(f"/api/turnaround-rules/{made['id']}", json={**_editable(made), "version": 1}), 409, "stale_version"
    )
    for bad in (
        {"name": "", "limit_minutes": 30},
        {"name": "x", "limit_minutes": 0},
        {"name": "x", "limit_minutes": 30, "priority": "urgent"},
        {"name": "x", "limit_minutes": 30, "patient_class": "vip"},
        {"name": "x", "limit_minutes": 30, "unknown": 1},
        {"name": "x", "limit_minutes": 10**12},
    ):
        body = refused(admin.post("/api/turnaround-rules", json=bad), 400)
        assert body["code"], body
        assert any("\u4e00" <= ch <= "\u9fff" for ch in body["message"]), body
    refused(
        admin.post("/api/turnaround-rules", json={"name": "x", "limit_minutes": 30, "institution_id": 999999}),
        400,
        "invalid_turnaround_rule",
    )
    assert admin.delete(f"/api/turnaround-rules/{made['id']}").status_code == 204
    refused(admin.delete(f"/api/turnaround-rules/{made['id']}"), 404, "turnaround_rule_not_found")
    assert new_case(registrar, modality="CT", body_part="胸部", emergency=True)["tat_limit_minutes"] == 60
    assert audit_count(app, "turnaround_rule_changed") == before + 3


def _editable(rule: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "name",
        "modality",
        "body_part_keyword",
        "priority",
        "patient_class",
        "limit_minutes",
        "working_hours",
        "enabled",
    )
    return {k: rule[k] for k in keep} | {"institution_id": (rule["institution"] or {}).get("id")}
