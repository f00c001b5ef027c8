"""Browser end-to-end of 我的诊断记录's status chips, date shortcuts and filters (issue 17; REQ: REC-02, REC-03,
REC-07, REC-10; UX.md R2): the 调度员's 远程诊断申请 list counts each status over 7天内, a chip filters the list and
clicking it again clears it, 当天 narrows list and counts together, and 申请医院 / 检查类别 filter both."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pyotp
from playwright.sync_api import expect

from engine import uow
from engine.cases.models import Case
from tests.api.test_cases_flow import new_case
from tests.factories import Session, institution, make_user

SHOTS = Path("/tmp/shots")


def _set(app, case_id: int, *, status: str, days_ago: int = 0, overdue: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Hand-placed fixture: the exam's status, the request `days_ago` days earlier, and overdue or not."""
    with app.app_context(), uow.unit_of_work() as s:
        case = s.get(Case, case_id)
        assert case is not None
        case.created_at -= timedelta(days=days_ago)
        case.due_at = case.created_at + (timedelta(minutes=-30) if overdue else timedelta(days=30))
        for exam in case.exams:
            exam.status = status


def _login(page, base: str, user) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/login")
    page.get_by_test_id("login-username").fill(user.username)
    page.get_by_test_id("login-password").fill(user.password)
    page.get_by_test_id("login-submit").click()
    page.locator("[data-testid='mfa-code'], [data-testid='sidebar']").first.wait_for()
    if page.get_by_test_id("mfa-code").count():
        page.get_by_test_id("mfa-code").fill(pyotp.TOTP(user.totp_secret).now())
        page.get_by_test_id("mfa-submit").click()
    page.get_by_test_id("sidebar").wait_for()


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """A screenshot once the table's loading mask and the tags' colour transition are over."""
    expect(page.locator(".el-loading-mask:visible")).to_have_count(0)
    page.wait_for_timeout(400)
    page.screenshot(path=str(SHOTS / name), full_page=True)


def _chip(page, key: str):  # type: ignore[no-untyped-def]
    return page.get_by_test_id(f"case-chip-{key}")


def test_rec07_chips_count_and_filter_and_the_date_shortcuts_narrow_both(app, page) -> None:  # type: ignore[no-untyped-def]
    base = page.base_url
    SHOTS.mkdir(parents=True, exist_ok=True)
    m01 = Session(app.test_client(), make_user(app, "requester", institution_code="M01"))
    m02 = Session(app.test_client(), make_user(app, "requester", institution_code="M02"))
    today_ct = new_case(m01, modality="CT", body_part="胸部", emergency=True)
    today_dx = new_case(m02, modality="DX", body_part="胸部")
    earlier_mr = new_case(m01, modality="MR", body_part="头颅")
    late_dx = new_case(m01, modality="DX", body_part="胸部")
    old_us = new_case(m02, modality="US", body_part="肝胆")
    _set(app, today_ct["id"], status="awaiting")
    _set(app, today_dx["id"], status="awaiting")
    _set(app, earlier_mr["id"], status="pending_review", days_ago=3)
    _set(app, late_dx["id"], status="preliminary", days_ago=2, overdue=True)
    _set(app, old_us["id"], status="released", days_ago=10)  # outside 7天内

    _login(page, base, make_user(app, "dispatcher"))
    page.goto(f"{base}/cases")
    rows = page.locator("[data-testid='case-table'] tr.el-table__row")
    expect(page.get_by_test_id("case-date-days7")).to_have_class(re.compile("is-active"))
    expect(_chip(page, "all")).to_have_text("全部 4")
    expect(_chip(page, "awaiting")).to_have_text("待诊断 2")
    expect(_chip(page, "preliminary")).to_have_text("初步报告 1")
    expect(_chip(page, "pending_review")).to_have_text("待审核 1")
    expect(_chip(page, "released")).to_have_text("已发布 0")
    expect(_chip(page, "emergency")).to_have_text("急诊 1")
    expect(_chip(page, "overdue")).to_have_text("已超时 1")
    expect(rows).to_have_count(4)
    _shot(page, "case-chips.png")

    # A chip filters; clicking it again clears it.
    _chip(page, "awaiting").click()
    expect(rows).to_have_count(2)
    expect(page.get_by_test_id("case-table")).to_contain_text(today_ct["case_no"])
    expect(page.get_by_test_id("case-table")).to_contain_text(today_dx["case_no"])
    expect(_chip(page, "awaiting")).to_have_class(re.compile("is-checked"))
    _shot(page, "case-chips-awaiting.png")
    _chip(page, "awaiting").click()
    expect(rows).to_have_count(4)
    _chip(page, "overdue").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(late_dx["case_no"])
    _chip(page, "all").click()
    expect(rows).to_have_count(4)

    # 当天: the list and the counts over today alone.
    page.get_by_test_id("case-date-today").click()
    expect(_chip(page, "all")).to_have_text("全部 2")
    expect(_chip(page, "pending_review")).to_have_text("待审核 0")
    expect(rows).to_have_count(2)
    page.get_by_test_id("case-date-days7").click()
    expect(_chip(page, "all")).to_have_text("全部 4")

    # 申请医院 and 检查类别.
    page.get_by_test_id("case-institution-filter").click()
    m02_name = institution(app, "M02").name
    page.locator(".el-select-dropdown__item:visible", has_text=f"{m02_name}（1）").click()
    expect(_chip(page, "all")).to_have_text("全部 1")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(today_dx["case_no"])
    page.get_by_test_id("case-institution-filter").hover()
    page.get_by_test_id("case-institution-filter").locator(".el-select__clear").click()
    expect(_chip(page, "all")).to_have_text("全部 4")
    page.get_by_test_id("case-modality-filter").click()
    page.get_by_test_id("case-modality-option-DX").click()
    expect(_chip(page, "all")).to_have_text("全部 2")
    expect(_chip(page, "preliminary")).to_have_text("初步报告 1")
    expect(rows).to_have_count(2)
    _shot(page, "case-chips-filtered.png")
