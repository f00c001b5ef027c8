"""Engine tables: deployments, process instances, human tasks and their candidates, timers, incidents (ARCHITECTURE.md
engine; issue 14: any process, not only remote diagnosis)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, select, text
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from engine.db import Base, UTCDateTime, utcnow


class ProcessDeployment(Base):
    """One deployed version of a process: BPMN + DMN + forms, keyed by content hash, stored once.

    The large columns are deferred: running a case needs only (id, content_hash) to find the cached spec."""

    __tablename__ = "process_deployment"

    id: Mapped[int] = mapped_column(primary_key=True)
    process_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    bpmn: Mapped[dict[str, str]] = mapped_column(JSON, deferred=True)
    dmn: Mapped[dict[str, str]] = mapped_column(JSON, deferred=True)
    forms: Mapped[dict[str, Any]] = mapped_column(JSON, deferred=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, deferred=True)
    source: Mapped[str] = mapped_column(String(16), default="files")  # files | ui
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deployed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


PROCESS_STATUSES: dict[str, str] = {
    "open": "进行中",
    "completed": "已完成",
    "incident": "流程异常",
    "cancelled": "已取消",
}


class ProcessInstance(Base):
    """One running (or finished) BPMN process: it owns the workflow state; human tasks, timers and incidents
    hang off it. `subject_type`/`subject_id` name what it is about (a remote-diagnosis case, a critical result …);
    `institution_id` is the institution it belongs to (the visibility rule of its kind decides who sees it)."""

    __tablename__ = "process_instance"
    __table_args__ = (
        Index("ix_process_instance_subject", "subject_type", "subject_id"),
        Index("ix_process_instance_process_status", "process_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    process_id: Mapped[str] = mapped_column(String(64))  # the process kind: its deployment's process id
    deployment_id: Mapped[int] = mapped_column(ForeignKey("process_deployment.id"), index=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    serializer_version: Mapped[int] = mapped_column(Integer)  # engine/workflow/state.py STATE_VERSION
    lock_version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | completed | incident | cancelled
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __mapper_args__ = {"version_id_col": lock_version}  # optimistic lock on every save

    # The pinned deployment's content hash, read in the same statement as the instance row: loading a workflow
    # needs (deployment id, hash) to find the cached spec, and a second round trip per step cost ~0.6 ms on
    # PostgreSQL (bench/bench_engine.py). Expire it after changing `deployment_id`.
    deployment_hash: Mapped[str] = column_property(
        select(ProcessDeployment.content_hash).where(ProcessDeployment.id == deployment_id).scalar_subquery()
    )


class HumanTask(Base):
    """A READY user task copied out of the workflow state so task lists are plain SQL (never deserialise)."""

    __tablename__ = "human_task"
    __table_args__ = (
        Index("ix_human_task_case_open", "case_id", "completed_at"),
        Index("ix_human_task_process_open", "process_instance_id", "completed_at"),
        # A reset (驳回) makes SpiffWorkflow reuse the task's id: one *open* row per task id, any number closed.
        Index(
            "uq_human_task_open_guid",
            "task_guid",
            unique=True,
            sqlite_where=text("completed_at IS NULL"),
            postgresql_where=text("completed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    process_instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"))
    # The remote-diagnosis case when the task belongs to a case's own process (its visibility and the task
    # lists' patient columns join it directly); NULL for every other process kind.
    case_id: Mapped[int | None] = mapped_column(ForeignKey("remote_case.id", ondelete="CASCADE"))
    task_guid: Mapped[str] = mapped_column(String(36))
    task_name: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(128))
    role_code: Mapped[str] = mapped_column(String(64))
    form: Mapped[str | None] = mapped_column(String(128))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    group_code: Mapped[str | None] = mapped_column(String(64))
    in_pool: Mapped[bool] = mapped_column(Boolean, default=False)
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    outcome: Mapped[str | None] = mapped_column(String(32))  # completed | rejected | cancelled

    exclusions: Mapped[list[HumanTaskExclusion]] = relationship(cascade="all, delete-orphan", lazy="selectin")


class HumanTaskExclusion(Base):
    """Users who may not take a task (separation of duties in review, AC-06)."""

    __tablename__ = "human_task_exclusion"

    task_id: Mapped[int] = mapped_column(ForeignKey("human_task.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), primary_key=True)


class WorkflowTimer(Base):
    """Due times of waiting timer events, fired by `telerad worker` under the process instance's lock."""

    __tablename__ = "workflow_timer"
    __table_args__ = (Index("ix_workflow_timer_due", "fired_at", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    process_instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"), index=True)
    task_guid: Mapped[str] = mapped_column(String(36), unique=True)
    task_name: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WorkflowMessageWait(Base):
    """A message catch a process instance waits on (a BPMN message catch event, receive task or boundary event),
    copied out of the workflow state like the timers, so that whoever delivers a message finds the waiting
    instances with one indexed query instead of loading workflows (engine/workflow/messages.py; issue 14 "events
    out of ingest"). Correlation is by the instance's subject (`process_instance.subject_type/subject_id`)."""

    __tablename__ = "workflow_message_wait"
    __table_args__ = (Index("ix_workflow_message_wait_name", "message_name", "process_instance_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    process_instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"), index=True)
    task_guid: Mapped[str] = mapped_column(String(36), unique=True)
    message_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Incident(Base):
    """A failed service task: the process waits with its state intact until someone retries (ARCHITECTURE.md)."""

    __tablename__ = "incident"

    id: Mapped[int] = mapped_column(primary_key=True)
    process_instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"), index=True)
    task_name: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# Task lists walk these in their ORDER BY (emergency first, then oldest) over open rows only, and stop after one
# page (migration 0004; bench/bench_engine.py).
_OPEN, _UNASSIGNED = "completed_at IS NULL", "completed_at IS NULL AND assignee_id IS NULL"
for _name, _lead, _where in (
    ("ix_human_task_open_list", HumanTask.in_pool, _OPEN),  # the pool (all of it, or 已领取)
    ("ix_human_task_open_mine", HumanTask.assignee_id, _OPEN),  # 我的任务
    ("ix_human_task_open_unassigned", HumanTask.in_pool, _UNASSIGNED),  # group tasks, the pool's 未领取
):
    Index(
        _name,
        _lead,
        HumanTask.emergency.desc(),
        HumanTask.created_at,
        HumanTask.id,
        sqlite_where=text(_where),
        postgresql_where=text(_where),
    )
