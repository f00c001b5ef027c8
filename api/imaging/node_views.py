"""/api/imaging/nodes and /api/imaging/operations: the DICOM devices and remote nodes telerad talks to (IMG-02).

A member hospital's administrator sees and manages only its own devices (engine.visibility; another institution's
id answers 404 with a security alert, AC-02). Every change is audited by engine.imaging.services. Same URL prefix as
api/imaging/views.py (studies, conflicts, unmatched), its own blueprint.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import or_, select

from api.imaging import schemas as sch
from api.imaging.refs import inst_ref, institutions_by_id
from api.security import current_actor, requires
from engine import uow
from engine.accounts.models import Institution
from engine.accounts.queries import like_pattern
from engine.errors import ValidationFailed
from engine.imaging import services as imaging
from engine.imaging.models import NODE_OPERATIONS, DicomNode
from engine.visibility import get_visible, scoped

blp = Blueprint("imaging_nodes", __name__, url_prefix="/api/imaging", description="DICOM 设备与远程节点")


def node_out(node: DicomNode, inst: Institution | None) -> dict[str, Any]:
    return {
        "id": node.id,
        "aet": node.aet,
        "host": node.host,
        "port": node.port,
        "institution": inst_ref(inst),
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
    insts = institutions_by_id({n.institution_id for n in nodes})
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
