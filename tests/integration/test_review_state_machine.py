"""WF-09 / AC-06: a hypothesis state machine drives the three-level review through the engine services.

Random sequences of claim, release, lock, draft save, submit, approve, reject (with and without a reason), clock
steps past the lock lease and the report time limit, and timer firing, by a pool of doctors: three report_l1, two
report_l2, two report_l3 and one doctor holding both report_l2 and report_l3 (who tries to sign twice). Each
action is one unit of work; a DomainError is an expected refusal (its code must be one we expect). After every
step the database is checked: no released report without three distinct qualified signers, no doctor signing a
report at two levels, one open human task per task id and per case, signed revisions unchanged, no lost
revision, every rejection recorded with its reason, every completion audited, timers fired at most once.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pytest
import time_machine
from flask import Flask
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from engine import uow
from engine.accounts import auth
from engine.accounts.models import User
from engine.accounts.queries import effective_permissions
from engine.actor import Actor
from engine.audit import AuditEvent
from engine.cases import services, tasks
from engine.cases.completion import complete_task
from engine.cases.models import Case, CaseEvent, Exam, WorkGroup, WorkGroupMember, case_exam
from engine.db import utcnow
from engine.errors import DomainError
from engine.reports import queries as report_queries
from engine.reports import services as reports
from engine.reports.models import LEVELS, REPORT_FIELDS, Report, ReportRevision
from engine.workflow.models import HumanTask, WorkflowTimer
from tests.factories import make_user

# Three report_l1, two report_l2, two report_l3, and one doctor holding both report_l2 and report_l3.
POOL = (("report_l1",),) * 3 + (("report_l2",),) * 2 + (("report_l3",),) * 2 + (("report_l2", "report_l3"),)
LEVEL_ROLE = {"l1": "report_l1", "l2": "report_l2", "l3": "report_l3"}
EXPECTED_REFUSALS = set(
    "already_claimed not_candidate not_holder not_found task_not_ready separation_of_duties report_locked lock_lost "
    "form_invalid".split()
)
PATIENT = services.PatientIn("SM0001", "状态机", "F", None)
EXAMS = [services.ExamIn("DX", "胸部", "胸部正位", None)]
TEXTS = ("双肺纹理清晰，未见实变。", "右下肺见斑片影。", "心影不大，膈面光整。")
NEXT_STEP = {  # (task, decision) → the task that must be open afterwards (None: released)
    ("draft_report", "approve"): "report_level2",
    ("report_level2", "approve"): "review_level3",
    ("report_level2", "reject"): "draft_report",
    ("review_level3", "approve"): None,
    ("review_level3", "reject"): "report_level2",
}


@dataclass
class World:
    app: Flask
    registrar: Actor
    doctors: list[Actor]
    roles: dict[int, frozenset[str]]
    traveller: Any


def build_world(app: Flask, traveller: Any) -> World:
    """The users once per test function (each example then starts a fresh case)."""
    users = [make_user(app, *roles) for roles in POOL]
    registrar = make_user(app, "registrar", institution_code="M01")
    with app.app_context():
        s = uow.session()
        team = WorkGroup(code="emergency_team", name="急诊组")  # the DMN directs emergencies here
        s.add(team)
        s.flush()
        for u in users[:2]:  # two of the three report_l1 doctors
            s.add(WorkGroupMember(group_id=team.id, user_id=u.id))
        uow.commit()
        actors = []
        for u in [*users, registrar]:
            row = s.get(User, u.id)
            assert row is not None
            actors.append(auth.actor_for(row, Actor.anonymous("127.0.0.1"), permissions=effective_permissions(row)))
    return World(app, actors[-1], actors[:-1], {a.user_id: a.roles for a in actors[:-1]}, traveller)  # type: ignore[misc]


def content_hash(rev: Any) -> str:
    content = {k: getattr(rev, k) for k in REPORT_FIELDS}
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class OpenTask(NamedTuple):
    id: int
    name: str
    role: str
    assignee_id: int | None


class ReviewMachine(RuleBasedStateMachine):
    world: World  # set on the subclass built per test function

    def __init__(self) -> None:
        super().__init__()
        self.case_id = 0
        self.report_id = 0
        self.task: OpenTask | None = None
        self.tokens: dict[int, int] = {}
        self.signed: dict[int, tuple[str, str, int]] = {}  # revision id → (content hash, kind, author)
        self.revisions: set[int] = set()
        self.completions = 0
        self.claims = 0
        self.reject_revisions = 0
        self.timers_fired = 0
        self.refusals: Counter[str] = Counter()

    # --- plumbing ---------------------------------------------------------------------------------------------

    def act(self, fn: Any) -> Any:
        """One unit of work, like one request; a DomainError is a refusal and must be one we expect."""
        with self.world.app.app_context():
            try:
                with uow.unit_of_work():
                    return fn()
            except DomainError as exc:
                refusal = exc
        assert refusal.code in EXPECTED_REFUSALS, f"unexpected refusal {refusal.code}: {refusal.message}"
        self.refusals[refusal.code] += 1
        return None

    def doctor(self, index: int) -> Actor:
        return self.world.doctors[index % len(self.world.doctors)]

    def holder(self) -> Actor | None:
        if self.task is None or self.task.assignee_id is None:
            return None
        return next(a for a in self.world.doctors if a.user_id == self.task.assignee_id)

    def report(self) -> Report:
        row = uow.session().get(Report, self.report_id)
        assert row is not None
        return row

    # --- rules ------------------------------------------------------------------------------------------------

    @initialize(emergency=st.booleans())
    def new_case(self, emergency: bool) -> None:
        def create() -> tuple[int, int]:
            case = services.create_case(self.world.registrar, PATIENT, EXAMS, emergency, "咳嗽两周", auth.cipher())
            report = report_queries.current_report(case.id)
            assert report is not None
            return case.id, report.id

        created = self.act(create)
        assert created is not None
        self.case_id, self.report_id = created

    def qualified(self, k: int) -> Actor:
        """The holder, or if nobody holds the task the k-th doctor with its role (who may still be excluded)."""
        assert self.task is not None
        role = self.task.role
        candidates = [a for a in self.world.doctors if role in a.roles]
        return self.holder() or candidates[k % len(candidates)]

    @rule(who=st.integers(0, len(POOL) - 1))
    def claim_by_anyone(self, who: int) -> None:
        if self.task is not None:
            task_id = self.task.id
            if self.act(lambda: tasks.claim(self.doctor(who), task_id)) is not None:
                self.claims += 1

    @precondition(lambda self: self.task is not None and self.task.assignee_id is None)
    @rule(k=st.integers(0, 7))
    def claim_qualified(self, k: int) -> None:
        assert self.task is not None
        task_id, actor = self.task.id, self.qualified(k)
        if self.act(lambda: tasks.claim(actor, task_id)) is not None:
            self.claims += 1

    @precondition(lambda self: self.task is not None and self.task.assignee_id is not None)
    @rule(by_other=st.integers(0, len(POOL)))
    def release(self, by_other: int) -> None:
        assert self.task is not None
        task_id = self.task.id
        actor = self.holder() if by_other == len(POOL) else self.doctor(by_other)
        assert actor is not None
        self.act(lambda: tasks.release(actor, task_id))

    @precondition(lambda self: self.task is not None and self.task.assignee_id is not None)
    @rule()
    def lock(self) -> None:
        actor = self.holder()
        assert actor is not None
        assert actor.user_id is not None
        got = self.act(lambda: reports.acquire_lock(actor, self.report()))
        if got is not None:
            self.tokens[actor.user_id] = got[0]

    @precondition(lambda self: self.task is not None and self.task.assignee_id in self.tokens)
    @rule(text=st.sampled_from(TEXTS))
    def save_draft(self, text: str) -> None:
        """Autosave with the holder's last token, which may have expired or been taken over (WF-04)."""
        actor = self.holder()
        assert actor is not None
        assert actor.user_id is not None
        assert self.task is not None
        token, level = self.tokens[actor.user_id], LEVELS[self.task.name]
        data = {"findings": text, "impression": "草稿", "recommendation": "", "positive": "阴性"}
        self.act(lambda: reports.save_draft(actor, self.report(), token, data, level))

    @precondition(lambda self: self.task is not None)
    @rule(k=st.integers(0, 7), text=st.sampled_from(TEXTS))
    def approve(self, k: int, text: str) -> None:
        """The holder (or a qualified doctor, since completing an open task claims it) submits or approves."""
        actor = self.qualified(k)
        assert actor.user_id is not None
        self.finish(actor, "approve", self.tokens.get(actor.user_id), text)

    @precondition(lambda self: self.task is not None and self.task.name != "draft_report")
    @rule(k=st.integers(0, 7), blank=st.booleans())
    def reject(self, k: int, blank: bool) -> None:
        """驳回 by the holder or a qualified doctor, with a reason or (refused) without one."""
        actor = self.qualified(k)
        assert actor.user_id is not None
        self.finish(actor, "reject_blank" if blank else "reject", self.tokens.get(actor.user_id), TEXTS[0])

    @precondition(lambda self: self.task is not None)
    @rule(
        who=st.integers(0, len(POOL) - 1),
        decision=st.sampled_from(["approve", "reject", "reject_blank"]),
        with_token=st.booleans(),
        text=st.sampled_from(TEXTS),
    )
    def complete_by_anyone(self, who: int, decision: str, with_token: bool, text: str) -> None:
        actor = self.doctor(who)
        assert actor.user_id is not None
        self.finish(actor, decision, self.tokens.get(actor.user_id) if with_token else None, text)

    def finish(self, actor: Actor, decision: str, token: int | None, text: str) -> None:
        assert self.task is not None
        task = self.task
        data: dict[str, Any] = {"findings": text, "impression": "胸部未见明显异常。", "positive": "阴性"}
        if task.name != "draft_report":
            if decision == "approve":
                data["decision"] = "approve"
            else:
                data = {"decision": "reject", "reject_reason": "描述不全，请补充" if decision == "reject" else ""}
        if self.act(lambda: complete_task(actor, task.id, data, token).id) is None:
            return
        self.completions += 1
        self.check_next_step(task, "reject" if data.get("decision") == "reject" else "approve")

    @rule(minutes=st.sampled_from([3, 16, 241]))
    def clock(self, minutes: int) -> None:
        """16 minutes outlive the report lock lease; 241 the case's report time limit (UX.md R3: 急诊 30–60
        minutes, 普通 X线 2 hours; only a routine CT/MR's 4 working hours may outlast it, over a night)."""
        self.world.traveller.shift(timedelta(minutes=minutes))

    @rule()
    def fire_timers(self) -> None:
        """The worker's job for this case, twice: the second run must find nothing left to fire (WF-06)."""
        fired = self.act(lambda: services.fire_case_timers(self.case_id, utcnow()))
        self.timers_fired += fired or 0
        assert self.act(lambda: services.fire_case_timers(self.case_id, utcnow())) == 0

    # --- expectations of one successful completion -----------------------------------------------------------

    def check_next_step(self, done: OpenTask, decision: str) -> None:
        """A submit or approval moves one level on; a 驳回 returns to the step before, to its author (RPT-11)."""
        self.database_is_consistent()  # refreshes self.task
        expected = NEXT_STEP[(done.name, decision)]
        with self.world.app.app_context():
            report = uow.session().execute(select(Report.__table__).where(Report.id == self.report_id)).one()
        assert (self.task.name if self.task else None) == expected, (done, decision, self.task)
        if expected is None:
            assert report.status == "released"
        elif decision == "reject":
            assert self.task is not None
            assert self.task.assignee_id == (report.author_l1_id if expected == "draft_report" else report.author_l2_id)
            assert report.status == "rejected_" + LEVELS[done.name]

    # --- invariants -------------------------------------------------------------------------------------------

    @invariant()
    def database_is_consistent(self) -> None:
        if not self.case_id:
            return
        with self.world.app.app_context():
            s = uow.session()
            duplicated = s.execute(
                select(HumanTask.task_guid)
                .where(HumanTask.completed_at.is_(None))
                .group_by(HumanTask.task_guid)
                .having(func.count() > 1)
            ).all()
            assert duplicated == [], "two open human tasks for one workflow task"
            tasks = list(s.execute(select(HumanTask).where(HumanTask.case_id == self.case_id)).scalars())
            open_tasks = [t for t in tasks if t.completed_at is None]
            assert len(open_tasks) <= 1, "two open human tasks in one case"
            self.task = None
            for t in open_tasks:
                self.task = OpenTask(t.id, t.task_name, t.role_code, t.assignee_id)
                if t.assignee_id is not None:  # one assignee, who holds the lane role and is not excluded
                    assert t.role_code in self.world.roles[t.assignee_id]
                    assert t.assignee_id not in {x.user_id for x in t.exclusions}
            # Columns, not entities: Case and Report eager-load users and institutions, which is slow here.
            status = s.execute(select(Case.status).where(Case.id == self.case_id)).scalar_one()
            assert status in ("open", "completed"), "no incident expected"
            self.check_report(s, status, bool(open_tasks))
            self.check_history(s, tasks)

    def check_report(self, s: Any, case_status: str, task_open: bool) -> None:
        report = s.execute(
            select(Report.status, Report.author_l1_id, Report.author_l2_id, Report.reviewer_l3_id).where(
                Report.id == self.report_id
            )
        ).one()
        revs = s.execute(
            select(ReportRevision.__table__).where(ReportRevision.report_id == self.report_id).order_by("seq")
        ).all()
        ids = {r.id for r in revs}
        assert ids >= self.revisions, "a revision was lost"
        self.revisions = ids
        assert [r.seq for r in revs] == list(range(1, len(revs) + 1))
        levels_of: dict[int, set[str]] = {}
        for r in revs:
            assert r.content_hash == content_hash(r)
            if r.signed:
                assert LEVEL_ROLE[r.level] in self.world.roles[r.author_id], "signed without the level's role"
                levels_of.setdefault(r.author_id, set()).add(r.level)
                before = self.signed.setdefault(r.id, (r.content_hash, r.kind, r.author_id))
                assert before == (r.content_hash, r.kind, r.author_id), "a signed revision changed"
            if r.kind == "reject":
                assert (r.note or "").strip(), "a rejection without its reason"
        assert all(len(v) == 1 for v in levels_of.values()), f"one doctor signed at two levels: {levels_of}"
        signers = (report.author_l1_id, report.author_l2_id, report.reviewer_l3_id)
        exams = set(s.execute(select(Exam.status).join(case_exam).where(case_exam.c.case_id == self.case_id)).scalars())
        if report.status == "released":  # AC-06: three distinct doctors, each holding the level's role
            assert len({*signers} - {None}) == 3, signers
            for uid, level in zip(signers, ("l1", "l2", "l3"), strict=True):
                assert LEVEL_ROLE[level] in self.world.roles[uid]
                last = [r for r in revs if r.signed and r.level == level][-1]
                assert last.author_id == uid
            assert case_status == "completed"
            assert not task_open
            assert exams == {"released"}
        else:
            assert case_status == "open"
            assert task_open
            assert "released" not in exams
        self.reject_revisions = sum(1 for r in revs if r.kind == "reject")

    def check_history(self, s: Any, tasks: list[HumanTask]) -> None:
        events = s.execute(select(CaseEvent.event, CaseEvent.details).where(CaseEvent.case_id == self.case_id)).all()
        rounds = [e for e in events if e.event == "rejected_round"]
        assert len(rounds) == self.reject_revisions, "every rejection is one revision and one history entry"
        assert all((e.details or {}).get("reason", "").strip() for e in rounds)
        done = {str(t.id) for t in tasks if t.completed_by_id is not None}
        assert len(done) == self.completions
        audits = s.execute(
            select(AuditEvent.event_type, AuditEvent.object_id).where(
                AuditEvent.event_type.in_(["task_completed", "task_claimed"]),
                AuditEvent.object_type == "human_task",
                AuditEvent.object_id.in_([str(t.id) for t in tasks]),
            )
        ).all()
        assert sorted(a.object_id for a in audits if a.event_type == "task_completed") == sorted(done)
        assert sum(1 for a in audits if a.event_type == "task_claimed") == self.claims
        timers = s.execute(
            select(WorkflowTimer.due_at, WorkflowTimer.fired_at)
            .join(Case, Case.process_instance_id == WorkflowTimer.process_instance_id)
            .where(Case.id == self.case_id)
        ).all()
        assert all(t.fired_at is None or t.fired_at >= t.due_at for t in timers), "a timer fired before it was due"
        fired = sum(1 for e in events if e.event == "timer")
        assert fired == self.timers_fired, "a timer fired twice or its firing was not recorded"
        # One due time per case (engine/cases/turnaround.py): escalated at most once, and once the worker fired it.
        overdue = sum(1 for e in events if e.event == "overdue")
        assert overdue <= 1, "a case was escalated twice"
        assert overdue == 1 or fired == 0, "the timer fired without escalating"


def run_machine(app: Flask, max_examples: int, steps: int) -> None:
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        world = build_world(app, traveller)
        machine = type("ReviewMachineRun", (ReviewMachine,), {"world": world})
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=max_examples,
                stateful_step_count=steps,
                deadline=None,
                database=None,
                # No shrinking: the database keeps every earlier example's rows, so a replay is not exact and
                # shrinking can run for minutes; the failing sequence (at most `steps` steps) is printed as is.
                phases=[Phase.explicit, Phase.reuse, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    with app.app_context():
        s = uow.session()
        released = s.execute(select(func.count()).where(Report.status == "released")).scalar_one()
        rejected = s.execute(select(func.count()).where(CaseEvent.event == "rejected_round")).scalar_one()
    assert released > 0, "the random walks never reached a released report"
    assert rejected > 0, "the random walks never rejected a report"


# Sequences the state machine found; each failed before the fix named in its comment.
FOUND = {
    # The report time limit fired, then a 驳回 back to draft_report re-armed the timer under the same task id:
    # IntegrityError on workflow_timer.task_guid (fixed in runner_events.sync_timers). Since the timer waits for
    # the case's one due time (issue 17), the re-entered timer is already due and fires within the 驳回 step.
    "timer_then_reject": "clock 241; fire_timers; approve 0 a; reject 0 0; clock 241; fire_timers",
    # L3 驳回 to L2, then L2 驳回 to L1: 审核驳回 → 审核驳回 was an illegal exam transition (fixed in EXAM_TRANSITIONS).
    "reject_twice": "approve 0 a; approve 0 b; reject 0 0; reject 0 0",
    # The dual-role doctor signs L2, L3 rejects, the dual releases the rework, another L2 signs, and the dual then
    # reviewed at L3: one doctor signing two levels (fixed in assign and _check_distinct_signers). Now the dual's
    # claim is refused and the other reviewer releases.
    "sign_twice": "approve 0 a; claim_qualified 2; approve 0 b; reject 0 0; release 8; claim_qualified 0; "
    "approve 0 c; claim_qualified 2; approve 1 d",
}


def test_wf09_ac06_found_sequences(app: Flask) -> None:
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        world = build_world(app, traveller)
        done = {}
        for name, steps in FOUND.items():
            machine = type("ReviewMachineReplay", (ReviewMachine,), {"world": world})()
            machine.new_case(emergency=False)
            machine.database_is_consistent()
            for step in steps.split("; "):
                rule_name, *args = step.split()
                getattr(machine, rule_name)(*(int(x) if x.isdigit() else x for x in args))
                machine.database_is_consistent()
            done[name] = machine
    assert done["timer_then_reject"].timers_fired == 1  # the worker's; the second round's fired in the 驳回 step
    assert done["timer_then_reject"].task is not None
    assert done["timer_then_reject"].task.name == "draft_report"
    assert done["reject_twice"].task is not None
    assert done["reject_twice"].task.name == "draft_report"
    assert not done["reject_twice"].refusals
    assert done["sign_twice"].refusals == Counter({"not_candidate": 1})
    assert done["sign_twice"].task is None  # released, by three doctors who each signed one level


def test_wf09_ac06_review_state_machine(app: Flask) -> None:
    run_machine(app, max_examples=60, steps=25)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_wf09_ac06_review_state_machine_long(app: Flask) -> None:
    run_machine(app, max_examples=500, steps=40)
