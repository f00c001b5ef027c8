"""Process kinds and the operations every process instance shares: lock, fire due timers, retry an incident.

A process kind (a deployed BPMN process id) registers how its new user tasks are assigned, how its instance is
locked (a kind whose subject row is locked by its own services locks that row, the instance with it, so the
order of locks is the same on every path), and what it records when the engine moves it (its history, a mirrored
status). Nothing here knows a particular process: a new process needs its BPMN, forms, service operations,
visibility rule and this registration (issue 14).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, select

from engine import audit, uow
from engine.actor import Actor
from engine.db import utcnow
from engine.errors import Conflict, NotFound
from engine.workflow import runner
from engine.workflow.models import ProcessInstance, WorkflowTimer

# after(instance, actor, what, details): what is "timer" (details: timers), "retried" (details: status), "message"
# (details: message, status; engine/workflow/messages.py), or for a task of a kind other than remote diagnosis
# "claimed", "released_claim" or "completed" (details: task).
After = Callable[[ProcessInstance, Actor | None, str, Mapping[str, Any]], None]
# describe(instances): per instance id, what a task list row shows of it — "subject" (the Chinese label of what it
# is about, e.g. the case number) and, when it is about a case, "case_id"/"case_no"; one call per list page.
Describe = Callable[[list[ProcessInstance]], Mapping[int, Mapping[str, Any]]]
# form_data(instance, task name): the prefilled data of a task's form (e.g. the question being answered).
FormData = Callable[[ProcessInstance, str], dict[str, Any]]


@dataclass(frozen=True)
class ProcessKind:
    process_id: str
    assign: runner.Assigner
    lock: Callable[[int], ProcessInstance]
    after: After
    name: str = ""  # the kind's Chinese name, shown in task lists
    describe: Describe | None = None
    form_data: FormData | None = None


_KINDS: dict[str, ProcessKind] = {}


def register_kind(
    process_id: str,
    *,
    assign: runner.Assigner,
    lock: Callable[[int], ProcessInstance] | None = None,
    after: After | None = None,
    name: str = "",
    describe: Describe | None = None,
    form_data: FormData | None = None,
) -> ProcessKind:
    """Register a process kind (idempotent per process id: the last registration wins)."""
    kind = ProcessKind(
        process_id, assign, lock or lock_instance, after or (lambda *_a: None), name or process_id, describe, form_data
    )
    _KINDS[process_id] = kind
    return kind


def kind_of(process_id: str) -> ProcessKind:
    """Raises: Conflict ``unknown_process_kind`` — a deployed process nobody registered."""
    kind = _KINDS.get(process_id)
    if kind is None:
        raise Conflict("unknown_process_kind", f"流程 {process_id} 未注册")
    return kind


def kinds() -> frozenset[str]:
    return frozenset(_KINDS)


@lru_cache(maxsize=1)
def _lock_stmt() -> Any:
    stmt = select(ProcessInstance).where(ProcessInstance.id == bindparam("pi_id")).with_for_update()
    return stmt.execution_options(populate_existing=True)


def lock_instance(pi_id: int) -> ProcessInstance:
    """Lock the process instance row before loading its workflow (STYLE.md §3). SQLite serialises writers.

    Raises:
        NotFound: no such instance.
    """
    pi = uow.session().execute(_lock_stmt(), {"pi_id": pi_id}).scalar_one_or_none()
    if pi is None:
        raise NotFound()
    return pi


def due_timer_instances(now: datetime, limit: int = 100) -> list[int]:
    """Process instances with at least one due, unfired timer (the worker fires each in its own unit of work)."""
    return list(
        uow.session()
        .execute(
            select(WorkflowTimer.process_instance_id)
            .where(WorkflowTimer.fired_at.is_(None), WorkflowTimer.due_at <= now)
            .distinct()
            .limit(limit)
        )
        .scalars()
    )


def fire_instance_timers(pi_id: int, now: datetime) -> int:
    """Fire the due timers of one process instance under its lock, exactly once (WF-06). Returns how many fired."""
    s = uow.session()
    found = s.get(ProcessInstance, pi_id)
    if found is None:
        return 0
    kind = kind_of(found.process_id)
    pi = kind.lock(pi_id)
    rows = list(
        s.execute(
            select(WorkflowTimer).where(
                WorkflowTimer.process_instance_id == pi.id,
                WorkflowTimer.fired_at.is_(None),
                WorkflowTimer.due_at <= now,
            )
        ).scalars()
    )
    if not rows:
        return 0
    for row in rows:  # marked first: a fired row is never deleted by the next sync, so it fires once
        row.fired_at = now
    s.flush()
    runner.fire_timers(pi, kind.assign)
    pi.updated_at = now
    kind.after(pi, None, "timer", {"timers": [(r.task_name, r.due_at.isoformat()) for r in rows]})
    audit.record(
        Actor.system("worker"),
        "timer_fired",
        object_type=pi.subject_type,
        object_id=pi.subject_id,
        details={"timers": [r.task_name for r in rows], "process_instance_id": pi.id},
    )
    return len(rows)


def retry(actor: Actor, pi: ProcessInstance) -> ProcessInstance:
    """Re-run the failed service task of an instance in incident, under its lock; audited. The caller has
    checked that the actor sees the instance (engine/visibility.py).

    Raises:
        Conflict: ``no_incident`` when the instance has no open incident.
    """
    kind = kind_of(pi.process_id)
    pi = kind.lock(pi.id)
    if pi.status != "incident":
        raise Conflict("no_incident", "该流程没有待处理的异常")
    runner.retry_incident(pi, kind.assign)
    pi.updated_at = utcnow()
    kind.after(pi, actor, "retried", {"status": pi.status})
    audit.record(
        actor,
        "incident_retried",
        object_type=pi.subject_type,
        object_id=pi.subject_id,
        details={"status": pi.status, "process_instance_id": pi.id},
    )
    return pi
