"""Browser end-to-end of notifications (issue 14): a member hospital's user asks for another hospital's case
(AC-02 → security_alert); the central 安全管理员's bell pops up the critical notification, which only 确认已知晓
closes, and the acknowledgement sticks after a reload."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect
from sqlalchemy import select

from engine import uow
from engine.notifications.models import Notification
from tests.api.test_cases_flow import new_case
from tests.e2e.test_account_flow import _login
from tests.factories import Session, make_user

SHOTS = Path("/tmp/shots")


def test_security_alert_pops_up_for_the_security_admin_and_the_acknowledgement_sticks(app, page) -> None:  # type: ignore[no-untyped-def]
    base = page.base_url
    SHOTS.mkdir(parents=True, exist_ok=True)
    sec = make_user(app, "sec_admin")
    _login(page, base, sec.username, sec.password, sec.totp_secret)
    page.js_errors.clear()  # the login page's anonymous session probe (GET /api/auth/me → 401)
    page.get_by_test_id("notification-bell").wait_for()
    expect(page.get_by_test_id("critical-notification-dialog")).to_have_count(0)

    # Another user's action: a member hospital's requester asks for another hospital's case.
    owner = Session(app.test_client(), make_user(app, "requester", institution_code="M02"))
    created = new_case(owner)
    case_id, case_no = created["id"], created["case_no"]
    intruder = Session(app.test_client(), make_user(app, "requester", institution_code="M01"))
    assert intruder.get(f"/api/cases/{case_id}").status_code == 404

    # The bell polls every 30 s and at once when the window gets focus.
    page.evaluate("window.dispatchEvent(new Event('focus'))")
    dialog = page.get_by_test_id("critical-notification-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("安全告警")
    expect(dialog).to_contain_text("访问可见范围之外的对象")
    expect(dialog).to_contain_text(f"远程诊断申请 {case_no}")  # its number, not the database id
    expect(page.get_by_test_id("notification-badge")).to_contain_text("1")
    page.wait_for_timeout(400)  # the dialog's fade-in
    page.screenshot(path=str(SHOTS / "notif-critical-modal.png"))

    # Esc does not close it; only 确认已知晓 does.
    page.keyboard.press("Escape")
    expect(dialog).to_be_visible()
    page.get_by_test_id("critical-acknowledge").click()
    expect(dialog).to_be_hidden()

    page.reload()
    page.get_by_test_id("notification-bell").wait_for()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("critical-notification-dialog")).to_be_hidden()
    page.get_by_test_id("notification-bell").click()
    item = page.get_by_test_id("notification-item").first
    expect(item).to_contain_text("安全告警")
    expect(item).to_contain_text(f"已由 测试{sec.username} 于")
    expect(item).not_to_contain_text("security_alert")
    page.wait_for_timeout(400)  # the drawer's slide-in
    page.screenshot(path=str(SHOTS / "notif-bell-list.png"))

    with app.app_context():
        (n,) = uow.session().execute(select(Notification)).scalars()
        assert n.acknowledged_by_id == sec.id
        assert n.acknowledged_at is not None
    assert not page.js_errors, page.js_errors  # type: ignore[attr-defined]
