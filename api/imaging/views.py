"""/api/imaging: the archive's studies, conflicts (DSEC-06) and unmatched studies (IMG-06),
SR text (DCM-06). Devices are in node_views.py, the SCU actions in scu_views.py, routing in routing_views.py.

Every object goes through engine.visibility (a member hospital sees only its own devices and studies; another
institution's id answers 404 with a security alert, AC-02). Every administrative action is audited.
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from pydicom.uid import UID
from sqlalchemy import func, or_, select

from api.imaging import schemas as sch
from api.imaging.refs import inst_ref, institutions_by_id
from api.security import current_actor, requires
from engine import audit, uow
from engine.accounts.models import Institution
from engine.accounts.queries import clamp_page, like_pattern
from engine.audit import AuditEvent
from engine.errors import ValidationFailed
from engine.imaging import sr, targets
from engine.imaging.exam_models import UnmatchedStudy
from engine.imaging.models import DicomNode, Instance, InstanceConflict, Series, Study
from engine.visibility import get_visible, scoped

blp = Blueprint("imaging", __name__, url_prefix="/api/imaging", description="影像归档：检查、冲突与未匹配影像")


# --- studies ---------------------------------------------------------------------------------------------------
def _counts(study_ids: list[int]) -> tuple[dict[int, int], dict[int, int]]:
    if not study_ids:
        return {}, {}
    s = uow.session()
    series = dict(
        s.execute(
            select(Series.study_id, func.count(Series.id))
            .where(Series.study_id.in_(study_ids))
            .group_by(Series.study_id)
        ).all()
    )
    instances = dict(
        s.execute(
            select(Instance.study_id, func.count(Instance.id))
            .where(Instance.study_id.in_(study_ids))
            .group_by(Instance.study_id)
        ).all()
    )
    return series, instances


def study_out(study: Study, inst: Institution | None, n_series: int, n_instances: int) -> dict[str, Any]:
    return {
        "id": study.id,
        "study_instance_uid": study.study_instance_uid,
        "patient_id": study.patient_id,
        "patient_name": study.patient_name,
        "patient_sex": study.patient_sex,
        "patient_birth_date": study.patient_birth_date,
        "study_date": study.study_date,
        "study_time": study.study_time,
        "accession_number": study.accession_number,
        "study_description": study.study_description,
        "modalities": study.modality_list,
        "institution": inst_ref(inst),
        "series_count": n_series,
        "instance_count": n_instances,
        "exam_id": study.exam_id,
        "created_at": study.created_at,
    }


def _da(value: str) -> str:
    return value.replace("-", "")


@blp.route("/studies", methods=["GET"])
@blp.arguments(sch.StudyQuerySchema, location="query")
@blp.response(200, sch.StudyPageSchema)
@requires("image.read")
def list_studies(args: dict[str, Any]) -> Any:
    """影像检查列表：成员医院只看到本院的检查，中心医院看到全部（AC-02, AC-08）。"""
    actor = current_actor()
    page, page_size = clamp_page(args.get("page"), args.get("page_size"))
    stmt = scoped(actor, Study)
    if args.get("q"):
        pattern = like_pattern(args["q"])
        stmt = stmt.where(
            or_(
                Study.patient_name.like(pattern, escape="\\"),
                Study.patient_id.like(pattern, escape="\\"),
                Study.accession_number.like(pattern, escape="\\"),
                Study.study_description.like(pattern, escape="\\"),
            )
        )
    if args.get("modality"):
        mod = args["modality"].upper()
        stmt = stmt.where(("," + Study.modalities + ",").like(f"%,{mod},%"))
    if args.get("date_from"):
        stmt = stmt.where(Study.study_date >= _da(args["date_from"]), Study.study_date != "")
    if args.get("date_to"):
        stmt = stmt.where(Study.study_date <= _da(args["date_to"]), Study.study_date != "")
    if "institution_id" in args:
        stmt = stmt.where(Study.institution_id == args["institution_id"])
    s = uow.session()
    total = s.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = list(
        s.execute(
            stmt.order_by(Study.study_date.desc(), Study.id.desc()).offset((page - 1) * page_size).limit(page_size)
        ).scalars()
    )
    n_series, n_instances = _counts([r.id for r in rows])
    insts = institutions_by_id({r.institution_id for r in rows})
    items = [study_out(r, insts.get(r.institution_id), n_series.get(r.id, 0), n_instances.get(r.id, 0)) for r in rows]
    return {"items": items, "total": total, "page": page, "page_size": page_size}


def _sop_class_name(uid: str) -> str:
    name = UID(uid).name
    return name if name != uid else ""


def instance_out(inst: Instance) -> dict[str, Any]:
    return {
        "id": inst.id,
        "sop_instance_uid": inst.sop_instance_uid,
        "sop_class_uid": inst.sop_class_uid,
        "sop_class_name": _sop_class_name(inst.sop_class_uid),
        "transfer_syntax_uid": inst.transfer_syntax_uid,
        "instance_number": inst.instance_number,
        "size": inst.size,
        "received_at": inst.received_at,
        "is_sr": sr.is_sr_class(inst.sop_class_uid),
    }


@blp.route("/studies/<int:study_id>", methods=["GET"])
@blp.response(200, sch.StudyDetailSchema)
@requires("image.read")
def get_study(study_id: int) -> Any:
    """检查详情：序列与实例（SR 实例可查看文本内容）。"""
    actor = current_actor()
    study = get_visible(actor, Study, study_id, object_type="dicom_study")
    s = uow.session()
    series = list(
        s.execute(select(Series).where(Series.study_id == study.id).order_by(Series.series_number, Series.id)).scalars()
    )
    instances = list(
        s.execute(
            select(Instance).where(Instance.study_id == study.id).order_by(Instance.instance_number, Instance.id)
        ).scalars()
    )
    by_series: dict[int, list[dict[str, Any]]] = {}
    for inst in instances:
        by_series.setdefault(inst.series_id, []).append(instance_out(inst))
    source = s.get(DicomNode, study.source_node_id) if study.source_node_id else None
    out = study_out(study, s.get(Institution, study.institution_id), len(series), len(instances))
    out.update(
        referring_physician=study.referring_physician,
        source_aet=source.aet if source else None,
        series=[
            {
                "id": se.id,
                "series_instance_uid": se.series_instance_uid,
                "modality": se.modality,
                "series_number": se.series_number,
                "body_part": se.body_part,
                "series_description": se.series_description,
                "instances": by_series.get(se.id, []),
            }
            for se in series
        ],
    )
    audit.record(
        actor,
        "dicom_study_viewed",
        object_type="dicom_study",
        object_id=study.id,
        patient_id=study.patient_id[:64] or None,
        details={"study_instance_uid": study.study_instance_uid, "dicom_event": "110103"},
    )
    return out


@blp.route("/instances/<int:instance_id>/sr", methods=["GET"])
@blp.response(200, sch.SrDocumentSchema)
@requires("image.read")
def instance_sr(instance_id: int) -> Any:
    """结构化报告（SR）的文本内容，按内容树返回（DCM-06, IMG-05）。"""
    actor = current_actor()
    inst = get_visible(actor, Instance, instance_id, object_type="dicom_instance")
    if not sr.is_sr_class(inst.sop_class_uid):
        raise ValidationFailed("not_sr", "该实例不是结构化报告（SR）")
    doc = sr.read_sr(targets.instance_path(inst))
    study = uow.session().get(Study, inst.study_id)
    audit.record(
        actor,
        "dicom_sr_viewed",
        object_type="dicom_instance",
        object_id=inst.id,
        patient_id=(study.patient_id[:64] or None) if study else None,
        details={"sop_instance_uid": inst.sop_instance_uid, "dicom_event": "110103"},
    )
    return {"instance_id": inst.id, "sop_class_uid": inst.sop_class_uid, **doc}


# --- conflicts (DSEC-06) ----------------------------------------------------------------------------------------
def _resolutions(conflict_ids: list[int]) -> dict[int, AuditEvent]:
    """The audit event that resolved each conflict (the note lives in the audit trail, never in the row)."""
    if not conflict_ids:
        return {}
    rows = uow.session().execute(
        select(AuditEvent)
        .where(
            AuditEvent.event_type == "dicom_conflict_resolved",
            AuditEvent.object_type == "dicom_conflict",
            AuditEvent.object_id.in_([str(i) for i in conflict_ids]),
        )
        .order_by(AuditEvent.id)
    )
    return {int(e.object_id): e for e in rows.scalars() if e.object_id}


def conflict_rows(conflicts: list[InstanceConflict]) -> list[dict[str, Any]]:
    s = uow.session()
    inst_ids = {c.instance_id for c in conflicts}
    originals = (
        {i.id: i for i in s.execute(select(Instance).where(Instance.id.in_(sorted(inst_ids)))).scalars()}
        if inst_ids
        else {}
    )
    study_ids = {i.study_id for i in originals.values()}
    studies = (
        {st.id: st for st in s.execute(select(Study).where(Study.id.in_(sorted(study_ids)))).scalars()}
        if study_ids
        else {}
    )
    insts = institutions_by_id({c.institution_id for c in conflicts})
    done = _resolutions([c.id for c in conflicts])
    out = []
    for c in conflicts:
        orig = originals.get(c.instance_id)
        study = studies.get(orig.study_id) if orig else None
        ev = done.get(c.id)
        out.append(
            {
                "id": c.id,
                "status": c.status,
                "institution": inst_ref(insts.get(c.institution_id)),
                "sop_instance_uid": c.sop_instance_uid,
                "sop_class_uid": c.sop_class_uid,
                "size": c.size,
                "sha256": c.sha256,
                "calling_aet": c.calling_aet,
                "received_at": c.received_at,
                "instance_id": c.instance_id,
                "original_size": orig.size if orig else 0,
                "original_sha256": orig.sha256 if orig else "",
                "original_received_at": orig.received_at if orig else None,
                "study_id": study.id if study else 0,
                "study_instance_uid": study.study_instance_uid if study else "",
                "patient_name": study.patient_name if study else "",
                "resolved_by": ev.username if ev else None,
                "resolved_at": ev.ts if ev else None,
                "note": (ev.details or {}).get("note") if ev else None,
            }
        )
    return out


@blp.route("/conflicts", methods=["GET"])
@blp.arguments(sch.ConflictQuerySchema, location="query")
@blp.response(200, sch.ConflictPageSchema)
@requires("dicom.conflict.manage")
def list_conflicts(args: dict[str, Any]) -> Any:
    """内容冲突：同一 UID、不同内容的重复发送，原影像保持不变（DSEC-06）。"""
    page, page_size = clamp_page(args.get("page"), args.get("page_size"))
    stmt = scoped(current_actor(), InstanceConflict)
    if args.get("status"):
        stmt = stmt.where(InstanceConflict.status == args["status"])
    s = uow.session()
    total = s.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = list(
        s.execute(stmt.order_by(InstanceConflict.id.desc()).offset((page - 1) * page_size).limit(page_size)).scalars()
    )
    return {"items": conflict_rows(rows), "total": total, "page": page, "page_size": page_size}


@blp.route("/conflicts/<int:conflict_id>/resolve", methods=["POST"])
@blp.arguments(sch.ConflictResolveSchema)
@blp.response(200, sch.ConflictSchema)
@requires("dicom.conflict.manage")
def resolve_conflict(body: dict[str, Any], conflict_id: int) -> Any:
    """标记冲突已处理（保留原影像），处理说明写入审计记录。"""
    actor = current_actor()
    conflict = get_visible(actor, InstanceConflict, conflict_id, object_type="dicom_conflict")
    if conflict.status == "resolved":
        raise ValidationFailed("already_resolved", "该冲突已处理")
    conflict.status = "resolved"
    uow.session().flush()
    audit.record(
        actor,
        "dicom_conflict_resolved",
        object_type="dicom_conflict",
        object_id=conflict.id,
        details={"note": body["note"], "sop_instance_uid": conflict.sop_instance_uid, "kept": "original"},
    )
    return conflict_rows([conflict])[0]


UNMATCHED_REASONS = {"no_exam": "无对应检查申请", "ambiguous": "匹配到多个检查申请"}


# --- unmatched studies (IMG-06) --------------------------------------------------------------------------------
@blp.route("/unmatched", methods=["GET"])
@blp.arguments(sch.UnmatchedQuerySchema, location="query")
@blp.response(200, sch.UnmatchedPageSchema)
@requires("dicom.unmatched.read")
def list_unmatched(args: dict[str, Any]) -> Any:
    """未匹配到检查申请的影像检查（按检查号，或患者 ID + 设备类型 + 日期均未匹配）。"""
    actor = current_actor()
    page, page_size = clamp_page(args.get("page"), args.get("page_size"))
    stmt = scoped(actor, UnmatchedStudy, select(UnmatchedStudy, Study).join(Study, Study.id == UnmatchedStudy.study_id))
    if args.get("status", "open") == "open":
        stmt = stmt.where(UnmatchedStudy.resolved_at.is_(None))
    else:
        stmt = stmt.where(UnmatchedStudy.resolved_at.is_not(None))
    s = uow.session()
    total = s.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = s.execute(stmt.order_by(UnmatchedStudy.id.desc()).offset((page - 1) * page_size).limit(page_size)).all()
    insts = institutions_by_id({u.institution_id for u, _ in rows})
    items = [
        {
            "id": u.id,
            "reason": u.reason,
            "reason_name": UNMATCHED_REASONS.get(u.reason, u.reason),
            "description": u.details,
            "created_at": u.created_at,
            "resolved_at": u.resolved_at,
            "institution": inst_ref(insts.get(u.institution_id)),
            "study": study_out(st, insts.get(st.institution_id), 0, 0),
        }
        for u, st in rows
    ]
    return {"items": items, "total": total, "page": page, "page_size": page_size}
