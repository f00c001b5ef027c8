"""Delivering a BPMN message to the process instances waiting for it (issue 14, "events out of ingest").

A process waits for a message with a message catch (intermediate catch event, receive task, or a boundary event on
a task) whose `bpmn:message` has the message's name, e.g. ``images_received``. A message is *about* subjects —
(subject type, id) pairs such as ("case", 12) and ("exam", 40) — and is correlated by them: it reaches every
process instance, of any kind, whose own subject (`process_instance.subject_type/subject_id`) is one of them and
that waits for that name. No engine change for a new process: its BPMN names the message, its kind is registered
(engine/workflow/instances.py), and whoever raises the fact calls `deliver`.

Exactly once: the waiting instances are found in `workflow_message_wait` (kept by runner.save), then each is
locked through its kind (the same lock order as its other writes) and its workflow reloaded: an instance that no
longer waits — another delivery got there first — is left alone. The caller's transaction carries the delivery, so
it commits (or rolls back) with whatever caused it, e.g. the ingest event being marked processed
(engine/imaging/events.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import and_, or_, select

from engine import audit, uow
from engine.actor import Actor
from engine.db import utcnow
from engine.workflow import instances, runner
from engine.workflow.models import ProcessInstance, WorkflowMessageWait

Subject = tuple[str, int]


def waiting_instances(name: str, subjects: Iterable[Subject]) -> list[int]:
    """Ids of the process instances waiting for message `name` whose subject is one of `subjects` (id order)."""
    pairs = sorted(set(subjects))
    if not pairs:
        return []
    about = or_(*(and_(ProcessInstance.subject_type == t, ProcessInstance.subject_id == i) for t, i in pairs))
    rows = uow.session().execute(
        select(WorkflowMessageWait.process_instance_id)
        .join(ProcessInstance, ProcessInstance.id == WorkflowMessageWait.process_instance_id)
        .where(WorkflowMessageWait.message_name == name, about)
        .distinct()
    )
    return sorted(int(r) for r in rows.scalars())


def deliver(
    name: str, subjects: Iterable[Subject], payload: Mapping[str, Any], actor: Actor | None = None
) -> list[int]:
    """Deliver message `name` to every process instance waiting for it about one of `subjects`, in the current
    unit of work; returns the ids of the instances that took it. Each one runs to its next wait state (its
    service tasks included; a failing one is an incident, as on any step) and is audited
    (``process_message_delivered``)."""
    s = uow.session()
    who = actor or Actor.system("worker")
    delivered: list[int] = []
    for pi_id in waiting_instances(name, subjects):
        found = s.get(ProcessInstance, pi_id)
        if found is None:
            continue
        kind = instances.kind_of(found.process_id)
        pi = kind.lock(pi_id)
        if runner.deliver_message(pi, name, dict(payload), kind.assign) == 0:
            continue  # no longer waiting: delivered by another transaction, or its wait ended meanwhile
        pi.updated_at = utcnow()
        kind.after(pi, actor, "message", {"message": name, "status": pi.status})
        audit.record(
            who,
            "process_message_delivered",
            object_type=pi.subject_type,
            object_id=pi.subject_id,
            details={"message": name, "process_instance_id": pi.id, "process_id": pi.process_id},
        )
        delivered.append(pi.id)
    return delivered
