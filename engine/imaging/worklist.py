"""Modality Worklist and MPPS over the case engine's exams (REQ: DCM-05, AC-08).

Registered exams (已登记) of the calling device's institution are its scheduled procedure steps; a modality's MPPS
N-CREATE "IN PROGRESS" moves the exam to 检查中, N-SET "COMPLETED" to 已检查 and "DISCONTINUED" back to 已登记.
Callers (dicom/worklist.py) open the unit of work; these functions flush and audit, never commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, select

from engine import audit, uow
from engine.actor import Actor
from engine.cases.models import EXAM_STATUSES, EXAM_TRANSITIONS, Exam, Patient
from engine.db import utcnow
from engine.imaging.exam_models import (
    MPPS_COMPLETED,
    MPPS_DISCONTINUED,
    MPPS_IN_PROGRESS,
    MPPS_STATUSES,
    MppsInstance,
)
from engine.imaging.queries import QueryError, _condition, _Key
from engine.imaging.services import NodeInfo
from engine.imaging.uids import normalise_uid

# Dates on the wire are local (China Standard Time); exam times are stored in UTC (DAT-06).
LOCAL_TZ = ZoneInfo("Asia/Shanghai")
# Root for the StudyInstanceUID a worklist item announces: 2.25 + a UUID derived from the exam number, so the
# same exam always announces the same UID (PS3.5 B.2).
_EXAM_UID_NAMESPACE = uuid.UUID("1b8e7a52-5b0e-4c55-9a51-3f1f6d1a7c20")


def exam_study_uid(exam_no: str) -> str:
    """The StudyInstanceUID the worklist announces for an exam (stable, ≤ 64 characters)."""
    return f"2.25.{uuid.uuid5(_EXAM_UID_NAMESPACE, exam_no).int}"


def local_day_window(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day, in UTC."""
    start = datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def _parse_da(value: str) -> date:
    try:
        return datetime.strptime(value, "%Y%m%d").replace(tzinfo=UTC).date()
    except ValueError as exc:
        raise QueryError(f"日期格式无效：{value!r}") from exc


def _scheduled_at() -> Any:
    return func.coalesce(Exam.exam_time, Exam.created_at)


def _date_condition(value: str) -> ColumnElement[bool] | None:
    """ScheduledProcedureStepStartDate: a date or a range (`a-`, `-b`, `a-b`) of local dates (PS3.4 C.2.2.2.5)."""
    value = value.strip()
    if not value or value == "*":
        return None
    lo, sep, hi = value.partition("-")
    if not sep:
        hi = lo
    conds = []
    col = _scheduled_at()
    if lo.strip():
        conds.append(col >= local_day_window(_parse_da(lo.strip()))[0])
    if hi.strip():
        conds.append(col < local_day_window(_parse_da(hi.strip()))[1])
    return and_(*conds) if conds else None


@dataclass(frozen=True)
class WorklistQuery:
    """The matching keys of an MWL C-FIND identifier (PS3.4 K.6.1.2), as text; empty = universal match."""

    patient_name: str = ""
    patient_id: str = ""
    accession_number: str = ""
    modality: str = ""
    station_aet: str = ""
    start_date: str = ""
    requested_procedure_id: str = ""


@dataclass(frozen=True)
class WorklistItem:
    """One scheduled procedure step: a registered exam and its patient."""

    exam_id: int
    exam_no: str
    accession_number: str
    modality: str
    body_part: str
    exam_item: str
    station_aet: str
    start: datetime  # local time
    patient_name: str
    patient_id: str
    patient_birth_date: str
    patient_sex: str
    study_instance_uid: str

    @property
    def procedure_description(self) -> str:
        """RequestedProcedureDescription: the exam item, with the body part when the item does not name it."""
        if self.body_part and self.body_part not in self.exam_item:
            return f"{self.exam_item} {self.body_part}".strip()[:64]
        return self.exam_item[:64]


def find_scheduled(node: NodeInfo, q: WorklistQuery, *, limit: int, ip: str | None = None) -> list[WorklistItem]:
    """Registered exams of the node's institution matching `q` (REQ: DCM-05; AC-08 — never another institution's).

    Audited as a query (DICOM audit 110112).

    Raises:
        QueryError: a malformed date range.
    """
    s = uow.session()
    stmt = (
        select(Exam, Patient)
        .join(Patient, Patient.id == Exam.patient_id)
        .where(Exam.institution_id == node.institution_id, Exam.status == "registered")
    )
    keyed = [
        (_Key(Patient.name, "pn"), q.patient_name),
        (_Key(Patient.patient_no, "str"), q.patient_id),
        (_Key(Exam.accession_no, "str"), q.accession_number),
        (_Key(Exam.modality, "str"), q.modality),
        (_Key(Exam.scheduled_station_aet, "str"), q.station_aet),
        (_Key(Exam.exam_no, "str"), q.requested_procedure_id),
    ]
    for key, value in keyed:
        cond = _condition(key, value.replace("^", "")) if key.kind == "pn" else _condition(key, value)
        if cond is not None:
            stmt = stmt.where(cond)
    date_cond = _date_condition(q.start_date)
    if date_cond is not None:
        stmt = stmt.where(date_cond)
    stmt = stmt.order_by(_scheduled_at(), Exam.id).limit(limit)
    items = [
        WorklistItem(
            exam_id=exam.id,
            exam_no=exam.exam_no,
            accession_number=exam.accession_no or "",
            modality=exam.modality,
            body_part=exam.body_part or "",
            exam_item=exam.exam_item or "",
            station_aet=exam.scheduled_station_aet or "",
            start=(exam.exam_time or exam.created_at).astimezone(LOCAL_TZ),
            patient_name=patient.name,
            patient_id=patient.patient_no,
            patient_birth_date=patient.birth_date.strftime("%Y%m%d") if patient.birth_date else "",
            patient_sex=patient.sex if patient.sex in ("M", "F", "O") else "",
            study_instance_uid=exam_study_uid(exam.exam_no),
        )
        for exam, patient in s.execute(stmt).all()
    ]
    audit.record(
        node.actor(ip),
        "dicom_query",
        object_type="dicom_query",
        object_id="WORKLIST",
        details={
            "level": "WORKLIST",
            "keys": {k: v[:64] for k, v in q.__dict__.items() if v.strip() not in ("", "*")},
            "results": len(items),
            "dicom_event": "110112",
        },
    )
    return items


# -- exam status ---------------------------------------------------------------------------------------------------
def move_exam(exam: Exam, to: str, actor: Actor, reason: str) -> bool:
    """Move an exam to `to` when EXAM_TRANSITIONS allows it; audited under `actor` (a device's, for images and
    MPPS). False (and unchanged) otherwise."""
    if exam.status == to or to not in EXAM_TRANSITIONS.get(exam.status, frozenset()):
        return False
    before = exam.status
    exam.status = to
    exam.updated_at = utcnow()
    audit.record(
        actor,
        "exam_status_changed",
        object_type="exam",
        object_id=exam.id,
        reason=reason,
        details={"exam_no": exam.exam_no, "from": before, "to": to, "label": EXAM_STATUSES[to]},
    )
    return True


def _registered_exam_for(node: NodeInfo, accession: str, study_uid: str, patient_id: str, modality: str) -> Exam | None:
    """The exam an MPPS is about: by accession number, else the announced StudyInstanceUID, else the patient's
    single open exam of that modality — always within the device's institution (REQ: AC-08)."""
    s = uow.session()
    open_first = (Exam.status.in_(("registered", "in_progress"))).desc()
    base = select(Exam).where(Exam.institution_id == node.institution_id)
    if accession:
        exam = s.execute(base.where(Exam.accession_no == accession).order_by(open_first, Exam.id.desc())).scalar()
        if exam is not None:
            return exam
    if patient_id:
        candidates = list(
            s.execute(
                base.join(Patient, Patient.id == Exam.patient_id)
                .where(Patient.patient_no == patient_id, Exam.status.in_(("registered", "in_progress")))
                .order_by(Exam.id)
            ).scalars()
        )
        if study_uid:
            for exam in candidates:
                if exam_study_uid(exam.exam_no) == study_uid:
                    return exam
        same_modality = [e for e in candidates if not modality or e.modality == modality]
        if len(same_modality) == 1:
            return same_modality[0]
    return None


# -- MPPS ----------------------------------------------------------------------------------------------------------
class MppsError(Exception):
    """An MPPS request we refuse; `code` names the DIMSE status (dicom/worklist.py maps it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # duplicate | no_such_instance | invalid_value | missing | final
        self.message = message


@dataclass(frozen=True)
class MppsFields:
    """The MPPS attributes we keep (PS3.3 C.4.13/C.4.14)."""

    status: str = ""
    accession_number: str = ""
    study_instance_uid: str = ""
    patient_id: str = ""
    modality: str = ""
    station_aet: str = ""


def create_mpps(node: NodeInfo, ip: str | None, sop_instance_uid: str, f: MppsFields) -> MppsInstance:
    """N-CREATE (REQ: DCM-05): keep the instance; an IN PROGRESS step marks its registered exam 检查中.

    Raises:
        MppsError: missing/invalid UID or status (`missing`, `invalid_value`), or the instance exists (`duplicate`).
    """
    s = uow.session()
    uid = normalise_uid(sop_instance_uid)
    if uid is None:
        raise MppsError("missing", "缺少或无效的 MPPS 实例 UID")
    if f.status != MPPS_IN_PROGRESS:
        raise MppsError("invalid_value", f"N-CREATE 的检查状态须为 IN PROGRESS，收到 {f.status!r}")
    exists = s.execute(
        select(MppsInstance.id).where(
            MppsInstance.institution_id == node.institution_id, MppsInstance.sop_instance_uid == uid
        )
    ).first()
    if exists:
        raise MppsError("duplicate", f"MPPS 实例 {uid} 已存在")
    exam = _registered_exam_for(node, f.accession_number, f.study_instance_uid, f.patient_id, f.modality)
    row = MppsInstance(
        institution_id=node.institution_id,
        sop_instance_uid=uid,
        node_id=node.id,
        exam_id=exam.id if exam else None,
        status=MPPS_IN_PROGRESS,
        accession_number=f.accession_number[:64],
        patient_id=f.patient_id[:64],
        modality=f.modality[:16],
        study_instance_uid=f.study_instance_uid[:64],
        station_aet=f.station_aet[:16],
    )
    s.add(row)
    s.flush()
    if exam is not None:
        move_exam(exam, "in_progress", node.actor(ip), "设备报告检查开始 (MPPS IN PROGRESS)")
    audit.record(
        node.actor(ip),
        "dicom_mpps_created",
        object_type="dicom_mpps",
        object_id=row.id,
        patient_id=f.patient_id[:64] or None,
        details={
            "sop_instance_uid": uid,
            "exam_id": row.exam_id,
            "accession_number": f.accession_number[:64],
            "status": MPPS_IN_PROGRESS,
        },
    )
    return row


def update_mpps(node: NodeInfo, ip: str | None, sop_instance_uid: str, new_status: str | None) -> MppsInstance:
    """N-SET (REQ: DCM-05): COMPLETED → exam 已检查; DISCONTINUED → back to 已登记; other changes are kept as-is.

    Raises:
        MppsError: unknown instance (`no_such_instance`), an unknown status value (`invalid_value`), or the step is
            already COMPLETED/DISCONTINUED (`final`).
    """
    s = uow.session()
    uid = normalise_uid(sop_instance_uid) or ""
    row = s.execute(
        select(MppsInstance).where(
            MppsInstance.institution_id == node.institution_id, MppsInstance.sop_instance_uid == uid
        )
    ).scalar()
    if row is None:
        raise MppsError("no_such_instance", f"MPPS 实例 {uid or sop_instance_uid!r} 不存在")
    if row.status != MPPS_IN_PROGRESS:
        raise MppsError("final", f"MPPS 实例 {uid} 已是 {row.status}，不能再修改")
    if new_status is not None and new_status not in MPPS_STATUSES:
        raise MppsError("invalid_value", f"未知的检查状态 {new_status!r}")
    if new_status in (MPPS_COMPLETED, MPPS_DISCONTINUED):
        row.status = new_status
        exam = s.get(Exam, row.exam_id) if row.exam_id else None
        if exam is not None:
            if new_status == MPPS_COMPLETED:
                move_exam(exam, "examined", node.actor(ip), "设备报告检查完成 (MPPS COMPLETED)")
            else:
                move_exam(exam, "registered", node.actor(ip), "设备报告检查中止 (MPPS DISCONTINUED)")
    row.updated_at = utcnow()
    s.flush()
    audit.record(
        node.actor(ip),
        "dicom_mpps_updated",
        object_type="dicom_mpps",
        object_id=row.id,
        patient_id=row.patient_id or None,
        details={"sop_instance_uid": uid, "exam_id": row.exam_id, "status": row.status},
    )
    return row
