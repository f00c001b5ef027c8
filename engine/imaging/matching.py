"""Image matching (REQ: IMG-06): a newly received study is linked to its exam, or queued as unmatched.

Called once per new study by the receive service (engine/imaging/receive.py) in the ingest transaction, inside a
savepoint so that a matching problem never fails the store: by AccessionNumber, else by PatientID (the
institution's patient_no) + modality + study date — always among the exams of the source's institution (REQ:
AC-08, DSEC-03).
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, select, update

from engine import audit, uow
from engine.cases.models import Exam, Patient
from engine.db import utcnow
from engine.imaging.exam_models import UnmatchedStudy
from engine.imaging.ingest import InstanceMeta
from engine.imaging.models import Study
from engine.imaging.source import Source
from engine.imaging.worklist import LOCAL_TZ, local_day_window, move_exam

log = logging.getLogger("telerad.dicom")

# DICOM Modality → the exam categories it satisfies (the case engine registers DR for plain radiography).
_MODALITY_ALIASES: dict[str, tuple[str, ...]] = {
    "DX": ("DX", "DR", "CR"),
    "CR": ("CR", "DR", "DX"),
    "DR": ("DR", "DX", "CR"),
    "PT": ("PT", "NM"),
}


def _modalities(modality: str) -> tuple[str, ...]:
    m = modality.strip().upper()
    return _MODALITY_ALIASES.get(m, (m,))


def _best(exams: list[Exam]) -> Exam | None:
    """Prefer an exam still waiting for images (已登记/检查中), then the newest."""
    if not exams:
        return None
    waiting = [e for e in exams if e.status in ("registered", "in_progress")]
    return max(waiting or exams, key=lambda e: e.id)


@lru_cache(maxsize=1)
def _by_accession() -> Any:
    return select(Exam).where(Exam.institution_id == bindparam("inst"), Exam.accession_no == bindparam("accession"))


@lru_cache(maxsize=1)
def _by_patient_modality_day() -> Any:
    """Built once, like the other per-study statements of ingest (engine/imaging/services.py): building it cost
    about as much as running it, once per new study."""
    when = Exam.exam_time
    start, end = bindparam("start", type_=Exam.created_at.type), bindparam("end", type_=Exam.created_at.type)
    return (
        select(Exam)
        .join(Patient, Patient.id == Exam.patient_id)
        .where(
            Exam.institution_id == bindparam("inst"),
            Patient.institution_id == bindparam("inst"),
            Patient.patient_no == bindparam("patient_no"),
            Exam.modality.in_(bindparam("modalities", expanding=True)),
            # an exam without a scheduled time matches on the day it was registered
            ((when >= start) & (when < end)) | (when.is_(None) & (Exam.created_at >= start) & (Exam.created_at < end)),
        )
    )


def find_exam(institution_id: int, meta: InstanceMeta) -> tuple[Exam | None, str, str]:
    """The exam a study belongs to: (exam, how, reason-if-none). `how` is accession | patient_modality_date."""
    s = uow.session()
    accession = meta.accession_number.strip()
    if accession:
        exams = list(s.execute(_by_accession(), {"inst": institution_id, "accession": accession}).unique().scalars())
        exam = _best(exams)
        if exam is not None:
            return exam, "accession", ""
    patient_no = meta.patient_id.strip()
    if not patient_no or not meta.modality or not meta.study_date:
        return None, "", "检查号无匹配，且缺少患者 ID、设备类型或检查日期"
    try:
        day = datetime.strptime(meta.study_date[:8], "%Y%m%d").replace(tzinfo=LOCAL_TZ).date()
    except ValueError:
        return None, "", f"检查日期无效：{meta.study_date!r}"
    start, end = local_day_window(day)
    params = {
        "inst": institution_id,
        "patient_no": patient_no,
        "modalities": list(_modalities(meta.modality)),
        "start": start,
        "end": end,
    }
    exams = list(s.execute(_by_patient_modality_day(), params).unique().scalars())
    exam = _best(exams)
    if exam is not None:
        return exam, "patient_modality_date", ""
    return (
        None,
        "",
        f"未找到匹配的检查（检查号 {accession or '无'}，患者 ID {patient_no}，{meta.modality}，{meta.study_date}）",
    )


def match_new_study(source: Source, study_id: int, meta: InstanceMeta) -> int | None:
    """Link a study that ingest has just created to its exam, or queue it as unmatched (REQ: IMG-06).

    A matched exam still waiting for images (已登记/检查中) moves to 已检查. Runs in a savepoint of the ingest
    transaction; any error is logged and leaves the study unmatched rather than failing the store. Returns the
    exam id or None.
    """
    s = uow.session()
    try:
        with s.begin_nested():
            return _match(source, study_id, meta)
    except Exception:  # never fail a C-STORE because of matching
        log.exception("image matching failed for study %s", study_id)
        return None


def _match(source: Source, study_id: int, meta: InstanceMeta) -> int | None:
    s = uow.session()
    # REQ: REG-16 — a study its uploader linked to an exam before the worker came keeps it (imaging/upload_link.py)
    linked = s.execute(select(Study.exam_id).where(Study.id == study_id)).scalar_one_or_none()
    if linked is not None:
        return int(linked)
    exam, how, reason = find_exam(source.institution_id, meta)
    if exam is None:
        s.add(
            UnmatchedStudy(
                institution_id=source.institution_id, study_id=study_id, reason="no_exam", details=reason[:256]
            )
        )
        s.flush()
        audit.record(
            source.actor,
            "dicom_study_unmatched",
            object_type="dicom_study",
            object_id=study_id,
            patient_id=meta.patient_id[:64] or None,
            reason=reason[:256],
            details={"study_instance_uid": meta.study_instance_uid, "accession_number": meta.accession_number},
        )
        return None
    s.execute(update(Study).where(Study.id == study_id).values(exam_id=exam.id, updated_at=utcnow()))
    if exam.status in ("registered", "in_progress"):
        move_exam(exam, "examined", source.actor, "影像已到达")
    audit.record(
        source.actor,
        "dicom_study_matched",
        object_type="dicom_study",
        object_id=study_id,
        patient_id=meta.patient_id[:64] or None,
        details={"exam_id": exam.id, "exam_no": exam.exam_no, "by": how, "study_instance_uid": meta.study_instance_uid},
    )
    return exam.id
