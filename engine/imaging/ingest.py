"""Instance ingest: validation, the index rows, conflicts, per-study audit, the orphan sweep (REQ: DSEC-04/05/06,
DSEC-10, IMG-01).

The receive service (engine/imaging/receive.py) calls these for every source and opens the unit of work; these
functions flush and audit, never commit. The rows are stamped with the source's institution (and its device, if
any), never with anything read from the data set (DSEC-03).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.orm import Session

from engine import audit, uow
from engine.actor import Actor
from engine.audit import AuditEvent
from engine.db import UTCDateTime, utcnow
from engine.dicomweb.models import InstanceMetadata
from engine.errors import ValidationFailed
from engine.imaging import outbox
from engine.imaging.models import Instance, InstanceConflict, Series, Study
from engine.imaging.source import Source
from engine.imaging.storage import ObjectStore, StoredObject
from engine.imaging.uids import normalise_uid

# Ingest outcomes; dicom/receiving.py maps each to a named status.
STORED = "stored"
DUPLICATE = "duplicate"
CONFLICT = "conflict"


# -- ingest --------------------------------------------------------------------------------------------------------
@dataclass
class InstanceMeta:
    """The few tags indexed at ingest, read with stop_before_pixels (never the pixel data)."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_date: str = ""
    study_time: str = ""
    accession_number: str = ""
    study_description: str = ""
    study_id: str = ""
    referring_physician: str = ""
    modality: str = ""
    series_number: int | None = None
    body_part: str = ""
    series_description: str = ""
    instance_number: int | None = None


@dataclass
class IngestState:
    """What one receipt — an association, a C-GET, a STOW-RS request, an upload — remembers between its instances:
    who sent them, rows it already upserted, studies it already audited (dicom/groupcommit.py restores these caches
    when a batch rolls back)."""

    source: Source
    studies: dict[str, int] = field(default_factory=dict)  # StudyInstanceUID -> dicom_study.id
    series: dict[str, tuple[int, str]] = field(default_factory=dict)  # SeriesInstanceUID -> (id, modality)
    audited: set[str] = field(default_factory=set)
    stored: dict[str, int] = field(default_factory=dict)  # StudyInstanceUID -> instances stored
    modalities: dict[int, str] = field(default_factory=dict)  # study id -> its only modality, for studies created here
    # Filled by a group-commit batch's prepare step (engine/imaging/ingest_batch.py), consumed by ingest_instance:
    fresh: set[str] = field(default_factory=set)  # StudyInstanceUIDs created for this receipt, not yet staged
    inserted: dict[tuple[str, str], int | None] = field(default_factory=dict)  # (SOP UID, key) -> new row id or None


@dataclass(frozen=True)
class IngestResult:
    outcome: str  # STORED | DUPLICATE | CONFLICT
    instance_id: int | None
    conflict_id: int | None = None
    new_study_id: int | None = None  # the study this instance created (to be matched to its exam, IMG-06)


class InvalidInstance(ValidationFailed):
    """The dataset or command is not acceptable (bad UID, mismatch); nothing is stored (REQ: DSEC-04)."""


# The reason of every refusal of a structurally broken data set starts with this (engine/imaging/validate.py), so
# record_store_failure can count them per device (REQ: DSEC-08).
BROKEN_REASON_PREFIX = "数据集结构损坏："
BROKEN_ALERT_COUNT = 3
BROKEN_ALERT_WINDOW_MIN = 10


_UID_NAMES_ZH = {
    "sop_class_uid": "SOP 类 UID",
    "sop_instance_uid": "SOP 实例 UID",
    "study_instance_uid": "检查实例 UID",
    "series_instance_uid": "序列实例 UID",
    "transfer_syntax_uid": "传输语法 UID",
}


def check_instance(meta: InstanceMeta, affected_sop_class: object, affected_sop_instance: object) -> InstanceMeta:
    """Validate and normalise the UIDs of an incoming instance (REQ: DSEC-04).

    Raises:
        InvalidInstance: a UID does not conform to PS3.5 §9.1, or the command's Affected SOP Class/Instance UID
            differs from the dataset's.
    """
    fields = {  # the refusal names the UID in Chinese (_UID_NAMES_ZH); the machine name goes in details
        "sop_class_uid": meta.sop_class_uid,
        "sop_instance_uid": meta.sop_instance_uid,
        "study_instance_uid": meta.study_instance_uid,
        "series_instance_uid": meta.series_instance_uid,
        "transfer_syntax_uid": meta.transfer_syntax_uid,
    }
    for name, value in fields.items():
        uid = normalise_uid(value)
        if uid is None:
            raise InvalidInstance("invalid_uid", f"{_UID_NAMES_ZH[name]} 不符合 DICOM 规范", {"field": name})
        setattr(meta, name, uid)
    if normalise_uid(affected_sop_instance) != meta.sop_instance_uid:
        raise InvalidInstance("uid_mismatch", "命令中的 SOP 实例 UID 与数据集不一致", {"field": "sop_instance_uid"})
    if normalise_uid(affected_sop_class) != meta.sop_class_uid:
        raise InvalidInstance("uid_mismatch", "命令中的 SOP 类 UID 与数据集不一致", {"field": "sop_class_uid"})
    return meta


# New studies and series as textual statements (valid on SQLite ≥ 3.35 and PostgreSQL alike, compiled once, id
# returned by the INSERT itself), as the instance insert below: the dialect insert() constructs were compiled for
# every new study and series, and each insert was followed by a SELECT for its id. A new one-instance study (DX/DR)
# cost ~5.7 ms of index work, ~10× a new instance of a known study (bench/bench_dicom.py's C-FIND load).
_STUDY_INSERT = text(
    "INSERT INTO dicom_study (institution_id, study_instance_uid, patient_id, patient_name, patient_birth_date, "
    "patient_sex, study_date, study_time, accession_number, study_description, study_id, referring_physician, "
    "modalities, source_node_id, created_at, updated_at) "
    "VALUES (:institution_id, :study_instance_uid, :patient_id, :patient_name, :patient_birth_date, :patient_sex, "
    ":study_date, :study_time, :accession_number, :study_description, :study_id, :referring_physician, "
    ":modalities, :source_node_id, :created_at, :created_at) "
    "ON CONFLICT (institution_id, study_instance_uid) DO NOTHING RETURNING id"
).bindparams(bindparam("created_at", type_=UTCDateTime()))
_SERIES_INSERT = text(
    "INSERT INTO dicom_series (institution_id, study_id, series_instance_uid, modality, series_number, body_part, "
    "series_description, created_at) "
    "VALUES (:institution_id, :study_id, :series_instance_uid, :modality, :series_number, :body_part, "
    ":series_description, :created_at) "
    "ON CONFLICT (institution_id, series_instance_uid) DO NOTHING RETURNING id"
).bindparams(bindparam("created_at", type_=UTCDateTime()))


_STUDY_SELECT = text("SELECT id FROM dicom_study WHERE institution_id = :i AND study_instance_uid = :u")
_SERIES_SELECT = text("SELECT id FROM dicom_series WHERE institution_id = :i AND series_instance_uid = :u")


def _study_id(s: Session, state: IngestState, meta: InstanceMeta) -> tuple[int, bool]:
    """The study's id, and whether this call created it."""
    uid = meta.study_instance_uid
    cached = state.studies.get(uid)
    if cached is not None:
        if uid in state.fresh:  # created by this batch's prepare step for this receipt (ingest_batch.py)
            state.fresh.discard(uid)
            return cached, True
        return cached, False
    inst_id = state.source.institution_id
    created = False
    found = s.execute(_STUDY_SELECT, {"i": inst_id, "u": uid}).scalar()
    if found is None:
        found = s.execute(
            _STUDY_INSERT,
            {
                "institution_id": inst_id,
                "study_instance_uid": uid,
                "patient_id": meta.patient_id,
                "patient_name": meta.patient_name,
                "patient_birth_date": meta.patient_birth_date,
                "patient_sex": meta.patient_sex,
                "study_date": meta.study_date,
                "study_time": meta.study_time,
                "accession_number": meta.accession_number,
                "study_description": meta.study_description,
                "study_id": meta.study_id,
                "referring_physician": meta.referring_physician,
                "modalities": meta.modality,  # its first series' (ModalitiesInStudy; _series_id keeps it current)
                "source_node_id": state.source.node_id,
                "created_at": utcnow(),
            },
        ).scalar()
        if found is not None:  # REQ: IMG-06 — matched to its exam once, by the receive service (not per instance)
            state.modalities[found] = meta.modality
            created = True
        else:  # a concurrent association inserted it first: use theirs
            found = s.execute(_STUDY_SELECT, {"i": inst_id, "u": uid}).scalar_one()
    state.studies[uid] = found
    return found, created


def _series_id(s: Session, state: IngestState, meta: InstanceMeta, study_id: int) -> int:
    uid = meta.series_instance_uid
    cached = state.series.get(uid)
    if cached is not None:
        return cached[0]
    inst_id = state.source.institution_id
    found = s.execute(_SERIES_SELECT, {"i": inst_id, "u": uid}).scalar()
    if found is None:
        found = s.execute(
            _SERIES_INSERT,
            {
                "institution_id": inst_id,
                "study_id": study_id,
                "series_instance_uid": uid,
                "modality": meta.modality,
                "series_number": meta.series_number,
                "body_part": meta.body_part,
                "series_description": meta.series_description,
                "created_at": utcnow(),
            },
        ).scalar()
        if found is None:  # a concurrent association inserted it first
            found = s.execute(_SERIES_SELECT, {"i": inst_id, "u": uid}).scalar_one()
        # ModalitiesInStudy follows the series (recomputed only when a series is new: rare). A study this
        # association created with this series' modality already says so: nothing to recompute.
        if state.modalities.get(study_id) != meta.modality:
            mods = sorted(
                {m for m in s.execute(select(Series.modality).where(Series.study_id == study_id)).scalars() if m}
            )
            s.execute(update(Study).where(Study.id == study_id).values(modalities=",".join(mods), updated_at=utcnow()))
            state.modalities.pop(study_id, None)  # several modalities now: recompute for every new series
    state.series[uid] = (found, meta.modality)
    return int(found)


# One textual statement, valid on SQLite (≥ 3.35) and PostgreSQL alike, so its compiled form is cached: the
# dialect-specific insert() constructs with on_conflict_do_nothing() carry no cache key and were compiled for every
# instance (measured: ~0.4 ms of ~4 ms per instance).
_INSTANCE_INSERT = text(
    "INSERT INTO dicom_instance (institution_id, study_id, series_id, sop_instance_uid, sop_class_uid, "
    "transfer_syntax_uid, instance_number, size, sha256, storage_key, calling_aet, node_id, received_at) "
    "VALUES (:institution_id, :study_id, :series_id, :sop_instance_uid, :sop_class_uid, :transfer_syntax_uid, "
    ":instance_number, :size, :sha256, :storage_key, :calling_aet, :node_id, :received_at) "
    "ON CONFLICT (institution_id, sop_instance_uid) DO NOTHING RETURNING id"
).bindparams(bindparam("received_at", type_=UTCDateTime()))


def ingest_instance(state: IngestState, stored: StoredObject, meta: InstanceMeta) -> IngestResult:
    """Index one instance whose bytes are already durable under `stored.key` (REQ: DSEC-03, DSEC-05, DSEC-06).

    The institution comes from the source (a device's, a user's, a client's), never from the dataset. An identical
    resend (same digest) succeeds without a new row; a different content under the same SOP Instance UID is kept
    aside as an InstanceConflict and the original is left untouched. The first instance of each study in a receipt
    queues one audit event (engine/imaging/outbox.py; not one per instance). The common case — a new instance of a
    study this receipt already saw — is a single INSERT; in a group-commit batch of several receipts the rows were
    resolved for the whole batch beforehand (engine/imaging/ingest_batch.py) and none is needed here.
    """
    s = uow.session()
    src = state.source
    study_id, created = _study_id(s, state, meta)
    new_study = study_id if created else None
    series_id = _series_id(s, state, meta, study_id)
    key = (meta.sop_instance_uid, stored.key)
    new_id = (
        state.inserted.pop(key)
        if key in state.inserted
        else _insert_instance(s, state, stored, meta, study_id, series_id)
    )
    if new_id is not None:
        _stage_study(state, meta, study_id, stored=True, created=created)
        state.stored[meta.study_instance_uid] = state.stored.get(meta.study_instance_uid, 0) + 1
        return IngestResult(STORED, new_id, new_study_id=new_study)
    existing = s.execute(
        select(Instance.id, Instance.sha256).where(
            Instance.institution_id == src.institution_id, Instance.sop_instance_uid == meta.sop_instance_uid
        )
    ).one()
    if existing.sha256 == stored.sha256:
        _stage_study(state, meta, study_id, stored=True, created=created)
        return IngestResult(DUPLICATE, existing.id, new_study_id=new_study)
    _stage_study(state, meta, study_id, stored=False, created=created)
    conflict = InstanceConflict(
        institution_id=src.institution_id,
        instance_id=existing.id,
        sop_instance_uid=meta.sop_instance_uid,
        sop_class_uid=meta.sop_class_uid,
        transfer_syntax_uid=meta.transfer_syntax_uid,
        size=stored.size,
        sha256=stored.sha256,
        storage_key=stored.key,
        calling_aet=src.calling_aet,
        node_id=src.node_id,
    )
    s.add(conflict)
    s.flush()
    audit.record(
        src.actor,
        "dicom_instance_conflict",
        outcome="failure",
        object_type="dicom_instance",
        object_id=existing.id,
        reason="同一 SOP 实例 UID 的内容不同，已另存待核对",
        details={"conflict_id": conflict.id, "sop_instance_uid": meta.sop_instance_uid, "sha256": stored.sha256},
    )
    return IngestResult(CONFLICT, existing.id, conflict.id, new_study_id=new_study)


def _insert_instance(
    s: Session, state: IngestState, stored: StoredObject, meta: InstanceMeta, study_id: int, series_id: int
) -> int | None:
    """The instance's row, or None when its SOP Instance UID is already indexed for the institution."""
    src = state.source
    return s.execute(
        _INSTANCE_INSERT,
        {
            "institution_id": src.institution_id,
            "study_id": study_id,
            "series_id": series_id,
            "sop_instance_uid": meta.sop_instance_uid,
            "sop_class_uid": meta.sop_class_uid,
            "transfer_syntax_uid": meta.transfer_syntax_uid,
            "instance_number": meta.instance_number,
            "size": stored.size,
            "sha256": stored.sha256,
            "storage_key": stored.key,
            "calling_aet": src.calling_aet,
            "node_id": src.node_id,
            "received_at": utcnow(),
        },
    ).scalar()


def _stage_study(state: IngestState, meta: InstanceMeta, study_id: int, *, stored: bool, created: bool) -> None:
    """The study's outbox row for this receipt (engine/imaging/outbox.py): its audit event on the first instance
    stored or resent in this receipt — one per study and receipt, not per instance — and its exam match if this
    receipt created it (REQ: DSEC-10, IMG-06)."""
    uid = meta.study_instance_uid
    audit_it = stored and uid not in state.audited
    if audit_it:
        state.audited.add(uid)
    if audit_it or created:
        study = {
            "study_instance_uid": uid,
            "accession_number": meta.accession_number,
            "patient_id": meta.patient_id,
            "modality": meta.modality,
            "study_date": meta.study_date,
        }
        outbox.stage_study(state.source, study_id, study, audited=audit_it, new_study=created)


def record_store_failure(state: IngestState, reason: str, details: dict[str, Any]) -> None:
    """A refused instance (bad UID, mismatch, no space, broken data set): audited as a failure of its sender (REQ:
    DSEC-04, DSEC-10). The third broken data set from one sender within 10 minutes raises a security alert
    (DSEC-08)."""
    src = state.source
    object_type, object_id = src.audit_object
    audit.record(
        src.actor,
        "dicom_store_failed",
        outcome="failure",
        object_type=object_type,
        object_id=object_id,
        reason=reason,
        details={**details, "via": src.via},
    )
    if reason.startswith(BROKEN_REASON_PREFIX):
        alert_repeated_broken(src.actor, object_type, object_id, src.name)


def alert_repeated_broken(actor: Actor, object_type: str, object_id: object, sender: str) -> None:
    """After a broken data set was audited as a `dicom_store_failed` event of (object_type, object_id) — a device,
    or any other sender: one security alert per sender and window once it has sent BROKEN_ALERT_COUNT broken data
    sets within BROKEN_ALERT_WINDOW_MIN minutes (REQ: DSEC-08). Counted from the audit log, so across associations
    and receiver processes; runs only on that refusal path."""
    s = uow.session()
    since = utcnow() - timedelta(minutes=BROKEN_ALERT_WINDOW_MIN)
    oid = str(object_id)
    s.flush()
    broken = s.execute(
        select(func.count(AuditEvent.id)).where(
            AuditEvent.event_type == "dicom_store_failed",
            AuditEvent.object_type == object_type,
            AuditEvent.object_id == oid,
            AuditEvent.ts > since,
            AuditEvent.reason.startswith(BROKEN_REASON_PREFIX, autoescape=True),
        )
    ).scalar_one()
    if broken < BROKEN_ALERT_COUNT:
        return
    alerted = s.execute(
        select(func.count(AuditEvent.id)).where(
            AuditEvent.event_type == "security_alert",
            AuditEvent.object_type == object_type,
            AuditEvent.object_id == oid,
            AuditEvent.ts > since,
            AuditEvent.reason.startswith(_BROKEN_ALERT_REASON, autoescape=True),
        )
    ).scalar_one()
    if alerted:
        return
    audit.record(
        actor,
        "security_alert",
        outcome="failure",
        object_type=object_type,
        object_id=object_id,
        reason=f"{_BROKEN_ALERT_REASON}{sender} 在 {BROKEN_ALERT_WINDOW_MIN} 分钟内发送了 {broken} 个结构损坏的数据集",
        details={
            "code": "broken_datasets",
            "count": broken,
            "window_min": BROKEN_ALERT_WINDOW_MIN,
            "dicom_event": "110113",  # Security Alert
        },
    )


_BROKEN_ALERT_REASON = "反复收到结构损坏的影像数据："


def referenced_keys(keys: list[str]) -> set[str]:
    """The subset of storage keys that an instance or conflict row names (for the store's sweeper)."""
    s = uow.session()
    found = set(s.execute(select(Instance.storage_key).where(Instance.storage_key.in_(keys))).scalars())
    found |= set(
        s.execute(select(InstanceConflict.storage_key).where(InstanceConflict.storage_key.in_(keys))).scalars()
    )
    return found


def forget_derived(keys: list[str]) -> None:
    """Delete what was derived from the stored files `keys` — no row names them any more, their files are gone: their
    WADO-RS metadata templates (issue 16, engine/dicomweb/models.py) — in the current unit of work."""
    if keys:
        uow.session().execute(delete(InstanceMetadata).where(InstanceMetadata.storage_key.in_(keys)))


def sweep_store(actor: Actor, store: ObjectStore, older_than_min: int) -> int:
    """Remove orphan files (no instance or conflict row) and stale temp files older than the limit (REQ: DSEC-05).

    Each batch of keys is checked against the index in the current unit of work, in which the removed files'
    metadata rows (issue 16) are deleted too. Audited when anything was removed.
    """
    removed = store.sweep(referenced_keys, older_than_s=older_than_min * 60, removed_keys=forget_derived)
    if removed:
        audit.record(actor, "dicom_orphans_swept", details={"removed": removed, "older_than_min": older_than_min})
    return removed
