"""The notifications raised today (issue 14): security alerts to the 安全管理员, released reports to the requester.

Both are written in the unit of work of the action that causes them. Imported once by the composition roots
(engine/handlers.py), which subscribes them.
"""

from __future__ import annotations

from sqlalchemy import event, select
from sqlalchemy.orm import Session, SessionTransaction

from engine import audit
from engine.accounts.models import Institution, User
from engine.audit import AuditEvent
from engine.cases.models import Case
from engine.notifications import services
from engine.reports.models import Report

# Chinese names of the objects a security alert names (never shown as raw codes).
OBJECT_NAMES: dict[str, str] = {
    "case": "远程诊断申请",
    "human_task": "任务",
    "report": "报告",
    "user": "用户账号",
    "attachment": "证件照片",
    "institution": "机构",
    "role": "角色",
    "notification": "消息通知",
    "forward_job": "转发任务",
    "dicom_study": "影像检查",
    "dicom_node": "DICOM设备",
    "dicom_association": "DICOM连接",
    "login_source": "登录来源地址",
}

SECURITY_ROLE = "sec_admin"


def _central_ids(s: Session) -> list[int]:
    return [int(i) for i in s.execute(select(Institution.id).where(Institution.kind == "central")).scalars()]


def _who(s: Session, ev: AuditEvent) -> str:
    if ev.user_id is not None:
        row = s.execute(
            select(User.full_name, Institution.name)
            .join(Institution, Institution.id == User.institution_id)
            .where(User.id == ev.user_id)
        ).first()
        if row is not None:
            return f"{row[0]}（{row[1]}）"
    if ev.username:
        return f"{ev.username}" + (f"（来源 {ev.ip}）" if ev.ip else "")
    return f"来源 {ev.ip}" if ev.ip else "未知来源"


def _object_label(s: Session, object_type: str, object_id: str) -> str:
    """How the alert names the object: a case by its number (the id means nothing to a person), an id that names
    no case (a probe) as such; anything else by its id."""
    if object_type == "case":
        case_no = (
            s.execute(select(Case.case_no).where(Case.id == int(object_id))).scalar()
            if object_id.isdigit() and int(object_id) < 2**31
            else None
        )
        return case_no if case_no is not None else f"（不存在，编号 {object_id}）"
    return object_id


def security_alert_text(s: Session, ev: AuditEvent) -> str:
    obj = ""
    if ev.object_type:
        obj = f"，对象：{OBJECT_NAMES.get(ev.object_type, '其他对象')}"
        if ev.object_id:
            obj += f" {_object_label(s, ev.object_type, ev.object_id)}"
    return f"{_who(s, ev)}：{ev.reason or '安全告警'}{obj}"


def on_security_alert(s: Session, ev: AuditEvent) -> None:
    """AC-02 access outside visibility, repeated broken DICOM, refused associations …: a critical notification to
    the central hospital's 安全管理员 role, to be acknowledged. Repeats of one alert (same object, same source,
    same reason) while it is unacknowledged count on the open notification instead of adding new ones."""
    source = ev.user_id if ev.user_id is not None else (ev.username or ev.ip or "")
    key = f"{ev.object_type}:{ev.object_id}:{source}:{(ev.reason or '')[:60]}"[:160]
    link = "/admin/users" if ev.object_type == "user" else None
    text = security_alert_text(s, ev)
    for inst_id in _central_ids(s):
        services.notify(
            "security_alert", institution_id=inst_id, role=SECURITY_ROLE, text=text, link=link, dedupe_key=key
        )


# --- released reports ----------------------------------------------------------------------------------------------

_NOTIFIED_KEY = "telerad_report_released_notified"


def notify_report_released(s: Session, case: Case) -> None:
    """Tell the member hospital's requester that the case's report is released (once per case and transaction)."""
    done: set[int] = s.info.setdefault(_NOTIFIED_KEY, set())
    if case.id in done:
        return
    done.add(case.id)
    services.notify(
        "report_released",
        institution_id=case.requesting_institution_id,
        user_id=case.requester_id,
        text=f"远程诊断申请 {case.case_no}（患者 {case.patient.name}）的诊断报告已发布，可查看和打印。",
        link=f"/cases/{case.id}",
    )


def on_report_released(s: Session, ev: AuditEvent) -> None:
    """For when the release writes its `report_released` audit event (object: the report, details: case_id)."""
    case_id = (ev.details or {}).get("case_id")
    if case_id is None and ev.object_type == "report" and ev.object_id:
        report = s.get(Report, int(ev.object_id))
        case_id = report.case_id if report else None
    case = s.get(Case, int(case_id)) if case_id is not None else None
    if case is not None:
        notify_report_released(s, case)


def _forget_on_commit(s: Session) -> None:
    if not s.in_nested_transaction():
        s.info.pop(_NOTIFIED_KEY, None)


def _forget_on_rollback(s: Session, previous_transaction: SessionTransaction) -> None:
    if not previous_transaction.nested:
        s.info.pop(_NOTIFIED_KEY, None)


# --- clinical information requests (临床资料补充) --------------------------------------------------------------------


def on_clinical_query_started(s: Session, ev: AuditEvent) -> None:
    """A central doctor asked the requesting hospital for missing clinical information, or to re-send images
    (engine/cases/clinical_queries.py): the case's requester is told (临床资料不全, or 等待影像 for 补传影像), with a
    link to the case where the question is answered."""
    case = s.get(Case, int(ev.object_id)) if ev.object_type == "case" and ev.object_id else None
    if case is None:
        return
    if (ev.details or {}).get("request_images"):  # 补传影像: the hospital re-sends or adds images
        services.notify(
            "images_awaited",
            institution_id=case.requesting_institution_id,
            user_id=case.requester_id,
            text=f"远程诊断申请 {case.case_no}（患者 {case.patient.name}）需要补传影像，请重新发送或补充影像；"
            "影像到达后自动完成。",
            link=f"/cases/{case.id}",
        )
        return
    services.notify(
        "clinical_info_incomplete",
        institution_id=case.requesting_institution_id,
        user_id=case.requester_id,
        text=f"远程诊断申请 {case.case_no}（患者 {case.patient.name}）需要补充临床资料，请在申请详情中答复。",
        link=f"/cases/{case.id}",
    )


audit.subscribe("security_alert", on_security_alert)
audit.subscribe("clinical_query_started", on_clinical_query_started)
audit.subscribe("report_released", on_report_released)
event.listen(Session, "after_commit", _forget_on_commit)
event.listen(Session, "after_soft_rollback", _forget_on_rollback)
