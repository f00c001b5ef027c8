"""/api/imaging routing, forwarding and storage administration (REQ: DCM-02, IMG-03, IMG-04, IMG-07, IMG-08, IMG-09).

- Routing rules (DCM-02, IMG-03, IMG-07): CRUD through engine.imaging.routing, which audits each change and bumps
  the rule cache (RuleCache notices the new version on the next ingest in every process).
- Storage targets and compare / sync / migrate tasks with progress (IMG-09).
- The forward queue (IMG-08): jobs with state, attempts, next attempt and last error; retry of a failed job;
  a study queued to a node (incremental: what the node acknowledged is never sent again).

Routing rules, storage targets and storage tasks are alliance-wide configuration (a rule names devices of any
hospital): only the central hospital's administrators read or change them. The forward queue is scoped per
institution (a member hospital sees the jobs of its own instances; engine.visibility).
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import func, select, update

from api.imaging import routing_schemas as sch
from api.security import current_actor, requires
from engine import audit, uow
from engine.accounts.models import Institution
from engine.accounts.queries import clamp_page
from engine.actor import Actor
from engine.db import utcnow
from engine.errors import Forbidden, NotFound, ValidationFailed
from engine.imaging import compression, forwarding, routing, targets
from engine.imaging.models import DicomNode, Instance, Study
from engine.imaging.routing_models import (
    BUILTIN_TARGET_CODE,
    FORWARD_STATES,
    ForwardJob,
    RoutingRule,
    StorageTarget,
    StorageTask,
)
from engine.visibility import clause, get_visible

blp = Blueprint("imaging_routing", __name__, url_prefix="/api/imaging", description="影像路由规则、转发队列与存储管理")


def _central_only(actor: Actor, what: str) -> None:
    """Alliance-wide configuration: a member hospital's administrator may not read or change it."""
    if not actor.is_central:
        raise Forbidden("central_only", f"{what}由中心医院管理员统一维护")


def _fields_error(code: str, field: str, message: str) -> ValidationFailed:
    return ValidationFailed(code, message, {"fields": {field: [message]}})


# --- compression policies (IMG-04) -----------------------------------------------------------------------------
@blp.route("/compression-policies", methods=["GET"])
@blp.response(200, sch.CompressionPolicySchema(many=True))
@requires("dicom.routing.read")
def compression_policies() -> Any:
    """可选的压缩策略（无损：RLE、JPEG-LS、JPEG 2000；有损：JPEG 2000、JPEG-LS 近无损、JPEG 基线）。"""
    return [{"code": code, "name": p.label, "lossy": p.lossy} for code, p in compression.POLICIES.items()]


# --- routing rules (DCM-02, IMG-03, IMG-07) --------------------------------------------------------------------
def rule_out(rule: RoutingRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "priority": rule.priority,
        "enabled": rule.enabled,
        "stop": rule.stop,
        "node_ids": list(rule.node_ids or []),
        "institution_ids": list(rule.institution_ids or []),
        "modalities": list(rule.modalities or []),
        "body_parts": list(rule.body_parts or []),
        "sop_classes": list(rule.sop_classes or []),
        "study_description_contains": rule.study_description_contains,
        "series_description_contains": rule.series_description_contains,
        "storage_target_id": rule.storage_target_id,
        "storage_compression": rule.storage_compression,
        "forward_node_ids": list(rule.forward_node_ids or []),
        "forward_compression": rule.forward_compression,
        "created_at": rule.created_at,
        "updated_at": rule.updated_at,
    }


def _check_rule_refs(body: dict[str, Any]) -> None:
    """References the engine does not check itself, with field-level Chinese messages."""
    s = uow.session()
    for name in ("node_ids", "forward_node_ids"):
        ids = sorted(set(body.get(name) or []))
        if not ids:
            continue
        nodes = {n.id: n for n in s.execute(select(DicomNode).where(DicomNode.id.in_(ids))).scalars()}
        for node_id in ids:
            if node_id not in nodes:
                raise _fields_error("invalid_node", name, f"节点 {node_id} 不存在")
            if name == "forward_node_ids" and not nodes[node_id].port:
                raise _fields_error("node_no_port", name, f"节点 {nodes[node_id].aet} 未登记端口，不能作为转发目标")
    ids = sorted(set(body.get("institution_ids") or []))
    if ids:
        found = set(s.execute(select(Institution.id).where(Institution.id.in_(ids))).scalars())
        missing = [i for i in ids if i not in found]
        if missing:
            raise _fields_error("invalid_institution", "institution_ids", f"机构 {missing[0]} 不存在")
    if body.get("storage_target_id") is not None:
        target = s.get(StorageTarget, body["storage_target_id"])
        if target is None:
            raise _fields_error("invalid_target", "storage_target_id", "存储目标不存在")
        if not target.enabled:
            raise _fields_error("target_disabled", "storage_target_id", f"存储目标 {target.code} 已停用")


def _get_rule(rule_id: int) -> RoutingRule:
    rule = uow.session().get(RoutingRule, rule_id)
    if rule is None:
        raise NotFound("rule_not_found", "路由规则不存在")
    return rule


@blp.route("/routing/rules", methods=["GET"])
@blp.response(200, sch.RuleSchema(many=True))
@requires("dicom.routing.read")
def list_rules() -> Any:
    """路由规则，按优先级（数字小的先匹配）。"""
    _central_only(current_actor(), "路由规则")
    return [rule_out(r) for r in routing.list_rules()]


@blp.route("/routing/rules", methods=["POST"])
@blp.arguments(sch.RuleCreateSchema)
@blp.response(201, sch.RuleSchema)
@requires("dicom.routing.manage")
def create_rule(body: dict[str, Any]) -> Any:
    """新建路由规则：条件（发送设备、机构、设备类型、部位、SOP 类、描述包含）与动作（存储目标、转发节点、压缩策略）。
    下一次接收即生效。"""
    actor = current_actor()
    _central_only(actor, "路由规则")
    _check_rule_refs(body)
    return rule_out(routing.create_rule(actor, **body))


@blp.route("/routing/rules/<int:rule_id>", methods=["GET"])
@blp.response(200, sch.RuleSchema)
@requires("dicom.routing.read")
def get_rule(rule_id: int) -> Any:
    """路由规则详情。"""
    _central_only(current_actor(), "路由规则")
    return rule_out(_get_rule(rule_id))


@blp.route("/routing/rules/<int:rule_id>", methods=["PATCH"])
@blp.arguments(sch.RuleUpdateSchema)
@blp.response(200, sch.RuleSchema)
@requires("dicom.routing.manage")
def update_rule(body: dict[str, Any], rule_id: int) -> Any:
    """修改、启用或停用路由规则（各进程在下一次接收时生效）。"""
    actor = current_actor()
    _central_only(actor, "路由规则")
    rule = _get_rule(rule_id)
    if not body:
        return rule_out(rule)
    _check_rule_refs(body)
    return rule_out(routing.update_rule(actor, rule.id, **body))


@blp.route("/routing/rules/<int:rule_id>", methods=["DELETE"])
@blp.response(204)
@requires("dicom.routing.manage")
def delete_rule(rule_id: int) -> Any:
    """删除路由规则（已生成的转发任务保留）。"""
    actor = current_actor()
    _central_only(actor, "路由规则")
    routing.delete_rule(actor, rule_id)
    return None


# --- storage targets (IMG-09) ----------------------------------------------------------------------------------
def _target_counts() -> dict[int, int]:
    """Instances per target (NULL = the built-in target); grouped on the column, merged here (PostgreSQL will not
    group by an expression holding a bound parameter)."""
    s = uow.session()
    builtin_id = targets.builtin_target(s).id
    out: dict[int, int] = {}
    for tid, n in s.execute(select(Instance.storage_target_id, func.count()).group_by(Instance.storage_target_id)):
        key = builtin_id if tid is None else int(tid)
        out[key] = out.get(key, 0) + int(n)
    return out


def target_out(t: StorageTarget, counts: dict[int, int]) -> dict[str, Any]:
    builtin = t.code == BUILTIN_TARGET_CODE
    return {
        "id": t.id,
        "code": t.code,
        "name": t.name,
        "kind": t.kind,
        "root_path": t.root_path or str(targets.builtin_root()),
        "enabled": t.enabled,
        "is_default": t.is_default,
        "builtin": builtin,
        "instance_count": counts.get(t.id, 0),
        "created_at": t.created_at,
    }


@blp.route("/storage/targets", methods=["GET"])
@blp.response(200, sch.TargetSchema(many=True))
@requires("dicom.storage.read")
def list_targets() -> Any:
    """存储目标及各自保存的实例数。"""
    _central_only(current_actor(), "存储目标")
    counts = _target_counts()
    return [target_out(t, counts) for t in targets.list_targets()]


@blp.route("/storage/targets", methods=["POST"])
@blp.arguments(sch.TargetCreateSchema)
@blp.response(201, sch.TargetSchema)
@requires("dicom.storage.manage")
def create_target(body: dict[str, Any]) -> Any:
    """登记文件系统存储目标（绝对路径），可设为默认。"""
    actor = current_actor()
    _central_only(actor, "存储目标")
    try:
        target = targets.create_target(
            actor, code=body["code"], name=body["name"], root_path=body["root_path"], is_default=body["is_default"]
        )
    except ValidationFailed as exc:
        field = {"invalid_code": "code", "target_exists": "code", "invalid_root": "root_path"}.get(exc.code)
        if field and not exc.details:
            exc.details = {"fields": {field: [exc.message]}}
        raise
    except OSError as exc:
        raise _fields_error("invalid_root", "root_path", "存储路径无法创建或不可写") from exc
    return target_out(target, _target_counts())


@blp.route("/storage/targets/<int:target_id>/default", methods=["POST"])
@blp.response(200, sch.TargetSchema)
@requires("dicom.storage.manage")
def set_default_target(target_id: int) -> Any:
    """设为默认存储目标（未被路由规则指定目标的影像归属于此）。"""
    actor = current_actor()
    _central_only(actor, "存储目标")
    target = targets.get_target(target_id)
    if not target.enabled:
        raise ValidationFailed("target_disabled", f"存储目标 {target.code} 已停用，不能设为默认")
    s = uow.session()
    s.execute(update(StorageTarget).where(StorageTarget.id != target.id).values(is_default=False))
    target.is_default = True
    target.updated_at = utcnow()
    s.flush()
    audit.record(
        actor,
        "storage_target_changed",
        object_type="storage_target",
        object_id=target.id,
        details={"code": target.code, "is_default": True},
    )
    return target_out(target, _target_counts())


# --- storage tasks (IMG-09) ------------------------------------------------------------------------------------
def task_out(task: StorageTask, refs: dict[int, StorageTarget]) -> dict[str, Any]:
    def ref(tid: int) -> dict[str, Any] | None:
        t = refs.get(tid)
        return {"id": t.id, "code": t.code, "name": t.name} if t else None

    percent = 100 if task.state == "done" else (min(99, task.done * 100 // task.total) if task.total else 0)
    return {
        "id": task.id,
        "kind": task.kind,
        "source": ref(task.source_id),
        "target": ref(task.target_id),
        "filter": task.filter or {},
        "state": task.state,
        "total": task.total,
        "done": task.done,
        "percent": percent,
        "copied": task.copied,
        "missing": task.missing,
        "mismatched": task.mismatched,
        "errors": task.errors,
        "last_error": task.last_error,
        "created_by": task.created_by,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
    }


def _target_refs() -> dict[int, StorageTarget]:
    return {t.id: t for t in targets.list_targets()}


@blp.route("/storage/tasks", methods=["GET"])
@blp.arguments(sch.TaskQuerySchema, location="query")
@blp.response(200, sch.TaskSchema(many=True))
@requires("dicom.storage.read")
def list_tasks(args: dict[str, Any]) -> Any:
    """比对 / 同步 / 迁移任务及进度（已处理 / 总数）。"""
    _central_only(current_actor(), "存储任务")
    refs = _target_refs()
    return [task_out(t, refs) for t in targets.list_storage_tasks(args["limit"])]


@blp.route("/storage/tasks", methods=["POST"])
@blp.arguments(sch.TaskCreateSchema)
@blp.response(201, sch.TaskSchema)
@requires("dicom.storage.manage")
def create_task(body: dict[str, Any]) -> Any:
    """新建比对、同步或迁移任务，由后台作业分批执行并记录进度。"""
    actor = current_actor()
    _central_only(actor, "存储任务")
    raw = dict(body["filter"])
    if "received_before" in raw:
        raw["received_before"] = raw["received_before"].isoformat()
    for field in ("source_id", "target_id"):
        if uow.session().get(StorageTarget, body[field]) is None:
            raise _fields_error("storage_target_not_found", field, "存储目标不存在")
    if body["source_id"] == body["target_id"]:
        raise _fields_error("same_target", "target_id", "源和目标存储不能相同")
    task = targets.create_storage_task(
        actor, kind=body["kind"], source=body["source_id"], target=body["target_id"], filter=raw
    )
    return task_out(task, _target_refs())


# --- forward queue (IMG-08) ------------------------------------------------------------------------------------
def _job_rows(stmt: Any) -> list[dict[str, Any]]:
    out = []
    for job, sop_uid, study_id, study_uid, patient_name, aet in uow.session().execute(stmt).all():
        out.append(
            {
                "id": job.id,
                "state": job.state,
                "attempts": job.attempts,
                "next_attempt_at": job.next_attempt_at if job.state == "pending" else None,
                "last_error": job.last_error,
                "compression": job.compression,
                "rule_id": job.rule_id,
                "node": {"id": job.node_id, "aet": aet},
                "instance_id": job.instance_id,
                "sop_instance_uid": sop_uid,
                "study_id": study_id,
                "study_instance_uid": study_uid or "",
                "patient_name": patient_name or "",
                "created_at": job.created_at,
                "updated_at": job.updated_at,
            }
        )
    return out


def _job_select() -> Any:
    return (
        select(
            ForwardJob,
            Instance.sop_instance_uid,
            Instance.study_id,
            Study.study_instance_uid,
            Study.patient_name,
            DicomNode.aet,
        )
        .join(Instance, Instance.id == ForwardJob.instance_id)
        .join(Study, Study.id == Instance.study_id, isouter=True)
        .join(DicomNode, DicomNode.id == ForwardJob.node_id)
    )


@blp.route("/forward/jobs", methods=["GET"])
@blp.arguments(sch.JobQuerySchema, location="query")
@blp.response(200, sch.JobPageSchema)
@requires("dicom.forward.read")
def list_jobs(args: dict[str, Any]) -> Any:
    """转发队列：状态、尝试次数、下次尝试时间、最近错误、实例与检查、目标节点（成员医院只看到本院影像的任务）。"""
    actor = current_actor()
    page, page_size = clamp_page(args.get("page"), args.get("page_size"))
    s = uow.session()
    visible = clause(actor, ForwardJob)
    filters = [visible]
    if "node_id" in args:
        filters.append(ForwardJob.node_id == args["node_id"])
    counts = dict.fromkeys(FORWARD_STATES, 0)
    for state, n in s.execute(select(ForwardJob.state, func.count()).where(*filters).group_by(ForwardJob.state)).all():
        counts[state] = int(n)
    if "state" in args:
        filters.append(ForwardJob.state == args["state"])
    total = s.execute(select(func.count()).select_from(ForwardJob).where(*filters)).scalar_one()
    stmt = _job_select().where(*filters).order_by(ForwardJob.id.desc()).offset((page - 1) * page_size).limit(page_size)
    return {"items": _job_rows(stmt), "total": total, "page": page, "page_size": page_size, "counts": counts}


@blp.route("/forward/jobs/<int:job_id>/retry", methods=["POST"])
@blp.response(200, sch.JobSchema)
@requires("dicom.forward.manage")
def retry_job(job_id: int) -> Any:
    """重试失败的转发任务：回到待发送，尝试次数清零，立即可发（已确认接收的实例不会重发）。"""
    actor = current_actor()
    job = get_visible(actor, ForwardJob, job_id, object_type="forward_job")
    if job.state != "failed":
        raise ValidationFailed("job_not_failed", "只有发送失败的任务可以重试")
    now = utcnow()
    job.state, job.attempts, job.next_attempt_at, job.leased_until, job.updated_at = "pending", 0, now, None, now
    uow.session().flush()
    audit.record(
        actor,
        "dicom_forward_requested",
        object_type="forward_job",
        object_id=job.id,
        details={"retry": 1, "node_id": job.node_id, "instance_id": job.instance_id},
    )
    return _job_rows(_job_select().where(ForwardJob.id == job.id))[0]


@blp.route("/studies/<int:study_id>/forward", methods=["POST"])
@blp.arguments(sch.ForwardStudySchema)
@blp.response(200, sch.ForwardResultSchema)
@requires("dicom.forward.manage")
def forward_study(body: dict[str, Any], study_id: int) -> Any:
    """经转发队列把检查发送到节点（断点续传：对方已确认接收的实例不再发送），由后台作业发送并重试。"""
    actor = current_actor()
    study = get_visible(actor, Study, study_id, object_type="dicom_study")
    node = get_visible(actor, DicomNode, body["node_id"], object_type="dicom_node")
    return forwarding.forward_study(actor, study.id, node.id, body["compression"])
