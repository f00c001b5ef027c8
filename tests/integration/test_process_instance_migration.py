"""Migration 0009 (issue 14): a database of the previous schema (revision 0008) holding remote-diagnosis cases with
open tasks, a waiting timer and an open incident upgrades to process instances, and the cases go on working.

The 0008 database is made by running cases on the current code and downgrading to 0008 (the old columns are
checked directly below), so the cases hold real SpiffWorkflow state, not hand-written JSON.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.pool import NullPool

from alembic import command
from engine import uow
from engine.cases.models import Case
from engine.workflow import instances, service_tasks
from engine.workflow.models import HumanTask, Incident, ProcessInstance, WorkflowTimer
from telerad.cli import alembic_config
from tests.api.test_cases_flow import APPROVE, Team, case_of, complete, new_case, ok, report_row, task_ids
from tests.conftest import BACKEND, PG_HOST, PG_PORT, PG_USER, _pg_admin_exec, _seed, make_settings
from tests.factories import as_user, login
from tests.integration.test_migrations import schema_diff


@pytest.fixture
def fresh_url(tmp_path: Path) -> Iterator[str]:
    if BACKEND == "postgresql":
        name = f"telerad_pimig_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _pg_admin_exec(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
        _pg_admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        yield f"sqlite:///{tmp_path / 'mig.db'}"


def _app(url: str, instance: Path) -> Flask:
    from api.app import create_app

    return create_app(make_settings(url, instance))


def _close(app: Flask) -> None:
    from api.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    eng = create_engine(url, poolclass=NullPool)
    try:
        with eng.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        eng.dispose()


def _engine_rows(app: Flask) -> dict[str, Any]:
    """What the engine keeps per case: open tasks, timers, incidents, state (by case id)."""
    with app.app_context():
        s = uow.session()
        out: dict[str, Any] = {"tasks": {}, "timers": {}, "incidents": {}, "state": {}}
        for case in s.execute(select(Case)).unique().scalars():
            pi = case.process
            out["state"][case.id] = pi.state
            out["tasks"][case.id] = sorted(
                (t.task_guid, t.task_name, t.assignee_id)
                for t in s.execute(
                    select(HumanTask).where(
                        HumanTask.process_instance_id == pi.id,
                        HumanTask.case_id == case.id,
                        HumanTask.completed_at.is_(None),
                    )
                ).scalars()
            )
            out["timers"][case.id] = sorted(
                (t.task_guid, t.due_at)
                for t in s.execute(select(WorkflowTimer).where(WorkflowTimer.process_instance_id == pi.id)).scalars()
            )
            out["incidents"][case.id] = sorted(
                (i.task_name, i.resolved_at is None)
                for i in s.execute(select(Incident).where(Incident.process_instance_id == pi.id)).scalars()
            )
        return out


def test_0009_moves_running_cases_with_tasks_timers_and_incidents(
    fresh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = alembic_config(fresh_url)
    command.upgrade(cfg, "head")
    _seed(fresh_url, tmp_path / "seed")
    app = _app(fresh_url, tmp_path / "one")
    team = Team(app)
    waiting = new_case(team.req, emergency=True)["id"]  # in the pool, its 30-minute report time limit waiting
    claimed = new_case(team.req)["id"]
    at_l2 = team.to_level(claimed, "report_level2")  # claimed, drafted and signed by l1: level 2 is open
    failing = new_case(team.req)["id"]
    l3 = team.to_level(failing, "review_level3")
    real = service_tasks._HANDLERS["reports.publish"]
    monkeypatch.setitem(service_tasks._HANDLERS, "reports.publish", lambda p, d: 1 / 0)
    assert ok(complete(team.l3, l3.id, APPROVE))["case"]["status"] == "incident"
    monkeypatch.setitem(service_tasks._HANDLERS, "reports.publish", real)
    before = _engine_rows(app)
    assert before["timers"][waiting]
    assert before["incidents"][failing] == [("publish_report", True)]
    _close(app)

    command.downgrade(cfg, "0008")
    eng = create_engine(fresh_url, poolclass=NullPool)
    names = set(inspect(eng).get_table_names())
    columns = {c["name"] for c in inspect(eng).get_columns("remote_case")}
    eng.dispose()
    assert "process_instance" not in names
    assert {"deployment_id", "workflow_state", "state_version"} <= columns
    assert "process_instance_id" not in columns
    # The previous schema: state on the case, every engine row pointing at remote_case.id.
    old_tasks = _rows(fresh_url, "SELECT case_id, task_guid FROM human_task WHERE completed_at IS NULL")
    assert sorted(old_tasks) == sorted((cid, g) for cid, rows in before["tasks"].items() for g, _n, _a in rows)
    assert sorted(r[0] for r in _rows(fresh_url, "SELECT case_id FROM workflow_timer")) == sorted(
        cid for cid, rows in before["timers"].items() for _ in rows
    )
    assert _rows(fresh_url, "SELECT case_id, task_name FROM incident") == [(failing, "publish_report")]
    assert dict(_rows(fresh_url, "SELECT id, status FROM remote_case"))[failing] == "incident"

    command.upgrade(cfg, "head")
    assert schema_diff(fresh_url) == []
    app = _app(fresh_url, tmp_path / "two")
    after = _engine_rows(app)
    assert after == before  # the same open tasks, timers, incidents and state, hanging off process instances
    with app.app_context():
        s = uow.session()
        for case in s.execute(select(Case)).unique().scalars():
            pi = s.get(ProcessInstance, case.process_instance_id)
            assert pi is not None
            assert (pi.subject_type, pi.subject_id, pi.process_id) == ("case", case.id, "remote_diagnosis")
            assert (pi.serializer_version, pi.status) == (1, case.status)
            assert pi.institution_id == case.requesting_institution_id
        (timer,) = s.execute(select(WorkflowTimer)).scalars()
        assert instances.due_timer_instances(timer.due_at) == [s.get(Case, waiting).process_instance_id]  # type: ignore[union-attr]

    # Everything still works on the migrated rows: lists, claim, complete, retry — and new cases.
    team.app = app
    for sess in (team.req, team.l1, team.l2, team.l3):  # the same users, logged in to the new app
        sess.client = app.test_client()
        sess.csrf = login(sess.client, sess.user)
    pool_task = next(t for t in before["tasks"][waiting])
    with app.app_context():
        waiting_task = uow.session().execute(select(HumanTask).where(HumanTask.task_guid == pool_task[0])).scalar_one()
    assert waiting_task.id in task_ids(team.l1, "pool")
    assert at_l2.id in task_ids(team.l2, "group")
    ok(complete(team.l2, at_l2.id, APPROVE))
    team.to_level(waiting, "review_level3")
    dispatcher = as_user(app, "dispatcher")
    detail = ok(dispatcher.post(f"/api/cases/{failing}/retry"))
    assert (detail["status"], detail["incident"]) == ("completed", None)
    assert report_row(app, failing).status == "released"
    assert case_of(team.l3, claimed)["current_tasks"][0]["task_name"] == "review_level3"
    fresh = new_case(team.req)["id"]  # the process_instance id sequence continues past the copied ids
    team.to_level(fresh, "report_level2")
    with app.app_context():
        ids = uow.session().execute(select(Case.process_instance_id)).scalars().all()
        assert len(set(ids)) == 4
    _close(app)
