"""Notifications (issue 14): written in the causing transaction and nothing on rollback, security alerts to the
central 安全管理员 with a recorded 确认已知晓, released reports to the requester, read/unread counts, and a user
only ever seeing what is addressed to them (REQ: AC-02)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from engine import audit, uow
from engine.accounts.models import Institution, User
from engine.actor import Actor
from engine.audit import AuditEvent
from engine.cases.models import Case
from engine.notifications import delivery, services
from engine.notifications.models import Notification, NotificationReceipt
from tests.api.test_cases_flow import APPROVE, Team, complete, new_case, ok, refused
from tests.factories import Session, as_user


class Recorder:
    def __init__(self) -> None:
        self.sent: list[delivery.Delivery] = []

    def deliver(self, d: delivery.Delivery) -> None:
        self.sent.append(d)


@pytest.fixture
def sent() -> Iterator[list[delivery.Delivery]]:
    rec = Recorder()
    previous = delivery.set_deliverer(rec)
    yield rec.sent
    delivery.set_deliverer(previous)


def rows(app: Flask, kind: str | None = None) -> list[Notification]:
    with app.app_context():
        s = uow.session()
        stmt = select(Notification).order_by(Notification.id)
        if kind:
            stmt = stmt.where(Notification.kind == kind)
        out = list(s.execute(stmt).scalars())
        s.expunge_all()
        return out


def receipts(app: Flask, notification_id: int) -> dict[int, Any]:
    with app.app_context():
        q = select(NotificationReceipt.user_id, NotificationReceipt.read_at).where(
            NotificationReceipt.notification_id == notification_id
        )
        return {int(u): r for u, r in uow.session().execute(q)}


def audit_rows(app: Flask, event_type: str) -> list[AuditEvent]:
    with app.app_context():
        s = uow.session()
        out = list(s.execute(select(AuditEvent).where(AuditEvent.event_type == event_type)).scalars())
        s.expunge_all()
        return out


def summary(sess: Session) -> dict[str, int]:
    return ok(sess.get("/api/notifications/summary"))  # type: ignore[no-any-return]


def listing(sess: Session, **q: Any) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={str(v).lower()}" for k, v in q.items())
    return ok(sess.get(f"/api/notifications?page_size=100&{query}"))["items"]  # type: ignore[no-any-return]


def central_id(app: Flask) -> int:
    with app.app_context():
        return int(uow.session().execute(select(Institution.id).where(Institution.kind == "central")).scalar_one())


def trespass(app: Flask) -> tuple[Session, int]:
    """A member hospital's requester asks for another hospital's case: 404 and a security alert (AC-02)."""
    other = as_user(app, "requester", institution_code="M02")
    case_id = new_case(other)["id"]
    intruder = as_user(app, "requester", institution_code="M01")
    refused(intruder.get(f"/api/cases/{case_id}"), 404)
    return intruder, case_id


def case_no(app: Flask, case_id: int) -> str:
    with app.app_context():
        try:
            return str(uow.session().execute(select(Case.case_no).where(Case.id == case_id)).scalar_one())
        finally:
            uow.session().rollback()


def test_security_alert_notifies_the_central_security_admins_once_and_delivers_after_commit(
    app: Flask, sent: list[delivery.Delivery]
) -> None:
    sec1, sec2 = as_user(app, "sec_admin"), as_user(app, "sec_admin")
    member_sec = as_user(app, "sec_admin", institution_code="M01")
    auditor, doctor = as_user(app, "audit_admin"), as_user(app, "report_l1")
    intruder, case_id = trespass(app)

    (alert,) = audit_rows(app, "security_alert")  # the 404 rolled back; the alert was replayed once
    (n,) = rows(app, "security_alert")  # ... and its notification with it: exactly one
    assert (n.severity, n.recipient_role, n.institution_id, n.recipient_user_id) == (
        "critical",
        "sec_admin",
        central_id(app),
        None,
    )
    assert set(receipts(app, n.id)) == {sec1.user.id, sec2.user.id}  # the role's holders at the central hospital
    assert f"测试{intruder.user.username}" in n.text
    assert "访问可见范围之外的对象" in n.text
    assert f"远程诊断申请 {case_no(app, case_id)}" in n.text  # its number, not the database id
    assert "remote_case" not in n.text
    assert [(d.notification_id, d.channel, set(d.user_ids)) for d in sent] == [
        (n.id, "sms", {sec1.user.id, sec2.user.id})
    ]
    for sess in (sec1, sec2):
        assert summary(sess) == {"unread": 1, "critical_pending": 1}
        (item,) = listing(sess, critical_pending=True)
        assert (item["kind_name"], item["severity_name"], item["needs_ack"], item["read"]) == (
            "安全告警",
            "紧急",
            True,
            False,
        )
    for sess in (member_sec, auditor, doctor, intruder):  # another institution, another role: nothing
        assert summary(sess) == {"unread": 0, "critical_pending": 0}
        assert listing(sess) == []

    # A repeat of the same alert while it is open counts on it instead of adding another.
    refused(intruder.get(f"/api/cases/{case_id}"), 404)
    (n,) = rows(app, "security_alert")
    assert n.occurrences == 2
    assert len(audit_rows(app, "security_alert")) == 2


def test_notification_is_written_in_the_causing_transaction_and_nothing_survives_its_rollback(
    app: Flask, sent: list[delivery.Delivery]
) -> None:
    sec = as_user(app, "sec_admin")

    def notify_then_fail() -> None:
        with uow.unit_of_work():
            services.notify("security_alert", institution_id=central_id(app), role="sec_admin", text="测试告警")
            s = uow.session()
            s.flush()
            assert s.execute(select(func.count()).select_from(Notification)).scalar_one() == 1  # same transaction
            raise RuntimeError("the causing action fails")

    def success_event_then_fail() -> None:
        with uow.unit_of_work():
            audit.record(Actor.system(), "security_alert", object_type="user", object_id=1, reason="测试")
            raise RuntimeError("boom")

    def refused_association() -> None:
        with uow.unit_of_work():
            audit.security_alert(Actor.system("dicom:EVIL"), "dicom_association", "EVIL", "未登记的设备")
            raise RuntimeError("refused")

    with app.app_context(), pytest.raises(RuntimeError):
        notify_then_fail()
    assert rows(app) == []  # rolled back with the action
    assert sent == []  # and nothing delivered
    # A success-outcome event is not replayed: its subscriber's notification goes with the rollback too.
    with app.app_context(), pytest.raises(RuntimeError):
        success_event_then_fail()
    assert rows(app) == []
    assert sent == []
    # A failure-outcome event survives the rollback (replayed), and so does its notification — once.
    with app.app_context(), pytest.raises(RuntimeError):
        refused_association()
    (n,) = rows(app)
    assert "DICOM连接 EVIL" in n.text
    assert "未登记的设备" in n.text
    assert [d.notification_id for d in sent] == [n.id]
    assert set(receipts(app, n.id)) == {sec.user.id}


def test_a_failing_subscriber_never_takes_the_audit_row_or_the_action_with_it(app: Flask) -> None:
    calls: list[int] = []

    def broken(s: Any, ev: AuditEvent) -> None:
        calls.append(ev.id)
        raise ValueError("bug in a subscriber")

    audit.subscribe("config_changed", broken)
    try:
        with app.app_context(), uow.unit_of_work():
            audit.record(Actor.system(), "config_changed", details={"x": 1})
    finally:
        audit._subscribers["config_changed"].remove(broken)
    assert len(calls) == 1
    assert len(audit_rows(app, "config_changed")) == 1
    with app.app_context():
        assert audit.verify_chain(uow.session()).ok


def test_critical_acknowledgement_records_who_and_when_and_closes_it_for_the_role(app: Flask) -> None:
    sec1, sec2 = as_user(app, "sec_admin"), as_user(app, "sec_admin")
    trespass(app)
    (n,) = rows(app, "security_alert")
    refused(sec1.post(f"/api/notifications/{n.id}/read"), 409, "ack_required")
    assert ok(sec1.post("/api/notifications/read-all"))["marked"] == 0  # a pending critical one stays

    item = ok(sec1.post(f"/api/notifications/{n.id}/acknowledge"))
    assert (item["needs_ack"], item["read"], item["acknowledged_by_name"]) == (False, True, f"测试{sec1.user.username}")
    (n,) = rows(app, "security_alert")
    assert n.acknowledged_by_id == sec1.user.id
    assert n.acknowledged_at is not None
    (ack,) = audit_rows(app, "notification_acknowledged")
    assert (ack.user_id, ack.object_type, ack.object_id) == (sec1.user.id, "notification", str(n.id))
    assert audit.EVENT_TYPES["notification_acknowledged"] == "确认已知晓紧急通知"

    # It sticks (read back from the database, as after a reload) and closes it for the other holder of the role.
    assert summary(sec1) == {"unread": 0, "critical_pending": 0}
    assert listing(sec1, critical_pending=True) == []
    assert summary(sec2) == {"unread": 1, "critical_pending": 0}
    (other,) = listing(sec2)
    assert (other["needs_ack"], other["acknowledged_by_name"]) == (False, f"测试{sec1.user.username}")
    # A second acknowledgement keeps the first one's who and when, and writes no second audit event.
    ok(sec2.post(f"/api/notifications/{n.id}/acknowledge"))
    assert rows(app, "security_alert")[0].acknowledged_by_id == sec1.user.id
    assert len(audit_rows(app, "notification_acknowledged")) == 1
    assert summary(sec2) == {"unread": 0, "critical_pending": 0}


def test_released_report_notifies_the_requester_with_a_link_to_the_case(app: Flask) -> None:
    team = Team(app)
    colleague = as_user(app, "requester", institution_code="M01")
    case_id = new_case(team.req)["id"]
    l3 = team.to_level(case_id, "review_level3")
    assert rows(app, "report_released") == []
    ok(complete(team.l3, l3.id, APPROVE))
    (released,) = audit_rows(app, "report_released")  # the release is audited, and that event notifies
    assert (released.username, released.details["case_id"]) == ("workflow", case_id)
    (n,) = rows(app, "report_released")
    assert (n.severity, n.recipient_user_id, n.link) == ("info", team.req.user.id, f"/cases/{case_id}")
    assert "诊断报告已发布" in n.text
    assert summary(team.req) == {"unread": 1, "critical_pending": 0}
    (item,) = listing(team.req, unread=True)
    assert (item["kind_name"], item["severity_name"], item["link"]) == ("报告已发布", "提示", f"/cases/{case_id}")
    for sess in (colleague, team.l1, team.l3):
        assert summary(sess)["unread"] == 0

    refused(team.req.post(f"/api/notifications/{n.id}/acknowledge"), 409, "not_critical")
    assert ok(team.req.post(f"/api/notifications/{n.id}/read"))["read"] is True
    assert summary(team.req)["unread"] == 0
    assert listing(team.req, unread=True) == []
    assert len(listing(team.req)) == 1
    assert len(audit_rows(app, "notification_read")) == 1


def test_read_unread_counts_and_mark_all_read(app: Flask) -> None:
    req = as_user(app, "requester", institution_code="M01")
    with app.app_context(), uow.unit_of_work():
        inst = uow.session().execute(select(Institution.id).where(Institution.code == "M01")).scalar_one()
        for i in range(3):
            services.notify("report_released", institution_id=inst, user_id=req.user.id, text=f"报告{i}")
        services.notify("images_awaited", institution_id=inst, role="requester", text="等待影像", severity="warning")
    assert summary(req) == {"unread": 4, "critical_pending": 0}
    items = listing(req)
    assert [i["text"] for i in items] == ["等待影像", "报告2", "报告1", "报告0"]  # newest first
    page = ok(req.get("/api/notifications?page=2&page_size=3"))
    assert (page["total"], [i["text"] for i in page["items"]]) == (4, ["报告0"])
    ok(req.post(f"/api/notifications/{items[1]['id']}/read"))
    assert summary(req)["unread"] == 3
    assert ok(req.post("/api/notifications/read-all"))["marked"] == 3
    assert summary(req) == {"unread": 0, "critical_pending": 0}
    assert ok(req.post("/api/notifications/read-all"))["marked"] == 0


def test_visibility_other_institutions_and_roles_get_nothing_and_404(app: Flask) -> None:
    sec = as_user(app, "sec_admin")
    trespass(app)
    (n,) = rows(app, "security_alert")
    member_sec = as_user(app, "sec_admin", institution_code="M01")
    doctor = as_user(app, "report_l1")
    for sess in (member_sec, doctor):
        refused(sess.get(f"/api/notifications/{n.id}"), 404)
        refused(sess.post(f"/api/notifications/{n.id}/read"), 404)
        refused(sess.post(f"/api/notifications/{n.id}/acknowledge"), 404)
    assert rows(app, "security_alert")[0].acknowledged_at is None
    # Each refused look was itself an AC-02 alert, to the central 安全管理员.
    alerts = [a for a in audit_rows(app, "security_alert") if a.object_type == "notification"]
    assert {a.user_id for a in alerts} == {member_sec.user.id, doctor.user.id}
    assert ok(sec.get(f"/api/notifications/{n.id}"))["id"] == n.id
    refused(sec.get("/api/notifications/2147483647"), 404)
    refused(sec.get("/api/notifications?unknown=1"), 400, "validation_error")


def test_a_user_who_loses_the_role_no_longer_sees_its_notifications(app: Flask) -> None:
    sec = as_user(app, "sec_admin")
    trespass(app)
    assert summary(sec)["critical_pending"] == 1
    with app.app_context(), uow.unit_of_work():
        user = uow.session().get(User, sec.user.id)
        assert user is not None
        user.roles = []
    again = as_user(app, "sec_admin")  # a new holder: was not addressed when it was raised
    assert summary(again)["unread"] == 0
    assert summary(sec) == {"unread": 0, "critical_pending": 0}  # the same session, the role gone
    assert listing(sec) == []


def test_kinds_registered_with_chinese_names() -> None:
    from engine.notifications import kinds

    names = {k.code: (k.name, k.severity) for k in kinds.all_kinds()}
    assert names["critical_result"] == ("危急值", "critical")
    assert names["clinical_info_incomplete"][0] == "临床资料不全"
    assert names["images_awaited"][0] == "等待影像"
    assert names["overdue"][0] == "超时提醒"
    with pytest.raises(ValueError):
        kinds.register(kinds.Kind("security_alert", "别的名字", "info"))
