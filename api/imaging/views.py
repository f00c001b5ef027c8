"""/api/imaging: DICOM devices (IMG-02), the archive's studies, conflicts (DSEC-06) and unmatched studies (IMG-06),
SR text (DCM-06) and the SCU actions echo / find / retrieve / send (DCM-03/04, VIEW-14 backend).

Every object goes through engine.visibility (a member hospital sees only its own devices and studies; another
institution's id answers 404 with a security alert, AC-02). Every administrative action is audited.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask_smorest import Blueprint
from pydicom.uid import UID
from sqlalchemy import func, or_, select

from api.imaging import schemas as sch
from api.security import current_actor, requires
from engine import audit, uow
from engine.accounts.models import Institution
from engine.accounts.queries import clamp_page, like_pattern
from engine.audit import AuditEvent
from engine.errors import ValidationFailed
from engine.imaging import services as imaging
from engine.imaging import sr, targets
from engine.imaging.exam_models import UnmatchedStudy
from engine.imaging.models import NODE_OPERATIONS, DicomNode, Instance, InstanceConflict, Series, Study
from engine.visibility import get_visible, scoped

blp = Blueprint("imaging", __name__, url_prefix="/api/imaging", description="DICOM 设备与影像归档")


def _inst_ref(inst: Institution | None) -> dict[str, Any] | None:
    if inst is None:
        return None
    return {"id": inst.id, "code": inst.code, "name": inst.name, "kind": inst.kind}


def _institutions(ids: set[int]) -> dict[int, Institution]:
    if not ids:
        return {}
    rows = uow.session().execute(select(Institution).where(Institution.id.in_(sorted(ids)))).unique().scalars()
    return {i.id: i for i in rows}


def node_out(node: DicomNode, inst: Institution | None) -> dict[str, Any]:
    return {
        "id": node.id,
        "aet": node.aet,
        "host": node.host,
        "port": node.port,
        "institution": _inst_ref(inst),
        "allow": [op for op in NODE_OPERATIONS if op in node.operations],
        "tls_required": node.tls_required,
        "cert_fingerprint": node.cert_fingerprint,
        "enabled": node.enabled,
        "description": node.description,
        "created_at": node.created_at,
        "updated_at": node.updated_at,
    }


def _node_detail(node: DicomNode) -> dict[str, Any]:
    return node_out(node, uow.session().get(Institution, node.institution_id))


def _check_host(host: str) -> str:
    host = host.strip()
    if not host or any(c.isspace() for c in host):
        raise ValidationFailed("invalid_host", "主机地址无效", {"fields": {"host": ["主机地址无效"]}})
    return host


def _check_unique(aet: str, host: str, exclude: int | None = None) -> None:
    stmt = select(DicomNode.id).where(DicomNode.aet == aet.strip(), DicomNode.host == host)
    if exclude is not None:
        stmt = stmt.where(DicomNode.id != exclude)
    if uow.session().execute(stmt).first():
        raise ValidationFailed(
            "node_exists", f"设备 {aet.strip()}@{host} 已登记", {"fields": {"aet": ["同一主机上的 AE 名称已存在"]}}
        )


# The engine's device checks answer without a field; the form shows each message next to the field it is about.
_NODE_FIELDS = {
    "invalid_aet": "aet",
    "invalid_host": "host",
    "invalid_port": "port",
    "invalid_fingerprint": "cert_fingerprint",
    "invalid_operation": "allow",
}


@contextmanager
def _node_field_errors() -> Iterator[None]:
    try:
        yield
    except ValidationFailed as exc:
        field = _NODE_FIELDS.get(exc.code)
        if field and not exc.details:
            exc.details = {"fields": {field: [exc.message]}}
        raise


@blp.route("/operations", methods=["GET"])
@blp.response(200, sch.OperationSchema(many=True))
@requires("dicom.node.read")
def operations() -> Any:
    """设备可被允许的操作（echo、store、find、move、get、worklist、mpps）。"""
    return [{"code": code, "name": name} for code, name in NODE_OPERATIONS.items()]


@blp.route("/nodes", methods=["GET"])
@blp.arguments(sch.NodeQuerySchema, location="query")
@blp.response(200, sch.NodeSchema(many=True))
@requires("dicom.node.read")
def list_nodes(args: dict[str, Any]) -> Any:
    """已登记的 DICOM 设备与远程节点（成员医院管理员只看到本院设备）。"""
    stmt = scoped(current_actor(), DicomNode)
    if args.get("q"):
        pattern = like_pattern(args["q"])
        stmt = stmt.where(
            or_(
                DicomNode.aet.like(pattern, escape="\\"),
                DicomNode.host.like(pattern, escape="\\"),
                DicomNode.description.like(pattern, escape="\\"),
            )
        )
    if "institution_id" in args:
        stmt = stmt.where(DicomNode.institution_id == args["institution_id"])
    if "enabled" in args:
        stmt = stmt.where(DicomNode.enabled.is_(args["enabled"]))
    nodes = list(uow.session().execute(stmt.order_by(DicomNode.aet, DicomNode.id)).scalars())
    insts = _institutions({n.institution_id for n in nodes})
    return [node_out(n, insts.get(n.institution_id)) for n in nodes]


@blp.route("/nodes", methods=["POST"])
@blp.arguments(sch.NodeCreateSchema)
@blp.response(201, sch.NodeSchema)
@requires("dicom.node.manage")
def create_node(body: dict[str, Any]) -> Any:
    """登记设备（IMG-02）：AE、主机、端口、所属机构、允许的操作、是否要求 TLS；下一次连接即生效。"""
    actor = current_actor()
    inst = get_visible(actor, Institution, body["institution_id"], object_type="institution")
    host = _check_host(body["host"])
    _check_unique(body["aet"], host)
    with _node_field_errors():
        node = imaging.create_node(
            actor,
            aet=body["aet"],
            host=host,
            port=body["port"],
            institution_code=inst.code,
            allow=body.get("allow") or ["echo", "store"],
            tls_required=body["tls_required"],
            cert_fingerprint=body["cert_fingerprint"],
            description=body["description"],
            enabled=body["enabled"],
        )
    return _node_detail(node)


@blp.route("/nodes/<int:node_id>", methods=["GET"])
@blp.response(200, sch.NodeSchema)
@requires("dicom.node.read")
def get_node(node_id: int) -> Any:
    """设备详情。"""
    return _node_detail(get_visible(current_actor(), DicomNode, node_id, object_type="dicom_node"))


@blp.route("/nodes/<int:node_id>", methods=["PATCH"])
@blp.arguments(sch.NodeUpdateSchema)
@blp.response(200, sch.NodeSchema)
@requires("dicom.node.manage")
def update_node(body: dict[str, Any], node_id: int) -> Any:
    """修改、启用或停用设备（下一次连接即生效，无需重启）。"""
    actor = current_actor()
    node = get_visible(actor, DicomNode, node_id, object_type="dicom_node")
    if "host" in body:
        body["host"] = _check_host(body["host"])
    if "aet" in body or "host" in body:
        _check_unique(body.get("aet", node.aet), body.get("host", node.host), exclude=node.id)
    if not body:
        return _node_detail(node)
    with _node_field_errors():
        updated = imaging.update_node(actor, node.id, **body)
    return _node_detail(updated)


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
        "institution": _inst_ref(inst),
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
    insts = _institutions({r.institution_id for r in rows})
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
    insts = _institutions({c.institution_id for c in conflicts})
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
                "institution": _inst_ref(insts.get(c.institution_id)),
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
    insts = _institutions({u.institution_id for u, _ in rows})
    items = [
        {
            "id": u.id,
            "reason": u.reason,
            "reason_name": UNMATCHED_REASONS.get(u.reason, u.reason),
            "description": u.details,
            "created_at": u.created_at,
            "resolved_at": u.resolved_at,
            "institution": _inst_ref(insts.get(u.institution_id)),
            "study": study_out(st, insts.get(st.institution_id), 0, 0),
        }
        for u, st in rows
    ]
    return {"items": items, "total": total, "page": page, "page_size": page_size}
