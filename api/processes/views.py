"""/api/processes: the 流程管理员's deployments, diagram editing, validation, deploy and case migration."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select

from api.schemas import Id, StrictSchema
from api.security import current_actor, requires
from engine import uow
from engine.accounts.models import User
from engine.cases import processes
from engine.errors import NotFound
from engine.visibility import get_visible
from engine.workflow import instances, specs
from engine.workflow.models import ProcessDeployment, ProcessInstance

blp = Blueprint("processes", __name__, url_prefix="/api/processes", description="流程管理")


class DeploymentSchema(Schema):
    id = fields.Integer()
    process_id = fields.String()
    version = fields.Integer()
    content_hash = fields.String()
    deployed_at = fields.DateTime()
    deployed_by = fields.String(allow_none=True)
    source = fields.String()
    running_cases = fields.Integer()
    latest = fields.Boolean()


class DeploymentDetailSchema(Schema):
    id = fields.Integer()
    process_id = fields.String()
    version = fields.Integer()
    bpmn_xml = fields.String()
    dmn = fields.Dict()
    forms = fields.List(fields.String())


class BpmnInSchema(StrictSchema):
    process_id = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]{1,63}$"))
    bpmn_xml = fields.String(required=True, validate=validate.Length(min=1, max=specs.MAX_XML_BYTES))


class ValidateResultSchema(Schema):
    ok = fields.Boolean()
    errors = fields.List(fields.Dict())


class MigrateSchema(StrictSchema):
    case_ids = fields.List(Id(), required=True, validate=validate.Length(min=1, max=500))


class MigratedCountSchema(Schema):
    migrated = fields.Integer()


def _rows() -> list[dict[str, Any]]:
    s = uow.session()
    running = dict(
        s.execute(
            select(ProcessInstance.deployment_id, func.count())
            .where(ProcessInstance.status.in_(["open", "incident"]))
            .group_by(ProcessInstance.deployment_id)
        ).all()
    )
    deps = list(
        s.execute(
            select(ProcessDeployment).order_by(ProcessDeployment.process_id, ProcessDeployment.version.desc())
        ).scalars()
    )
    names = (
        dict(
            s.execute(
                select(User.id, User.username).where(User.id.in_({d.deployed_by_id for d in deps if d.deployed_by_id}))
            ).all()
        )
        if deps
        else {}
    )
    latest = {}
    for d in deps:
        latest.setdefault(d.process_id, d.id)
    return [
        {
            "id": d.id,
            "process_id": d.process_id,
            "version": d.version,
            "content_hash": d.content_hash,
            "deployed_at": d.deployed_at,
            "deployed_by": names.get(d.deployed_by_id),
            "source": d.source,
            "running_cases": int(running.get(d.id, 0)),
            "latest": latest[d.process_id] == d.id,
        }
        for d in deps
    ]


@blp.route("", methods=["GET"])
@blp.response(200, DeploymentSchema(many=True))
@requires("process.read")
def deployments() -> Any:
    """已发布的流程及版本。"""
    return _rows()


@blp.route("/<int:deployment_id>", methods=["GET"])
@blp.response(200, DeploymentDetailSchema)
@requires("process.read")
def deployment(deployment_id: int) -> Any:
    """某个版本的 BPMN、DMN 与表单。"""
    dep = uow.session().get(ProcessDeployment, deployment_id)
    if dep is None:
        raise NotFound()
    return {
        "id": dep.id,
        "process_id": dep.process_id,
        "version": dep.version,
        "bpmn_xml": next(iter(dep.bpmn.values())),
        "dmn": dep.dmn,
        "forms": sorted(dep.forms),
    }


@blp.route("/validate", methods=["POST"])
@blp.arguments(BpmnInSchema)
@blp.response(200, ValidateResultSchema)
@requires("process.read")
def validate_bpmn(body: dict[str, Any]) -> Any:
    """校验：可解析；每个用户任务有表单；服务任务已注册；表达式通过安全检查。"""
    errors = processes.validate_edit(body["process_id"], body["bpmn_xml"])
    return {"ok": not errors, "errors": errors}


@blp.route("/deploy", methods=["POST"])
@blp.arguments(BpmnInSchema)
@blp.response(201, DeploymentSchema)
@blp.alt_response(200, schema=DeploymentSchema, description="内容未改变：返回已有版本，不产生新版本")
@requires("process.deploy")
def deploy(body: dict[str, Any]) -> Any:
    """发布新版本（先校验）；运行中的申请保持在原版本。内容与已有版本相同时返回 200 和该版本。"""
    dep, created = processes.deploy_edit(current_actor(), body["process_id"], body["bpmn_xml"])
    return next(r for r in _rows() if r["id"] == dep.id), 201 if created else 200


@blp.route("/<int:deployment_id>/migrate", methods=["POST"])
@blp.arguments(MigrateSchema)
@blp.response(200, MigratedCountSchema)
@requires("process.deploy")
def migrate(body: dict[str, Any], deployment_id: int) -> Any:
    """把指定的运行中申请迁移到该版本（显式操作，留审计）。"""
    return {"migrated": processes.migrate(current_actor(), body["case_ids"], deployment_id)}


class ProcessInstanceRefSchema(Schema):
    id = fields.Integer()
    process_id = fields.String()
    status = fields.String()


@blp.route("/instances/<int:instance_id>/retry", methods=["POST"])
@blp.response(200, ProcessInstanceRefSchema)
@requires("task.assign")
def retry_instance(instance_id: int) -> Any:
    """重试任一流程实例的异常：排除故障后由调度员重新执行失败的服务任务（issue 14）。"""
    actor = current_actor()
    pi = get_visible(actor, ProcessInstance, instance_id, object_type="process_instance")
    return instances.retry(actor, pi)
