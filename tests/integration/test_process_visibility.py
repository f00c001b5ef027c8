"""Visibility of process instances and their tasks per process kind (engine/visibility.py process_rule, issue 14).

The remote-diagnosis kind keeps the Case rule exactly; a kind registered with its own rule (here a probe kind
whose instances belong to one institution) decides alone who sees its instances and its tasks (no case).
"""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import ColumnElement, select

from engine import uow, visibility
from engine.actor import Actor
from engine.audit import AuditEvent
from engine.cases import queries
from engine.cases.models import Case
from engine.errors import NotFound
from engine.workflow import runner, specs
from engine.workflow.models import HumanTask, ProcessInstance
from tests.api.test_cases_flow import Team, actor_of, new_case, the_task
from tests.factories import as_user, institution

PROBE = "probe_kind"


@pytest.fixture
def probe_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second process kind whose instances are seen by their own institution only."""
    monkeypatch.setattr(visibility, "_PROCESS_RULES", dict(visibility._PROCESS_RULES))

    @visibility.process_rule(PROBE)
    def _probe(actor: Actor) -> ColumnElement[bool]:
        return ProcessInstance.institution_id == actor.institution_id


def _probe_task(app: Flask, institution_code: str) -> tuple[int, int]:
    """A probe instance at `institution_code` with one open task (no case), written as the runner writes them."""
    inst_id = institution(app, institution_code).id
    with app.app_context(), uow.unit_of_work():
        dep = specs.latest("remote_diagnosis")  # any deployment: the kind is what the rule looks at
        pi = runner.create_instance(dep, institution_id=inst_id, subject_type="probe", subject_id=1)
        pi.process_id = PROBE
        row = HumanTask(
            process_instance_id=pi.id,
            task_guid=f"00000000-0000-0000-0000-{pi.id:012d}",
            task_name="probe_step",
            title="探查步骤",
            role_code="report_l1",
        )
        uow.session().add(row)
        uow.session().flush()
        return pi.id, row.id


def _visible(app: Flask, user_id: int, model: type, object_id: int) -> bool:
    with app.app_context(), uow.unit_of_work():
        try:
            visibility.get_visible(actor_of(user_id), model, object_id)
        except NotFound:
            return False
        return True


def test_remote_diagnosis_instances_follow_the_case_rule(app: Flask) -> None:
    team = Team(app)
    stranger = as_user(app, "requester", institution_code="M02")
    case_id = new_case(team.req)["id"]
    with app.app_context():
        pi_id = uow.session().get(Case, case_id).process_instance_id  # type: ignore[union-attr]
    task_id = the_task(app, case_id).id
    assert _visible(app, team.req.user.id, ProcessInstance, pi_id)
    assert _visible(app, team.l1.user.id, ProcessInstance, pi_id)  # in the pool: every 初级报告医生 may look
    assert _visible(app, team.l1.user.id, HumanTask, task_id)
    assert not _visible(app, stranger.user.id, ProcessInstance, pi_id)
    with app.app_context():
        alerts = uow.session().execute(
            select(AuditEvent.object_type, AuditEvent.object_id).where(
                AuditEvent.event_type == "security_alert", AuditEvent.user_id == stranger.user.id
            )
        )
        assert ("process_instance", str(pi_id)) in [tuple(a) for a in alerts]


@pytest.mark.usefixtures("probe_rule")
def test_a_registered_kind_decides_alone_who_sees_its_instances_and_tasks(app: Flask) -> None:
    team = Team(app)
    dispatcher = as_user(app, "dispatcher")
    case_id = new_case(team.req)["id"]
    case_task = the_task(app, case_id).id
    m02 = as_user(app, "requester", institution_code="M02")
    central_pi, central_task = _probe_task(app, "CENTRAL")
    member_pi, member_task = _probe_task(app, "M02")
    assert _visible(app, team.l1.user.id, ProcessInstance, central_pi)
    assert _visible(app, team.l1.user.id, HumanTask, central_task)
    assert not _visible(app, team.req.user.id, ProcessInstance, central_pi)  # M01: not its institution
    assert _visible(app, m02.user.id, ProcessInstance, member_pi)
    assert not _visible(app, team.req.user.id, ProcessInstance, member_pi)  # M01 does not see M02's instance
    assert not _visible(app, team.l1.user.id, ProcessInstance, member_pi)  # nor does the central doctor
    assert not _visible(app, team.l1.user.id, HumanTask, member_task)  # the role fits, the kind's rule does not
    with app.app_context(), uow.unit_of_work():
        doctor = actor_of(team.l1.user.id)
        # 组内任务 skips the per-row rule (scoped_tasks) and 全部 goes through it: either way only the kind's rule
        # lets a task of another kind in (the case task sits in the pool, so it is in 全部, not in 组内任务).
        for scope, expected in (("group", {central_task}), ("all", {case_task, central_task})):
            ids = set(
                uow.session().execute(queries.task_query(doctor, scope).with_only_columns(HumanTask.id)).scalars()
            )
            assert expected <= ids, scope
            assert member_task not in ids, scope
    with app.app_context(), uow.unit_of_work():
        stmt = visibility.scoped(actor_of(dispatcher.user.id), HumanTask).with_only_columns(HumanTask.id)
        listed = set(uow.session().execute(stmt).scalars())
    assert {case_task, central_task} <= listed  # the case rule for case tasks, the kind's rule for the others
    assert member_task not in listed
