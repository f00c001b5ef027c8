"""Storage targets, routing rules, the forward queue and storage tasks (REQ: DCM-02, IMG-03, IMG-07, IMG-08, IMG-09)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow

# The built-in target: the configured object store (`<storage_dir>/dicom`); its root_path is "". An instance whose
# storage_target_id is NULL lives there (the ingest fast path always writes there first).
BUILTIN_TARGET_CODE = "local"
TARGET_KINDS = ("filesystem",)

FORWARD_STATES = ("pending", "sending", "done", "failed")
TASK_KINDS = ("compare", "sync", "migrate")
TASK_STATES = ("pending", "running", "done", "failed", "cancelled")


class StorageTarget(Base):
    """Where instance bytes live (REQ: IMG-09, DCM-02): a content-addressed ObjectStore under `root_path`."""

    __tablename__ = "storage_target"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16), default="filesystem")
    root_path: Mapped[str] = mapped_column(Text, default="")  # "" = the configured store
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)  # where unrouted instances belong
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RoutingRule(Base):
    """One routing rule (REQ: DCM-02, IMG-03, IMG-07). Empty condition lists match anything; every matching
    enabled rule applies, by priority (lower first), until a rule with `stop` matches."""

    __tablename__ = "routing_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    priority: Mapped[int] = mapped_column(Integer, default=100)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    stop: Mapped[bool] = mapped_column(Boolean, default=False)
    # conditions (lists; empty = any)
    node_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    institution_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    modalities: Mapped[list[str]] = mapped_column(JSON, default=list)
    body_parts: Mapped[list[str]] = mapped_column(JSON, default=list)
    sop_classes: Mapped[list[str]] = mapped_column(JSON, default=list)
    study_description_contains: Mapped[str] = mapped_column(String(128), default="")
    series_description_contains: Mapped[str] = mapped_column(String(128), default="")
    # actions
    storage_target_id: Mapped[int | None] = mapped_column(ForeignKey("storage_target.id"))
    storage_compression: Mapped[str] = mapped_column(String(32), default="")  # compression.POLICIES key or ""
    forward_node_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    forward_compression: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ForwardJob(Base):
    """One instance to send to one destination node (REQ: IMG-08). State lives here, so a restart loses nothing:
    `sending` rows whose lease expired go back to `pending`."""

    __tablename__ = "forward_job"
    __table_args__ = (
        UniqueConstraint("instance_id", "node_id", name="uq_forward_job_instance_node"),
        Index("ix_forward_job_due", "state", "next_attempt_at"),
        Index("ix_forward_job_node_state", "node_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("dicom_instance.id", ondelete="CASCADE"))
    node_id: Mapped[int] = mapped_column(ForeignKey("dicom_node.id"))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("routing_rule.id", ondelete="SET NULL"))
    compression: Mapped[str] = mapped_column(String(32), default="")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ForwardAck(Base):
    """What a destination acknowledged (C-STORE success): never sent to that node again (REQ: IMG-08)."""

    __tablename__ = "forward_ack"
    __table_args__ = (UniqueConstraint("node_id", "sop_instance_uid", name="uq_forward_ack_node_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("dicom_node.id"))
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))  # digest of our stored instance when it was sent
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64), default="")  # as sent
    acked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StorageTask(Base):
    """A compare / sync / migrate run between two storage targets, with progress (REQ: IMG-09).

    `cursor` is the last dicom_instance.id handled, so a restarted worker resumes where it stopped.
    """

    __tablename__ = "storage_task"
    __table_args__ = (Index("ix_storage_task_state", "state", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[int] = mapped_column(ForeignKey("storage_target.id"))
    target_id: Mapped[int] = mapped_column(ForeignKey("storage_target.id"))
    filter: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    copied: Mapped[int] = mapped_column(Integer, default=0)
    missing: Mapped[int] = mapped_column(Integer, default=0)  # compare: not on the target
    mismatched: Mapped[int] = mapped_column(Integer, default=0)  # digest differs from the index
    errors: Mapped[int] = mapped_column(Integer, default=0)
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(160), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StoragePlacement(Base):
    """An instance that a routing rule placed on another target (and/or compression): moved by the worker."""

    __tablename__ = "storage_placement"

    instance_id: Mapped[int] = mapped_column(ForeignKey("dicom_instance.id", ondelete="CASCADE"), primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("storage_target.id"))
    compression: Mapped[str] = mapped_column(String(32), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
