"""Timers and message catches of a workflow, copied out of its state into `workflow_timer` and
`workflow_message_wait` at every save, so the worker (engine/workflow/instances.py) finds due timers and
engine/workflow/messages.py finds the instances waiting for a message without loading any workflow.

The runner (engine/workflow/runner.py) calls `sync_timers` and `sync_messages` from its `save`, and records
`waiting_timers` / `spiff.waiting_messages` when it loads a workflow, so a step that leaves them as they were writes
nothing."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.orm.attributes import instance_state

from engine import uow
from engine.db import upsert_insert, utcnow
from engine.workflow import spiff
from engine.workflow.models import WorkflowMessageWait, WorkflowTimer

if TYPE_CHECKING:
    from engine.workflow.runner import InstanceLike

# Core statements built once (see runner.py on why the per-step writes are Core).
_TIMER = cast(Table, WorkflowTimer.__table__)
_END_TIMERS = delete(_TIMER).where(
    _TIMER.c.process_instance_id == bindparam("pi_id"),
    _TIMER.c.task_guid.in_(bindparam("guids", expanding=True)),
    _TIMER.c.fired_at.is_(None),
)


@lru_cache(maxsize=2)
def _arm_timers(dialect: str) -> Any:
    """Insert a waiting timer, or re-arm its row (task_guid is unique): a row with the same due time is that
    very instance (already armed, or already fired), any other due time is a new instance. One statement for
    what took a SELECT of the case's timers and then the writes."""
    stmt = upsert_insert(dialect)(_TIMER)
    return stmt.on_conflict_do_update(
        index_elements=[_TIMER.c.task_guid],
        set_={"due_at": stmt.excluded.due_at, "task_name": stmt.excluded.task_name, "fired_at": None},
        where=_TIMER.c.due_at != stmt.excluded.due_at,
    )


def expire_touched(s: Any, model: type, match: Callable[[dict[str, Any]], bool]) -> None:
    """After a bulk UPDATE/DELETE without session synchronisation (the cheap form on the per-step path), expire
    the few rows of `model` this session already holds that it touched, so nothing reads a stale value. `match`
    sees the loaded attribute values only: touching an attribute of an already-expired object would reload it
    (two extra SELECTs per step, bench/bench_engine.py), and an expired object reloads on use anyway."""
    for obj in list(s.identity_map.values()):
        if isinstance(obj, model) and match(instance_state(obj).dict):
            s.expire(obj)


def waiting_timers(wf: Any) -> dict[str, tuple[str, Any]]:
    """task id → (timer name, due time) of every waiting timer event."""
    waiting: dict[str, tuple[str, Any]] = {}
    for t in wf.get_tasks(state=spiff.TaskState.WAITING):
        value = t._get_internal_data("event_value")
        if value is not None and spiff.is_timer(t):
            waiting[str(t.id)] = (t.task_spec.bpmn_id or t.task_spec.name, spiff.timer_due(value))
    return waiting


def sync_timers(pi: InstanceLike, wf: Any) -> None:
    """SpiffWorkflow has no scheduler: copy the due time of every waiting timer into `workflow_timer`.

    `workflow_timer` holds exactly the timers that were waiting when the workflow was loaded (every save goes
    through here), so a step that leaves them as they were needs no statement, ended timers take one DELETE
    and new, moved or re-armed ones one upsert (`_arm_timers`). A workflow not loaded by `load`/`new` takes
    the full comparison below."""
    s = uow.session()
    waiting = waiting_timers(wf)
    before = getattr(wf, "telerad_timers_at_load", None)
    if before is not None:
        if waiting == before:
            return
        gone = set(before) - set(waiting)
        armed = {guid: value for guid, value in waiting.items() if before.get(guid) != value}
        s.flush()
        conn = s.connection()
        if gone:
            conn.execute(_END_TIMERS, {"pi_id": pi.id, "guids": sorted(gone)})
        if armed:  # new, moved, or re-armed after a 驳回 (the reset task keeps its id; see the full comparison)
            rows = [
                {"process_instance_id": pi.id, "task_guid": guid, "task_name": name, "due_at": due, "fired_at": None}
                for guid, (name, due) in sorted(armed.items())
            ]
            conn.execute(_arm_timers(conn.dialect.name), rows)
        expire_touched(
            s,
            WorkflowTimer,
            lambda r: r.get("process_instance_id") == pi.id and r.get("task_guid") in gone | set(armed),
        )
        return
    timers = list(s.execute(select(WorkflowTimer).where(WorkflowTimer.process_instance_id == pi.id)).scalars())
    existing = {r.task_guid: r for r in timers if r.fired_at is None}
    fired = {r.task_guid: r for r in timers if r.fired_at is not None}
    for guid, row in existing.items():
        if guid not in waiting or row.due_at != waiting[guid][1]:
            s.delete(row)  # the timer's task finished or was reset: it must not fire
    s.flush()
    for guid, (name, due) in waiting.items():
        if guid in fired:
            # A 驳回 resets the timer's task, which keeps its id: a new due time is a new instance of the timer,
            # so re-arm the fired row (task_guid is unique); the same due time is the instance that already fired.
            if fired[guid].due_at != due:
                fired[guid].fired_at, fired[guid].due_at, fired[guid].task_name = None, due, name
        elif guid not in existing or existing[guid].due_at != due:
            s.add(WorkflowTimer(process_instance_id=pi.id, task_guid=guid, task_name=name, due_at=due))
    s.flush()


_MSG = cast(Table, WorkflowMessageWait.__table__)
_END_WAITS = delete(_MSG).where(
    _MSG.c.process_instance_id == bindparam("pi_id"), _MSG.c.task_guid.in_(bindparam("guids", expanding=True))
)


def sync_messages(pi: InstanceLike, wf: Any) -> None:
    """Make `workflow_message_wait` hold exactly the message catches the workflow waits on (engine/workflow/
    messages.py finds waiting instances there). Like `sync_timers`: no statement when they are as loaded — the
    usual step, so a process without message catches pays nothing; a workflow not loaded by `load`/`new` is
    compared with its rows."""
    waiting = spiff.waiting_messages(wf)
    before = getattr(wf, "telerad_messages_at_load", None)
    if before is not None and waiting == before:
        return
    s = uow.session()
    s.flush()
    if before is None:
        rows = s.execute(
            select(WorkflowMessageWait.task_guid, WorkflowMessageWait.message_name).where(
                WorkflowMessageWait.process_instance_id == pi.id
            )
        )
        before = {guid: name for guid, name in rows}
    gone = {guid for guid, name in before.items() if waiting.get(guid) != name}
    new = {guid: name for guid, name in waiting.items() if before.get(guid) != name}
    conn = s.connection()
    if gone:
        conn.execute(_END_WAITS, {"pi_id": pi.id, "guids": sorted(gone)})
    if new:
        now = utcnow()
        conn.execute(
            _MSG.insert(),
            [
                {"process_instance_id": pi.id, "task_guid": g, "message_name": n, "created_at": now}
                for g, n in sorted(new.items())
            ],
        )
    expire_touched(s, WorkflowMessageWait, lambda r: r.get("process_instance_id") == pi.id)
    wf.telerad_messages_at_load = waiting
