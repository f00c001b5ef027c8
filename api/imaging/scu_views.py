"""/api/imaging SCU actions: telerad dials a registered node — echo, find, retrieve into our archive, send a study
(REQ: DCM-03, DCM-04, VIEW-14 backend). Archive browsing and device administration are in views.py."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from sqlalchemy import select

from api.imaging import schemas as sch
from api.security import current_actor, requires
from dicom import receiving, scu, scu_transfer
from engine import audit, config, uow
from engine.errors import ValidationFailed
from engine.imaging import services as imaging
from engine.imaging import targets
from engine.imaging.models import DicomNode, Instance, Study
from engine.imaging.storage import ObjectStore
from engine.visibility import get_visible

blp = Blueprint(
    "imaging_scu", __name__, url_prefix="/api/imaging", description="DICOM SCU 操作（测试连通、查询、调阅、发送）"
)


def store() -> ObjectStore:
    return ObjectStore(config.current().storage_dir / "dicom")


# --- devices (IMG-02) ------------------------------------------------------------------------------------------


# --- SCU actions (DCM-03/04, VIEW-14 backend) ------------------------------------------------------------------
def _peer(node: DicomNode) -> tuple[scu.Remote, scu.Options]:
    """The node as an SCU target (enabled and with a port; read into plain values) and our side of the association.
    Only registered nodes are ever dialled (WEB-09)."""
    if not node.enabled:
        raise ValidationFailed("node_disabled", f"设备 {node.aet} 已停用")
    if not node.port:
        raise ValidationFailed("node_no_port", f"设备 {node.aet} 未登记端口，不能主动连接")
    s = config.current()
    opts = scu.Options(calling_aet=s.dicom_aet, timeout=s.dicom_acse_timeout, connect_timeout=scu.CONNECT_TIMEOUT)
    return scu.Remote(aet=node.aet, host=node.host, port=node.port), opts


def _release_db() -> None:
    """End the request's transaction before a network call: the peer may associate back to our SCP (C-MOVE, a
    send to ourselves), whose handlers write; on SQLite the open write transaction would block them until the
    association timed out. Everything the call needs has been read into plain values by now."""
    uow.commit()


def _audit_scu(event: str, node: DicomNode, result: scu.Result, **details: Any) -> None:
    audit.record(
        current_actor(),
        event,
        outcome="success" if result.ok else "failure",
        object_type="dicom_node",
        object_id=node.id,
        reason=None if result.ok else result.message,
        details={"aet": node.aet, "host": node.host, "port": node.port, "status": result.status, **details},
    )


def _transfer_out(result: scu.Result) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "status": result.status,
        "message": result.message,
        "completed": result.completed,
        "failed": result.failed,
        "warning": result.warning,
        "elapsed_ms": result.elapsed_ms,
    }


@blp.route("/nodes/<int:node_id>/echo", methods=["POST"])
@blp.response(200, sch.EchoResultSchema)
@requires("dicom.scu")
def echo_node(node_id: int) -> Any:
    """连通性测试（C-ECHO），返回结果与耗时。"""
    node = get_visible(current_actor(), DicomNode, node_id, object_type="dicom_node")
    peer, opts = _peer(node)
    _release_db()
    result = scu.echo(peer, opts)
    _audit_scu("dicom_scu_echo", node, result)
    return {"ok": result.ok, "status": result.status, "message": result.message, "elapsed_ms": result.elapsed_ms}


@blp.route("/nodes/<int:node_id>/find", methods=["POST"])
@blp.arguments(sch.FindSchema)
@blp.response(200, sch.FindResultSchema)
@requires("dicom.scu")
def find_node(body: dict[str, Any], node_id: int) -> Any:
    """查询远程节点（C-FIND：患者/检查/序列/图像级），用于从医院自己的 PACS 调阅。"""
    node = get_visible(current_actor(), DicomNode, node_id, object_type="dicom_node")
    level, limit = body.pop("level"), body.pop("limit")
    peer, opts = _peer(node)
    _release_db()
    result = scu.find(peer, level, body, limit, opts=opts)
    _audit_scu("dicom_scu_find", node, result, level=level, keys=body, matches=len(result.items), dicom_event="110112")
    return {
        "ok": result.ok,
        "status": result.status,
        "message": result.message,
        "items": result.items,
        "truncated": result.truncated,
    }


@blp.route("/nodes/<int:node_id>/retrieve", methods=["POST"])
@blp.arguments(sch.RetrieveSchema)
@blp.response(200, sch.TransferResultSchema)
@requires("dicom.scu")
def retrieve_from_node(body: dict[str, Any], node_id: int) -> Any:
    """从远程节点调阅检查到本系统归档：C-MOVE（对方发送到本系统 AE）或 C-GET（同一连接接收）。"""
    node = get_visible(current_actor(), DicomNode, node_id, object_type="dicom_node")
    peer, opts = _peer(node)
    study_uid, series_uid = body["study_instance_uid"], body.get("series_instance_uid")
    info, our_aet = imaging.node_info(node), config.current().dicom_aet
    _release_db()
    if body["method"] == "get":
        # Each instance through the receive service as it arrives (issue 12 §2): validated, durable, indexed under
        # the node's institution and routed before the peer's sub-operation is answered; a refused one is failed.
        app = current_app._get_current_object()
        with receiving.retrieval(app, config.current(), info, info.host) as sink:
            result = scu_transfer.get(peer, sink, study_uid, series_uid, opts=opts)
        if sink.refused:
            result.ok = False
            result.message += f"；{sink.refused} 个实例被拒收（数据集无效或存储空间不足），未入库"
        extra: dict[str, Any] = {"indexed": sink.indexed, "refused": sink.refused}
    else:
        result = scu_transfer.move(peer, our_aet, study_uid, series_uid, opts=opts)
        extra = {"destination": our_aet}
    _audit_scu(
        "dicom_scu_retrieve",
        node,
        result,
        method=body["method"],
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        completed=result.completed,
        failed=result.failed,
        **extra,
    )
    return _transfer_out(result)


@blp.route("/studies/<int:study_id>/send", methods=["POST"])
@blp.arguments(sch.SendSchema)
@blp.response(200, sch.TransferResultSchema)
@requires("dicom.scu")
def send_study(body: dict[str, Any], study_id: int) -> Any:
    """把检查的全部实例按原样发送到已登记的节点（C-STORE）。"""
    actor = current_actor()
    study = get_visible(actor, Study, study_id, object_type="dicom_study")
    node = get_visible(actor, DicomNode, body["node_id"], object_type="dicom_node")
    peer, opts = _peer(node)
    rows = uow.session().execute(
        select(Instance.storage_target_id, Instance.storage_key)
        .where(Instance.study_id == study.id)
        .order_by(Instance.series_id, Instance.id)
    )
    paths = [targets.path_of(target_id, key) for target_id, key in rows]  # on whichever target holds each
    study_ref = {"study_id": study.id, "study_instance_uid": study.study_instance_uid}
    _release_db()
    result = scu_transfer.send(peer, paths, opts=opts)
    _audit_scu(
        "dicom_scu_send",
        node,
        result,
        **study_ref,
        completed=result.completed,
        failed=result.failed,
        dicom_event="110104",
    )
    return _transfer_out(result)
