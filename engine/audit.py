"""Append-only, hash-chained audit log (REQ: AUD-01..04, 等保 8.1.4.3)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Index, String, Text, delete, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine import uow
from engine.actor import Actor
from engine.db import Base, UTCDateTime, utcnow

GENESIS = "0" * 64

log = logging.getLogger("telerad.audit")

# Event type → Chinese name shown in the auditor's UI.
EVENT_TYPES: dict[str, str] = {
    "login_success": "登录成功",
    "login_failure": "登录失败",
    "login_locked": "账号锁定",
    "logout": "退出登录",
    "session_expired": "会话超时",
    "session_revoked": "会话注销",
    "mfa_success": "双因素认证成功",
    "mfa_failure": "双因素认证失败",
    "mfa_enrolled": "绑定双因素认证",
    "password_changed": "修改密码",
    "password_reset": "重置密码",
    "account_registered": "账号注册",
    "account_resubmitted": "重新提交注册",
    "account_created": "创建账号",
    "account_approved": "审核通过",
    "account_rejected": "审核拒绝",
    "account_updated": "修改账号",
    "account_enabled": "启用账号",
    "account_disabled": "停用账号",
    "account_unlocked": "解锁账号",
    "account_roles_changed": "分配角色",
    "role_created": "创建角色",
    "role_updated": "修改角色",
    "role_deleted": "删除角色",
    "role_permissions_changed": "角色授权",
    "attachment_viewed": "查看证件照片",
    "audit_log_used": "查看审计日志",
    "audit_log_exported": "导出审计日志",
    "audit_purged": "清理审计日志",
    "security_alert": "安全告警",
    "permission_denied": "越权访问",
    "config_changed": "配置变更",
    # Notifications (issue 14): reading one's own, and the 确认已知晓 of a critical one.
    "notification_read": "标记通知已读",
    "notification_acknowledged": "确认已知晓紧急通知",
    "case_created": "发起远程诊断申请",
    "case_viewed": "查看远程诊断申请",
    "task_claimed": "领取任务",
    "claim_conflict": "抢单失败",
    "task_released": "释放任务",
    "task_assigned": "指派任务",
    "task_consulted": "会诊转派",
    "task_completed": "完成任务",
    "report_saved": "保存报告草稿",
    "report_locked": "锁定报告",
    "report_submitted": "提交报告",
    "report_approved": "审核通过报告",
    "report_rejected": "驳回报告",
    "report_released": "发布报告",
    "report_printed": "打印报告",
    "report_corrected": "更正已发布报告",
    "process_deployed": "发布流程",
    "cases_migrated": "迁移流程实例",
    "incident_retried": "重试异常任务",
    "clinical_query_started": "发起临床资料补充",
    "timer_fired": "定时事件触发",
    "process_message_delivered": "流程收到消息",
    # DICOM (REQ: DSEC-10; DICOM audit message codes in the details)
    "dicom_node_created": "登记DICOM设备",
    "dicom_node_updated": "修改DICOM设备",
    "dicom_association_accepted": "DICOM连接建立",
    "dicom_instances_stored": "接收影像",
    "dicom_instance_conflict": "影像内容冲突",
    # routing, forwarding and storage targets (REQ: DCM-02, IMG-08, IMG-09)
    "routing_rule_changed": "修改影像路由规则",
    "turnaround_rule_changed": "修改报告时限规则",
    "dicom_forward_requested": "转发影像",
    "dicom_forwarded": "影像转发完成",
    "storage_target_changed": "修改存储目标",
    "storage_task_created": "创建存储比对/同步/迁移任务",
    "storage_task_finished": "存储比对/同步/迁移任务完成",
    "dicom_store_failed": "影像接收失败",
    "dicom_query": "影像查询",
    "dicom_orphans_swept": "清理孤立影像文件",
    # Retrieve, worklist/MPPS and image matching (REQ: DCM-04, DCM-05, IMG-06, DSEC-10)
    "dicom_instances_retrieved": "调阅影像",
    "dicom_mpps_created": "设备报告检查开始",
    "dicom_mpps_updated": "设备更新检查状态",
    "dicom_study_matched": "影像匹配检查",
    "dicom_study_unmatched": "影像未匹配检查",
    "exam_status_changed": "检查状态变更",
    # DICOM administration and SCU actions from the API/CLI (REQ: IMG-02, DCM-03/04, DCM-06, DSEC-10)
    "dicom_study_viewed": "查看影像检查",
    "dicom_sr_viewed": "查看结构化报告",
    "dicomweb_study_accessed": "经 DICOMweb 访问影像检查",
    "dicomweb_retrieve_failed": "经 DICOMweb 调阅影像失败",
    "dicom_conflict_resolved": "处理影像冲突",
    "dicom_scu_echo": "DICOM连通测试",
    "dicom_scu_find": "查询远程节点",
    "dicom_scu_retrieve": "从远程节点调阅影像",
    "dicom_scu_send": "向远程节点发送影像",
    # Per-user settings: institution and role defaults set by an administrator (issue 14)
    "setting_default_changed": "修改默认个人设置",
    "setting_default_removed": "删除默认个人设置",
    # OAuth 2.0 clients of DICOMweb (issue 15; REQ: DSEC-11, AUTH-04)
    "oauth_client_created": "登记接入客户端",
    "oauth_client_revoked": "吊销接入客户端",
    "oauth_client_auth_failure": "接入客户端认证失败",
    "oauth_client_locked": "接入客户端锁定",
    "oauth_token_issued": "签发访问令牌",
    "oauth_code_reused": "授权码重复使用",
    "oauth_authorized": "授权第三方应用",
    # The viewer (issue 16; REQ: VIEW-08, RPT-05): measurements/marks and key images saved for a study
    "viewer_annotations_saved": "保存影像测量与标记",
    "viewer_key_images_saved": "保存关键图像",
    # Report templates and phrases (issue 17; REQ: RPT-03, RPT-07, DICT-02; UX.md R5, R6)
    "template_created": "新建报告模板",
    "template_updated": "修改报告模板",
    "template_deleted": "删除报告模板",
    "template_library_seeded": "载入报告模板库",
    "phrase_created": "新建常用短语",
    "phrase_updated": "修改常用短语",
    "phrase_deleted": "删除常用短语",
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def neutralise(value: str | None, limit: int = 256) -> str | None:
    """Encode CR, LF, ANSI escapes and bidi overrides so a value cannot forge a log line (REQ: AUD-07)."""
    if value is None:
        return None
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)[:limit]


class AuditEvent(Base):
    """One audit record. UPDATE and DELETE are blocked by triggers (see the initial migration)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_ts", "ts"),
        Index("ix_audit_event_user_ts", "username", "ts"),
        Index("ix_audit_event_type_ts", "event_type", "ts"),
        Index("ix_audit_event_object", "object_type", "object_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    user_id: Mapped[int | None] = mapped_column()
    username: Mapped[str | None] = mapped_column(String(160))
    roles: Mapped[str | None] = mapped_column(String(256))
    institution_id: Mapped[int | None] = mapped_column()
    institution_code: Mapped[str | None] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    event_type: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


_HASHED_FIELDS = (
    "ts",
    "user_id",
    "username",
    "roles",
    "institution_id",
    "institution_code",
    "ip",
    "user_agent",
    "event_type",
    "object_type",
    "object_id",
    "patient_id",
    "outcome",
    "reason",
    "request_id",
    "details",
)


def _digest(row: dict[str, Any], prev_hash: str) -> str:
    payload = {k: row.get(k) for k in _HASHED_FIELDS}
    payload["ts"] = row["ts"].strftime("%Y-%m-%dT%H:%M:%S.%f")
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + blob).encode()).hexdigest()


def _lock_chain(s: Session) -> None:
    # PostgreSQL: serialise chain appends across transactions. SQLite already runs BEGIN IMMEDIATE.
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(7301)"))


def append(s: Session, row: dict[str, Any]) -> AuditEvent:
    """Link `row` (from `build_row`) into the hash chain and insert it in session `s`."""
    _lock_chain(s)
    s.flush()
    last = s.execute(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)).scalar()
    prev = last or GENESIS
    event = AuditEvent(**row, prev_hash=prev, hash=_digest(row, prev))
    s.add(event)
    s.flush()
    return event


def build_row(
    actor: Actor,
    event_type: str,
    *,
    outcome: str = "success",
    object_type: str | None = None,
    object_id: object = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    patient_id: str | None = None,
    username: str | None = None,
) -> dict[str, Any]:
    """The column values of one audit event, with free text neutralised (AUD-02, AUD-07)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown audit event type {event_type!r}")
    return {
        "ts": utcnow(),
        "user_id": actor.user_id,
        "username": neutralise(username if username is not None else actor.username, 160),
        "roles": ",".join(sorted(actor.roles)) or None,
        "institution_id": actor.institution_id,
        "institution_code": actor.institution_code,
        "ip": neutralise(actor.ip, 64),
        "user_agent": neutralise(actor.user_agent, 256),
        "event_type": event_type,
        "object_type": object_type,
        "object_id": None if object_id is None else neutralise(str(object_id), 64),
        "patient_id": patient_id,
        "outcome": outcome,
        "reason": neutralise(reason, 1000),
        "request_id": actor.request_id,
        "details": details,
    }


Subscriber = Callable[[Session, AuditEvent], object]
_subscribers: dict[str, list[Subscriber]] = {}


def subscribe(event_type: str, handler: Subscriber) -> None:
    """Call `handler(session, event)` in the same unit of work right after an event of this type is recorded.

    For a failure event that is replayed after a rollback, the handler runs again in the replay's transaction:
    what it wrote the first time was rolled back with the action, so it is written exactly once either way.
    Each call runs in a SAVEPOINT; an exception is logged and undone there, never taking the audit row (or the
    action) with it. Subscribing the same handler twice has no effect.

    Raises:
        ValueError: an unknown event type.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown audit event type {event_type!r}")
    handlers = _subscribers.setdefault(event_type, [])
    if handler not in handlers:
        handlers.append(handler)


def _publish(s: Session, event: AuditEvent) -> None:
    for handler in _subscribers.get(event.event_type, ()):
        try:
            with s.begin_nested():
                handler(s, event)
        except Exception:
            log.exception("audit subscriber %r failed on %s", handler, event.event_type)


def record(actor: Actor, event_type: str, **fields: Any) -> None:
    """Append an audit event in the current unit of work (fail closed: it commits with the action, AUD-05).

    `fields` are those of `build_row`. Failure events are also replayed after a rollback, so a refused action
    still leaves its trace. Subscribers (`subscribe`) run after the row is appended, in the same transaction.
    """
    row = build_row(actor, event_type, **fields)
    s = uow.session()
    _publish(s, append(s, row))
    if row["outcome"] != "success":

        def replay(s2: Session) -> None:
            _publish(s2, append(s2, dict(row, ts=utcnow())))

        uow.after_rollback(replay)


def security_alert(actor: Actor, object_type: str, object_id: object, reason: str) -> None:
    """Record an access to an object outside the caller's visibility (REQ: AC-02)."""
    record(actor, "security_alert", outcome="failure", object_type=object_type, object_id=object_id, reason=reason)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    broken_at: int | None
    message: str


def verify_chain(s: Session, batch: int = 5000) -> VerifyResult:
    """Recompute the hash chain in id order; report the first row whose link or content is broken."""
    cols = [AuditEvent.id, AuditEvent.prev_hash, AuditEvent.hash] + [getattr(AuditEvent, f) for f in _HASHED_FIELDS]
    prev: str | None = None
    checked = 0
    last_id = 0
    while True:
        rows = s.execute(select(*cols).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch)).all()
        if not rows:
            break
        for r in rows:
            ev_id, prev_hash, digest = r[0], r[1], r[2]
            row = dict(zip(_HASHED_FIELDS, r[3:], strict=True))
            expected_prev = prev_hash if prev is None else prev  # the oldest kept row anchors the chain
            if prev_hash != expected_prev or digest != _digest(row, prev_hash):
                return VerifyResult(False, checked, ev_id, f"审计记录 {ev_id} 的哈希链校验失败")
            prev = digest
            checked += 1
            last_id = ev_id
    return VerifyResult(True, checked, None, f"已校验 {checked} 条审计记录，哈希链完整")


def purge(actor: Actor, retention_days: int) -> int:
    """Delete records older than the retention period (never below 180 days, AUD-04); audited."""
    days = max(retention_days, 180)
    cutoff = utcnow() - timedelta(days=days)
    s = uow.session()
    result = s.execute(delete(AuditEvent).where(AuditEvent.ts < cutoff))
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    record(actor, "audit_purged", details={"cutoff": cutoff.isoformat(), "deleted": count, "retention_days": days})
    return count
