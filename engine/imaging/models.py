"""DICOM devices and the archive index: studies, series, instances and content conflicts (REQ: IMG-02, DSEC-03/06)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow

# What a registered node may ask of us (`--allow`); REQ: DSEC-01.
NODE_OPERATIONS: dict[str, str] = {
    "echo": "连通性测试 (C-ECHO)",
    "store": "发送影像 (C-STORE)",
    "find": "查询 (C-FIND)",
    "move": "调阅 (C-MOVE)",
    "get": "获取 (C-GET)",
    "worklist": "工作列表 (MWL)",
    "mpps": "检查状态 (MPPS)",
}

CONFLICT_STATUSES = ("open", "resolved")


class DicomNode(Base):
    """A registered DICOM device or remote node (modality, member-hospital PACS, 前置机); REQ: IMG-02, DSEC-01.

    The owning institution of everything a node sends comes from this row, never from tags (DSEC-03).
    """

    __tablename__ = "dicom_node"
    __table_args__ = (UniqueConstraint("aet", "host", name="uq_dicom_node_aet_host"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    aet: Mapped[str] = mapped_column(String(16), index=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    allowed_ops: Mapped[str] = mapped_column(String(128), default="echo,store")  # comma list of NODE_OPERATIONS
    tls_required: Mapped[bool] = mapped_column(Boolean, default=False)
    cert_fingerprint: Mapped[str | None] = mapped_column(String(64))  # sha256 of the client certificate (DER), hex
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def operations(self) -> frozenset[str]:
        return frozenset(op for op in self.allowed_ops.split(",") if op)


class Study(Base):
    """A study as received from one institution: the same StudyInstanceUID from two institutions is two rows."""

    __tablename__ = "dicom_study"
    __table_args__ = (
        UniqueConstraint("institution_id", "study_instance_uid", name="uq_dicom_study_inst_uid"),
        # C-FIND at STUDY/PATIENT level filters by institution first, then one of these keys (REQ: AC-08).
        Index("ix_dicom_study_inst_patient", "institution_id", "patient_id"),
        Index("ix_dicom_study_inst_date", "institution_id", "study_date"),
        Index("ix_dicom_study_inst_accession", "institution_id", "accession_number"),
        Index("ix_dicom_study_inst_name", "institution_id", "patient_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"))
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str] = mapped_column(String(324), default="")  # decoded unicode, PN groups kept
    patient_birth_date: Mapped[str] = mapped_column(String(8), default="")
    patient_sex: Mapped[str] = mapped_column(String(16), default="")
    study_date: Mapped[str] = mapped_column(String(8), default="")
    study_time: Mapped[str] = mapped_column(String(16), default="")
    accession_number: Mapped[str] = mapped_column(String(64), default="")
    study_description: Mapped[str] = mapped_column(String(256), default="")
    study_id: Mapped[str] = mapped_column(String(16), default="")
    referring_physician: Mapped[str] = mapped_column(String(324), default="")
    modalities: Mapped[str] = mapped_column(String(128), default="")  # "CT,SR": ModalitiesInStudy
    exam_id: Mapped[int | None] = mapped_column(ForeignKey("exam.id"), index=True)
    source_node_id: Mapped[int | None] = mapped_column(ForeignKey("dicom_node.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def modality_list(self) -> list[str]:
        return [m for m in self.modalities.split(",") if m]


class Series(Base):
    """A series of a study (tenant-stamped like its study)."""

    __tablename__ = "dicom_series"
    __table_args__ = (
        UniqueConstraint("institution_id", "series_instance_uid", name="uq_dicom_series_inst_uid"),
        Index("ix_dicom_series_study", "study_id", "series_number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"))
    study_id: Mapped[int] = mapped_column(ForeignKey("dicom_study.id"))
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str] = mapped_column(String(16), default="")
    series_number: Mapped[int | None] = mapped_column(Integer)
    body_part: Mapped[str] = mapped_column(String(64), default="")
    series_description: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Instance(Base):
    """One stored SOP instance: its bytes live in the object store under `storage_key` (content-addressed)."""

    __tablename__ = "dicom_instance"
    __table_args__ = (
        UniqueConstraint("institution_id", "sop_instance_uid", name="uq_dicom_instance_inst_uid"),
        Index("ix_dicom_instance_series", "series_id", "instance_number"),
        Index("ix_dicom_instance_study", "study_id"),
        Index("ix_dicom_instance_storage_key", "storage_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"))
    study_id: Mapped[int] = mapped_column(ForeignKey("dicom_study.id"))
    series_id: Mapped[int] = mapped_column(ForeignKey("dicom_series.id"))
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    instance_number: Mapped[int | None] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(96))
    calling_aet: Mapped[str] = mapped_column(String(16), default="")
    node_id: Mapped[int | None] = mapped_column(ForeignKey("dicom_node.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # REQ: IMG-09: the storage target holding the bytes; NULL = the configured store (engine/imaging/targets.py)
    storage_target_id: Mapped[int | None] = mapped_column(ForeignKey("storage_target.id"))


class InstanceConflict(Base):
    """A re-sent SOP instance whose content differs from the stored one: kept aside for review (REQ: DSEC-06).

    The original instance row and file are never touched.
    """

    __tablename__ = "dicom_instance_conflict"
    __table_args__ = (Index("ix_dicom_instance_conflict_inst_status", "institution_id", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"))
    instance_id: Mapped[int] = mapped_column(ForeignKey("dicom_instance.id"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(96), index=True)
    calling_aet: Mapped[str] = mapped_column(String(16), default="")
    node_id: Mapped[int | None] = mapped_column(ForeignKey("dicom_node.id"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
