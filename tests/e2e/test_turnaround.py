"""Browser end-to-end of 报告时限 (issue 17; UX.md R3): the 抢单池 shows 剩余时限 counting down, an overdue case red
and first, and the column sorts the most urgent first; the 流程管理员 edits the rule table on its page."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import expect

from engine import uow
from engine.cases.models import Case
from tests.api.test_cases_flow import new_case
from tests.e2e.test_account_flow import _login
from tests.factories import Session, make_user

SHOTS = Path("/tmp/shots")


def _backdate(app, case_id: int, minutes: int) -> None:  # type: ignore[no-untyped-def]
    """As if the case had been requested `minutes` ago (its due time moves with it)."""
    with app.app_context(), uow.unit_of_work() as s:
        case = s.get(Case, case_id)
        assert case is not None
        assert case.due_at is not None
        case.created_at -= timedelta(minutes=minutes)
        case.due_at -= timedelta(minutes=minutes)


def test_r3_pool_counts_down_overdue_red_and_first_and_the_admin_edits_rules(app, page) -> None:  # type: ignore[no-untyped-def]
    base = page.base_url
    SHOTS.mkdir(parents=True, exist_ok=True)
    registrar = Session(app.test_client(), make_user(app, "registrar", institution_code="M01"))
    fresh = new_case(registrar, modality="US", body_part="肝胆", emergency=True)  # no rule: 24 h
    late = new_case(registrar, modality="DX", body_part="胸部")  # 普通 X线: 2 h
    near = new_case(registrar, modality="CT", body_part="头颅", emergency=True)  # 急诊 CT 头颅: 30 min
    _backdate(app, late["id"], 150)  # 30 minutes overdue
    _backdate(app, near["id"], 25)  # 25 of 30 minutes gone: amber

    doctor = make_user(app, "report_l1")
    _login(page, base, doctor.username, doctor.password)
    page.goto(f"{base}/pool")
    rows = page.locator("[data-testid='pool-table'] tr.el-table__row")
    expect(rows.first).to_contain_text(late["case_no"])  # overdue first, before both emergencies
    first = rows.first
    expect(first.get_by_test_id("tat-overdue")).to_have_text("超时 30分钟")
    expect(first.locator("td").first).to_have_text("")  # not an emergency: no tag, and never a raw value
    near_row = rows.filter(has_text=near["case_no"])
    expect(near_row.get_by_test_id("tat-warning")).to_have_text("剩 5分钟")
    expect(rows.filter(has_text=fresh["case_no"]).get_by_test_id("tat-ok")).to_have_text(
        re.compile(r"剩 (1天|23小时\d\d分)")
    )
    page.screenshot(path=str(SHOTS / "tat-pool.png"), full_page=True)

    # Sorting 剩余时限: by due time — overdue, then the amber one, then the 24-hour one.
    page.locator("[data-testid='pool-table'] th", has_text="剩余时限").click()
    expect(rows.nth(1)).to_contain_text(near["case_no"])
    order = [rows.nth(i).inner_text() for i in range(rows.count())]
    mine = [n for n in (late["case_no"], near["case_no"], fresh["case_no"]) if any(n in r for r in order)]
    assert [next(i for i, r in enumerate(order) if n in r) for n in mine] == sorted(
        next(i for i, r in enumerate(order) if n in r) for n in mine
    )

    # The 流程管理员's rule table.
    page.get_by_test_id("logout-button").click()
    page.get_by_test_id("login-username").wait_for()
    admin = make_user(app, "process_admin")  # an administrator: two-factor sign-in
    _login(page, base, admin.username, admin.password, admin.totp_secret)
    page.get_by_test_id("sidebar").get_by_text("报告时限规则").click()
    table = page.get_by_test_id("tat-rules-table")
    expect(table).to_contain_text("急诊 CT 头颅")
    expect(table).to_contain_text("4小时（工作时间）")
    page.screenshot(path=str(SHOTS / "tat-rules.png"), full_page=True)
    page.get_by_test_id("tat-rule-new").click()
    page.get_by_test_id("tat-rule-name").fill("急诊 US")  # Element Plus puts the test id on the <input>
    page.get_by_test_id("tat-rule-modality").click()
    page.locator(".el-select-dropdown__item:visible", has_text="US").first.click()
    page.get_by_test_id("tat-rule-priority").get_by_text("急诊", exact=True).click()
    page.get_by_test_id("tat-rule-hours").locator("input").fill("0")
    page.get_by_test_id("tat-rule-minutes").locator("input").fill("45")
    page.get_by_test_id("tat-rule-minutes").locator("input").press("Tab")
    page.wait_for_timeout(300)  # the dialog's fade-in
    page.screenshot(path=str(SHOTS / "tat-rule-dialog.png"))
    page.get_by_test_id("tat-rule-save").click()
    expect(table.locator("tr", has_text="急诊 US")).to_contain_text("45分钟")
    assert new_case(registrar, modality="US", body_part="甲状腺", emergency=True)["tat_limit_minutes"] == 45
