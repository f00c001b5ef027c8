"""Load a process instance's workflow, complete one task, run engine steps, save state-only JSON, sync human tasks.

The caller (a domain service, e.g. engine/cases/services.py) holds the process instance's row lock and passes an
`assigner` that decides who may take each new READY user task. Failing service tasks become incidents; the caller
still gets a normal answer. Works for any process kind (issue 14).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import lazyload

from engine import uow
from engine.db import utcnow
from engine.errors import Conflict
from engine.workflow import service_tasks, specs, spiff, state
from engine.workflow.models import (
    HumanTask,
    HumanTaskExclusion,
    Incident,
    ProcessDeployment,
    ProcessInstance,
)
from engine.workflow.runner_events import expire_touched, sync_messages, sync_timers, waiting_timers


class InstanceLike(Protocol):
    """What the runner needs of a process instance (engine/workflow/models.py ProcessInstance)."""

    id: int
    deployment_id: int
    state: dict[str, Any]
    serializer_version: int
    status: str
    completed_at: Any
    subject_type: str
    subject_id: int


@dataclass
class Assignment:
    """Who may take a new READY user task."""

    role_code: str
    assignee_id: int | None = None
    group_code: str | None = None
    in_pool: bool = False
    exclude: set[int] = field(default_factory=set)
    case_id: int | None = None  # the remote-diagnosis case whose own process this is (HumanTask.case_id)
    emergency: bool = False


@dataclass
class ReadyTask:
    guid: str
    name: str
    title: str
    lane: str | None
    form: str | None
    data: dict[str, Any]


Assigner = Callable[[InstanceLike, ReadyTask], Assignment]


def _engine() -> Any:
    return spiff.make_script_engine(service_tasks.call)


def _deployment(pi: InstanceLike) -> ProcessDeployment:
    row = uow.session().get(ProcessDeployment, pi.deployment_id)
    assert row is not None
    return row


def load(pi: InstanceLike) -> Any:
    digest = getattr(pi, "deployment_hash", None)  # read with the instance row (engine/workflow/models.py)
    if digest is None:
        digest = _deployment(pi).content_hash
    stored = state.upgrade(pi.state, pi.serializer_version)  # older formats through their migrations
    wf = spiff.restore(specs.spec_of(pi.deployment_id, digest), stored, _engine())
    wf.telerad_timers_at_load = waiting_timers(wf)
    wf.telerad_messages_at_load = spiff.waiting_messages(wf)
    wf.telerad_ready_at_load = {r.guid for r in ready_tasks(wf)}
    return wf


def new(deployment: ProcessDeployment) -> Any:
    wf = spiff.new_workflow(specs.spec_of(deployment.id, deployment.content_hash), _engine())
    wf.telerad_timers_at_load = {}
    wf.telerad_messages_at_load = {}
    wf.telerad_ready_at_load = set()
    return wf


def ready_tasks(wf: Any) -> list[ReadyTask]:
    out = []
    for t in wf.get_tasks(state=spiff.TaskState.READY, manual=True):
        spec = t.task_spec
        props = (spec.extensions or {}).get("properties", {})
        out.append(
            ReadyTask(
                str(t.id), spec.name, spec.bpmn_name or spec.name, spec.lane, props.get(specs.FORM_PROPERTY), t.data
            )
        )
    return out


@dataclass(frozen=True)
class DiagramState:
    """Which BPMN elements of an instance are active (ready or waiting) and which are done, for highlighting."""

    active: list[str]
    completed: list[str]


def diagram_state(pi: InstanceLike) -> DiagramState:
    """Walk the instance's task tree once for the diagram (bpmn-js highlights): sorted BPMN ids, no duplicates."""
    wf = load(pi)

    def ids(state: Any) -> list[str]:
        return sorted({t.task_spec.bpmn_id for t in wf.get_tasks(state=state) if getattr(t.task_spec, "bpmn_id", None)})

    return DiagramState(
        active=ids(spiff.TaskState.READY | spiff.TaskState.WAITING), completed=ids(spiff.TaskState.COMPLETED)
    )


def _run(pi: InstanceLike, wf: Any) -> None:
    """Engine steps; a failing service task becomes an incident instead of an error for the caller."""
    try:
        wf.do_engine_steps()
    except Exception as exc:  # noqa: BLE001 — SpiffWorkflow wraps handler errors in its own exception types
        pi.status = "incident"
        failed = [t.task_spec.name for t in wf.get_tasks(state=spiff.TaskState.ERROR)] or ["?"]
        uow.session().add(Incident(process_instance_id=pi.id, task_name=failed[0], error=str(exc)[:2000]))
        return
    if wf.completed and pi.status != "incident":
        pi.status = "completed"
        pi.completed_at = utcnow()


def save_state(pi: InstanceLike, wf: Any) -> None:
    """The state-only JSON in the current format (engine/workflow/state.py)."""
    pi.state = spiff.state_to_dict(wf)
    if pi.serializer_version != state.STATE_VERSION:
        pi.serializer_version = state.STATE_VERSION


def save(pi: InstanceLike, wf: Any, assigner: Assigner) -> list[HumanTask]:
    """Persist state-only JSON, copy timer due times and message waits out, and make `human_task` match the READY
    user tasks."""
    save_state(pi, wf)
    sync_timers(pi, wf)
    sync_messages(pi, wf)
    return sync_human_tasks(pi, ready_tasks(wf), assigner, getattr(wf, "telerad_ready_at_load", None))


# The per-step writes as Core statements built once: an ORM-enabled bulk statement built per call spent more
# time in SQLAlchemy (clause coercion, cache key, ORM pre-execution) than in the database (bench_engine.py).
# It runs on the session's connection after a flush; `expire_touched` keeps the identity map honest.
_TASK = cast(Table, HumanTask.__table__)
_CLOSE_TASKS = (
    update(_TASK)
    .where(
        _TASK.c.process_instance_id == bindparam("b_pi_id"),  # b_: an UPDATE reserves the column names for SET
        _TASK.c.task_guid.in_(bindparam("b_guids", expanding=True)),
        _TASK.c.completed_at.is_(None),
    )
    .values(completed_at=bindparam("b_now"), outcome=func.coalesce(_TASK.c.outcome, "cancelled"))
)


def deliver_message(pi: InstanceLike, name: str, payload: dict[str, Any], assigner: Assigner) -> int:
    """Deliver the message `name` to a process instance (the caller holds its lock) and run it to its next wait
    state. Returns how many of its catches took the message; 0 means it was not waiting for it (already delivered
    by someone else, ended, or never waited) and nothing was written."""
    wf = load(pi)
    caught = spiff.catch_message(wf, name, payload)
    if caught:
        _run(pi, wf)
        save(pi, wf, assigner)
    return caught


def fire_timers(pi: InstanceLike, assigner: Assigner) -> Any:
    """Run a process whose timers are due (the worker calls this under the instance's lock)."""
    wf = load(pi)
    wf.refresh_timers()  # refresh_waiting_tasks is deprecated (a DeprecationWarning) in SpiffWorkflow 3.2
    _run(pi, wf)
    save(pi, wf, assigner)
    return wf


def sync_human_tasks(
    pi: InstanceLike, ready: list[ReadyTask], assigner: Assigner, open_guids: set[str] | None = None
) -> list[HumanTask]:
    """Make the open `human_task` rows match the READY user tasks.

    `open_guids` are the READY user tasks when the workflow was loaded: every save goes through here, so they are
    exactly the instance's open rows, and closing the finished ones is one UPDATE (RETURNING keeps the session in
    step) instead of a SELECT and an UPDATE. Without it (a workflow not loaded by `load`), read the rows."""
    s = uow.session()
    s.flush()
    wanted = {r.guid: r for r in ready}
    now = utcnow()
    if open_guids is None:
        open_rows = {
            h.task_guid: h
            for h in s.execute(
                select(HumanTask)
                .where(HumanTask.process_instance_id == pi.id, HumanTask.completed_at.is_(None))
                .options(lazyload(HumanTask.exclusions))  # not needed to close or keep a row
            ).scalars()
        }
        for guid, row in open_rows.items():
            if guid not in wanted:  # finished or reset away by this step
                row.completed_at = now
                row.outcome = row.outcome or "cancelled"
        open_guids = set(open_rows)
    elif open_guids - set(wanted):
        closing = open_guids - set(wanted)
        s.connection().execute(_CLOSE_TASKS, {"b_pi_id": pi.id, "b_guids": sorted(closing), "b_now": now})
        expire_touched(s, HumanTask, lambda h: h.get("process_instance_id") == pi.id and h.get("task_guid") in closing)
    created = []
    for guid, r in wanted.items():
        if guid in open_guids:
            continue
        a = assigner(pi, r)
        row = HumanTask(
            process_instance_id=pi.id,
            case_id=a.case_id,
            task_guid=guid,
            task_name=r.name,
            title=r.title,
            role_code=a.role_code,
            form=r.form,
            assignee_id=a.assignee_id,
            group_code=a.group_code,
            in_pool=a.in_pool,
            emergency=a.emergency,
            claimed_at=now if a.assignee_id else None,
        )
        row.exclusions = [HumanTaskExclusion(user_id=u) for u in sorted(a.exclude)]
        s.add(row)
        created.append(row)
    s.flush()
    return created


def create_instance(
    deployment: ProcessDeployment, *, institution_id: int, subject_type: str, subject_id: int
) -> ProcessInstance:
    """A new process instance row (state empty until `start` saves it), pinned to `deployment`."""
    pi = ProcessInstance(
        process_id=deployment.process_id,
        deployment_id=deployment.id,
        state={},
        serializer_version=state.STATE_VERSION,
        status="open",
        institution_id=institution_id,
        subject_type=subject_type,
        subject_id=subject_id,
    )
    uow.session().add(pi)
    uow.session().flush()
    return pi


def start(pi: InstanceLike, deployment: ProcessDeployment, data: dict[str, Any], assigner: Assigner) -> Any:
    wf = new(deployment)
    for t in wf.get_tasks(state=spiff.TaskState.READY):
        t.data.update(data)
    _run(pi, wf)
    save(pi, wf, assigner)
    return wf


def _ready(wf: Any, guid: str) -> Any:
    for t in wf.get_tasks(state=spiff.TaskState.READY, manual=True):
        if str(t.id) == guid:
            return t
    raise Conflict("task_not_ready", "任务已完成或已被回退，请刷新")


def complete(pi: InstanceLike, guid: str, data: dict[str, Any], assigner: Assigner) -> Any:
    """Complete one READY user task with `data` and run the engine to the next wait state."""
    wf = load(pi)
    task = _ready(wf, guid)
    task.data.update(data)
    task.run()
    _run(pi, wf)
    save(pi, wf, assigner)
    return wf


def reject_to(pi: InstanceLike, guid: str, target: str, data: dict[str, Any], assigner: Assigner) -> Any:
    """Carry out a drawn reject flow by resetting to `target`'s last completed instance (the tree stays small)."""
    wf = load(pi)
    _ready(wf, guid)
    done = wf.get_tasks(spec_name=target, state=spiff.TaskState.COMPLETED)
    if not done:
        raise Conflict("reject_target_missing", "无法回退：目标步骤尚未执行")
    wf.reset_from_task_id(done[-1].id)
    for t in wf.get_tasks(state=spiff.TaskState.READY, manual=True):
        t.data.update(data)
    _run(pi, wf)
    save(pi, wf, assigner)
    return wf


def reopen(pi: InstanceLike, target: str, data: dict[str, Any], assigner: Assigner) -> Any:
    """Reset a (possibly completed) process back to `target`'s last completed instance — used for corrections."""
    wf = load(pi)
    done = wf.get_tasks(spec_name=target, state=spiff.TaskState.COMPLETED)
    if not done:
        raise Conflict("reopen_target_missing", "无法重新打开：目标步骤尚未执行")
    wf.reset_from_task_id(done[-1].id)
    for t in wf.get_tasks(state=spiff.TaskState.READY, manual=True):
        t.data.update(data)
    _run(pi, wf)
    save(pi, wf, assigner)
    return wf


def reject_targets(deployment: ProcessDeployment) -> dict[str, str]:
    """user task → the task its `decision == "reject"` flow leads back to, read from the diagram."""
    return _reject_targets(deployment.id, deployment.content_hash)


@lru_cache(maxsize=64)  # a deployment never changes: parse its BPMN once, not on every 驳回
def _reject_targets(deployment_id: int, digest: str) -> dict[str, str]:
    from lxml import etree

    dep = uow.session().get(ProcessDeployment, deployment_id)
    assert dep is not None
    out: dict[str, str] = {}
    for text in dep.bpmn.values():
        root = etree.fromstring(text.encode(), parser=etree.XMLParser(resolve_entities=False, no_network=True))
        flows = {f.get("id"): f for f in root.iterfind(".//bpmn:sequenceFlow", specs.NS)}
        incoming_of: dict[str, list[str]] = {}
        for f in flows.values():
            source, target = f.get("sourceRef"), f.get("targetRef")
            if source is not None and target is not None:  # both are required by BPMN 2.0
                incoming_of.setdefault(target, []).append(source)
        for f in flows.values():
            cond = f.find("bpmn:conditionExpression", specs.NS)
            if cond is not None and "reject" in (cond.text or "") and "decision" in (cond.text or ""):
                gateway, target = f.get("sourceRef"), f.get("targetRef")
                if gateway is None or target is None:
                    continue
                for source in incoming_of.get(gateway, []):
                    out[source] = target
    return out


def retry_incident(pi: InstanceLike, assigner: Assigner) -> Any:
    """Re-run the failed service task(s) of a process instance in incident."""
    wf = load(pi)
    for t in wf.get_tasks(state=spiff.TaskState.ERROR):
        wf.reset_from_task_id(t.id)
    pi.status = "open"
    _run(pi, wf)
    if pi.status != "incident":
        uow.session().execute(
            update(Incident)
            .where(Incident.process_instance_id == pi.id, Incident.resolved_at.is_(None))
            .values(resolved_at=utcnow())
        )
    save(pi, wf, assigner)
    return wf
