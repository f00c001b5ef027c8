"""Task list operations: claim, release, assign, consult, batch assignment (REQ: DISP-02..05, REC-05/06, AC-06).

Split from engine/cases/services.py (creation and dispatch stay there).
"""

from __future__ import annotations

from sqlalchemy import select, update

from engine import audit, uow
from engine.actor import Actor
from engine.cases.models import (
    Case,
    WorkGroup,
    WorkGroupMember,
)
from engine.cases.services import event, group_exists, qualified_doctor
from engine.db import utcnow
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.visibility import get_visible, may_take_process_task
from engine.workflow import instances
from engine.workflow.models import HumanTask, ProcessInstance


def user_groups(user_id: int) -> list[str]:
    return list(
        uow.session()
        .execute(
            select(WorkGroup.code)
            .join(WorkGroupMember, WorkGroupMember.group_id == WorkGroup.id)
            .where(WorkGroupMember.user_id == user_id)
        )
        .scalars()
    )


def can_take(actor: Actor, task: HumanTask, *, ignore_assignee: bool = False) -> bool:
    """Candidate check: holds the lane role, in the group if any, not excluded (AC-06). A task of another
    process kind (no case): its kind's candidate rule (visibility.process_candidates) instead of the lane role."""
    if task.case_id is None:
        if not may_take_process_task(actor, task):
            return False
    elif task.role_code not in actor.roles or not actor.is_central:
        return False
    if any(x.user_id == actor.user_id for x in task.exclusions):
        return False
    if task.assignee_id is not None and not ignore_assignee:
        return task.assignee_id == actor.user_id
    if task.group_code and task.group_code not in user_groups(actor.user_id or 0):
        return False
    return True


def record(actor: Actor, task: HumanTask, what: str, **details: object) -> None:
    """The history entry of a task operation: the case's own history for a remote-diagnosis task, else whatever
    the task's process kind records (its `after` hook, engine/workflow/instances.py)."""
    s = uow.session()
    if task.case_id is not None:
        case = s.get(Case, task.case_id)
        assert case is not None
        event(case, actor, what, task.task_name, **details)
        return
    pi = s.get(ProcessInstance, task.process_instance_id)
    assert pi is not None
    instances.kind_of(pi.process_id).after(pi, actor, what, {"task": task.task_name, **details})


def get_task(actor: Actor, task_id: int) -> HumanTask:
    return get_visible(actor, HumanTask, task_id, object_type="human_task")


def candidate_task(actor: Actor, task_id: int) -> HumanTask | None:
    """The task when the actor holds its lane role and could take it were it unassigned, loaded without the
    visibility rule: a doctor who loses a claim or completion race (the case just became invisible to them) gets
    a 409, not the 404 and security alert of an intruder (WF-01/02). Everyone else goes through get_task."""
    task = uow.session().get(HumanTask, task_id)
    if task is None or not actor.has("task.read") or not can_take(actor, task, ignore_assignee=True):
        return None
    return task


def claim(actor: Actor, task_id: int) -> HumanTask:
    """Grab a task: one conditional UPDATE, so of twenty simultaneous clicks exactly one wins (DISP-04, WF-01)."""
    task = candidate_task(actor, task_id) or get_task(actor, task_id)
    if task.completed_at is not None:
        raise Conflict("task_not_ready", "任务已完成")
    if not can_take(actor, task, ignore_assignee=True):
        raise Forbidden("not_candidate", "您不能领取该任务")
    s = uow.session()
    res = s.execute(
        update(HumanTask)
        .where(HumanTask.id == task.id, HumanTask.assignee_id.is_(None), HumanTask.completed_at.is_(None))
        .values(assignee_id=actor.user_id, claimed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        audit.record(actor, "claim_conflict", outcome="failure", object_type="human_task", object_id=task.id)
        raise Conflict("already_claimed", "抢单失败：该任务已被他人领取")
    s.refresh(task)
    record(actor, task, "claimed")  # REC-04: who took it, and it stays visible to them afterwards
    audit.record(actor, "task_claimed", object_type="human_task", object_id=task.id)
    return task


def release(actor: Actor, task_id: int) -> HumanTask:
    """Cancel a claim: the task returns to the pool or its group (DISP-04)."""
    task = get_task(actor, task_id)
    s = uow.session()
    res = s.execute(
        update(HumanTask)
        .where(HumanTask.id == task.id, HumanTask.assignee_id == actor.user_id, HumanTask.completed_at.is_(None))
        .values(assignee_id=None, claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("not_holder", "只能释放自己领取的任务")
    s.refresh(task)
    record(actor, task, "released_claim")
    audit.record(actor, "task_released", object_type="human_task", object_id=task.id)
    return task


def assign_to(actor: Actor, task_id: int, user_id: int, *, consult: bool = False) -> HumanTask:
    """A dispatcher assigns (or the holder hands over for 会诊, REC-05) a task to a qualified doctor."""
    task = get_task(actor, task_id)
    if task.completed_at is not None:
        raise Conflict("task_not_ready", "任务已完成")
    if task.case_id is None:  # doctors and work groups are the remote-diagnosis kind's candidates
        raise Conflict("not_a_case_task", "该任务不属于远程诊断申请，不能指派给医生")
    if consult and task.assignee_id != actor.user_id:
        raise Forbidden("not_holder", "只有任务持有人可以发起会诊转派")
    if not consult and not actor.has("task.assign"):
        raise Forbidden("forbidden", "没有权限执行此操作")
    doctor = qualified_doctor(user_id, task.role_code)
    if any(x.user_id == doctor.id for x in task.exclusions):
        raise Forbidden("separation_of_duties", "该医生已参与本报告的前一级，不能担任本级")
    task.assignee_id, task.claimed_at, task.in_pool = doctor.id, utcnow(), False
    case = uow.session().get(Case, task.case_id)
    assert case is not None
    event(case, actor, "consulted" if consult else "assigned", task.task_name, to=doctor.full_name)
    audit.record(
        actor,
        "task_consulted" if consult else "task_assigned",
        object_type="human_task",
        object_id=task.id,
        details={"to_user_id": doctor.id},
    )
    return task


def batch_assign(actor: Actor, task_ids: list[int], user_id: int | None, group_code: str | None) -> int:
    """REC-06: send several open tasks to one doctor or one work group."""
    if (user_id is None) == (group_code is None):
        raise ValidationFailed("validation_error", "请选择一位医生或一个工作组")
    if group_code and not group_exists(group_code):
        raise NotFound("group_not_found", "工作组不存在")
    n = 0
    for tid in sorted(set(task_ids))[:200]:
        if user_id is not None:
            assign_to(actor, tid, user_id)
        else:
            task = get_task(actor, tid)
            if task.case_id is None:
                raise Conflict("not_a_case_task", "该任务不属于远程诊断申请，不能指派给工作组")
            if task.completed_at is None:
                task.group_code, task.assignee_id, task.in_pool, task.claimed_at = group_code, None, False, None
                audit.record(
                    actor, "task_assigned", object_type="human_task", object_id=task.id, details={"group": group_code}
                )
        n += 1
    return n
