"""Issue 17 §1, reports as their own wing: the report review (engine/reports/review.py) plugs into the case engine
through engine/cases/hooks.py at app start, the report routes are their own blueprint under the same URLs, and the
case engine runs without the report wing registered (it never imports it: import-linter ``cases-not-reports``)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from engine import uow
from engine.cases import completion, hooks, queries
from engine.cases.models import Case
from engine.reports import review
from engine.reports.models import LEVELS, Report
from engine.workflow import service_tasks
from engine.workflow.models import HumanTask
from tests.api.test_cases_flow import REPORT, Team, actor_of, case_of, new_case, ok, the_task

# Every report route with its method and endpoint (web/src/api/reports.ts calls the first five; tests call all):
# the URLs did not move with the code.
REPORT_ROUTES = {
    ("/api/reports/<int:report_id>/lock", "POST"): "reports.lock_report",
    ("/api/reports/<int:report_id>/unlock", "POST"): "reports.unlock_report",
    ("/api/reports/<int:report_id>/draft", "PUT"): "reports.save_draft",
    ("/api/reports/<int:report_id>/revisions", "GET"): "reports.revisions",
    ("/api/reports/<int:report_id>/print", "POST"): "reports.print_report",
    ("/api/cases/<int:case_id>/correct", "POST"): "reports.correct",
}


def test_the_report_wing_is_registered_after_create_app(app: Flask) -> None:
    for name in LEVELS:
        owner = hooks.step_owner(name)
        assert owner is not None, name
        assert {f.__module__ for f in (owner.assign, owner.complete, owner.form)} == {"engine.reports.review"}
    assert hooks.step_owner("assign_case") is None  # the dispatcher's step stays the case engine's own
    assert service_tasks._HANDLERS["reports.publish"] is review.publish
    assert service_tasks._HANDLERS["cases.escalate"] is completion.escalate
    routes = {
        (rule.rule, method): rule.endpoint
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if rule.endpoint.startswith("reports.")
    }
    assert {k: v for k, v in routes.items() if k[1] not in ("HEAD", "OPTIONS")} == REPORT_ROUTES


def test_a_step_has_one_owner() -> None:
    owner = hooks.step_owner("draft_report")
    assert owner is not None
    hooks.register_steps(["draft_report"], owner)  # the same owner again (a second import): no change
    other = hooks.StepOwner(assign=owner.assign, complete=owner.complete, form=lambda case, task: ({}, None))
    with pytest.raises(ValueError, match="draft_report"):
        hooks.register_steps(["draft_report"], other)
    assert hooks.step_owner("draft_report") is owner


def test_report_rows_and_first_report_come_from_the_wing(app: Flask) -> None:
    team = Team(app)
    case_id = new_case(team.req)["id"]
    item = next(x for x in ok(team.req.get("/api/cases?page_size=100"))["items"] if x["id"] == case_id)
    assert (item["report_status"], item["printed"]) == ("draft", False)
    assert case_of(team.l1, case_id)["report"]["status"] == "draft"


def test_cases_run_without_the_report_wing(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing registered a case is still created, dispatched by lane and completed step by step; it just
    has no report (the report steps are plain form steps, offered to their lane's role)."""
    team = Team(app)
    for registry in ("_STEPS", "_CASE_CREATED", "_ROW_FIELDS"):
        monkeypatch.setattr(hooks, registry, {})
    case_id = new_case(team.req)["id"]
    task = the_task(app, case_id, "draft_report")
    assert (task.role_code, task.in_pool, task.assignee_id) == ("report_l1", False, None)
    with app.app_context():
        s = uow.session()
        assert s.execute(select(func.count()).select_from(Report).where(Report.case_id == case_id)).scalar() == 0
        case = s.get(Case, case_id)
        assert case is not None
        (row,) = queries.case_rows([case])
        assert "report_status" not in row
        assert row["current_tasks"][0]["task_name"] == "draft_report"
        form: dict[str, Any] = completion.task_form(actor_of(team.l1.user.id), task.id)
        assert (form["data"], form["report"]) == ({}, None)
        with uow.unit_of_work():
            completion.complete_task(actor_of(team.l1.user.id), task.id, REPORT)
        done = s.get(HumanTask, task.id)
        assert done is not None
        assert done.outcome == "completed"
    assert the_task(app, case_id, "report_level2").role_code == "report_l2"
    assert case_of(team.l1, case_id)["report"] is None
