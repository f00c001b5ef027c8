"""Patients, exams, remote-diagnosis cases, their history, work groups and dispatch policies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.accounts.models import Institution, User
from engine.db import Base, UTCDateTime, utcnow
from engine.pinyin import keep_initials
from engine.workflow.models import ProcessInstance

# UX.md R2: the fixed exam status set, in display order, with Chinese labels.
EXAM_STATUSES: dict[str, str] = {
    "registered": "已登记",
    "in_progress": "检查中",  # REQ: DCM-05 — MPPS IN PROGRESS from the modality
    "examined": "已检查",
    "awaiting": "待诊断",
    "preliminary": "初步报告",
    "pending_review": "待审核",
    "review_rejected": "审核驳回",
    "reviewed": "已审核",
    "released": "已发布",
    "printed": "已打印",
    "corrected": "已更正",
}

# Legal transitions; anything else is refused (you cannot report before images arrive, nor review before a report).
EXAM_TRANSITIONS: dict[str, frozenset[str]] = {
    # REQ: DCM-05: MPPS N-CREATE → 检查中, N-SET COMPLETED → 已检查, DISCONTINUED → back to 已登记; images
    # matched to a registered exam (IMG-06) still move it straight to 已检查.
    "registered": frozenset({"in_progress", "examined"}),
    "in_progress": frozenset({"examined", "registered"}),
    "examined": frozenset({"awaiting"}),
    "awaiting": frozenset({"preliminary"}),
    "preliminary": frozenset({"pending_review", "review_rejected"}),
    "pending_review": frozenset({"reviewed", "review_rejected"}),
    # review_rejected again: after an L3 驳回 back to L2, the reporting doctor may in turn 驳回 back to L1.
    "review_rejected": frozenset({"preliminary", "pending_review", "review_rejected"}),
    "reviewed": frozenset({"released"}),
    "released": frozenset({"printed", "corrected"}),
    "printed": frozenset({"printed", "corrected"}),
    "corrected": frozenset({"printed"}),
}


class Patient(Base):
    """A patient as known to one institution (identifiers are per institution; DSEC-03)."""

    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("institution_id", "patient_no", name="uq_patient_institution_no"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    patient_no: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64), index=True)
    name_pinyin: Mapped[str] = mapped_column(String(64), default="", server_default=text("''"), index=True)
    sex: Mapped[str] = mapped_column(String(1))
    birth_date: Mapped[date | None] = mapped_column(Date)
    phone_enc: Mapped[str | None] = mapped_column(Text)
    phone_masked: Mapped[str | None] = mapped_column(String(32))
    id_number_enc: Mapped[str | None] = mapped_column(Text)
    id_number_masked: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


keep_initials(Patient.name, "name_pinyin")


class Exam(Base):
    """One imaging exam (检查) with its status (UX.md R2)."""

    __tablename__ = "exam"
    # The Modality Worklist reads registered exams of one institution by scheduled time (REQ: DCM-05).
    __table_args__ = (Index("ix_exam_inst_status_time", "institution_id", "status", "exam_time"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    exam_no: Mapped[str] = mapped_column(String(64), unique=True)
    accession_no: Mapped[str | None] = mapped_column(String(64), index=True)
    modality: Mapped[str] = mapped_column(String(16))
    body_part: Mapped[str] = mapped_column(String(64))
    exam_item: Mapped[str] = mapped_column(String(128))
    exam_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(32), default="registered")
    # Modality Worklist: the AE title of the modality the exam is scheduled on (ScheduledStationAETitle).
    scheduled_station_aet: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    patient: Mapped[Patient] = relationship(lazy="joined")


case_exam = Table(
    "case_exam",
    Base.metadata,
    Column("case_id", ForeignKey("remote_case.id", ondelete="CASCADE"), primary_key=True),
    Column("exam_id", ForeignKey("exam.id"), primary_key=True, index=True),
)


class Case(Base):
    """A remote-diagnosis request (远程诊断申请) holding one or more exams; its process instance holds the workflow.

    `status` mirrors the process instance's status (lists filter on it without a join)."""

    __tablename__ = "remote_case"
    __table_args__ = (
        Index("ix_remote_case_inst_status", "requesting_institution_id", "status", "id"),
        # 我的诊断记录's date window (the chip counts, REC-03/07): central side, and one member hospital.
        Index("ix_remote_case_created_at", "created_at"),
        Index("ix_remote_case_inst_created", "requesting_institution_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_no: Mapped[str] = mapped_column(String(32), unique=True)
    requesting_institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"))
    requester_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    clinical_info: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | completed | incident | cancelled
    dispatch_mode: Mapped[str | None] = mapped_column(String(16))
    target_group: Mapped[str | None] = mapped_column(String(64))
    # The case's own remote-diagnosis process, which owns its workflow state (issue 14).
    process_instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # 报告时限 (UX.md R3): the limit that applied when the case was created and when it falls due
    # (engine/cases/turnaround.py); the worklists' countdown and the process's sla_timer read due_at.
    tat_limit_minutes: Mapped[int | None] = mapped_column()
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)

    # Loaded with the case row when locking it (engine/cases/services.py lock_case), otherwise on first use.
    process: Mapped[ProcessInstance] = relationship(lazy="select")
    requesting_institution: Mapped[Institution] = relationship(lazy="joined")
    requester: Mapped[User] = relationship(lazy="joined")
    patient: Mapped[Patient] = relationship(lazy="joined")
    exams: Mapped[list[Exam]] = relationship(secondary=case_exam, lazy="selectin", order_by="Exam.id")

    @property
    def deployment_id(self) -> int:
        """The deployment the case's process is pinned to."""
        return self.process.deployment_id


class CaseEvent(Base):
    """Append-only history of a case (REQ: REC-04); rejected review rounds are logged here, not in task data."""

    __tablename__ = "case_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("remote_case.id", ondelete="CASCADE"), index=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    actor_name: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(32))
    task_name: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class WorkGroup(Base):
    """A team of central-hospital doctors that tasks can be directed to (REQ: DISP-02, REC-06)."""

    __tablename__ = "work_group"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64))


class WorkGroupMember(Base):
    __tablename__ = "work_group_member"

    group_id: Mapped[int] = mapped_column(ForeignKey("work_group.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class DispatchPolicy(Base):
    """The dispatch mode configured for a requesting hospital and/or exam category (REQ: DISP-01/02).

    Most specific row wins (institution + modality, institution, modality, default). Mode `rule` hands the
    decision to the DMN table of the process.
    """

    __tablename__ = "dispatch_policy"

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institution.id"))
    modality: Mapped[str | None] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16))  # directed | manual | rule | pool
    target_group: Mapped[str | None] = mapped_column(String(64))
    target_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class TurnaroundRule(Base):
    """A report turnaround limit (报告时限规则, UX.md R3): the most specific enabled row matching a case applies
    (engine/cases/turnaround.py). A criterion left empty matches anything; `body_part_keyword` matches when the
    exam's body part contains it (头 → 头颅, 头部)."""

    __tablename__ = "turnaround_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institution.id"))
    modality: Mapped[str | None] = mapped_column(String(16))
    body_part_keyword: Mapped[str | None] = mapped_column(String(32))
    priority: Mapped[str | None] = mapped_column(String(16))  # emergency | routine | None (either)
    patient_class: Mapped[str | None] = mapped_column(String(16))  # outpatient | inpatient | None (either)
    limit_minutes: Mapped[int] = mapped_column()
    working_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    institution: Mapped[Institution | None] = relationship(lazy="joined")
