"""Browser end-to-end: register with photos → review → approve with a role → the new user sees only that role's menu.

REQ: ACCT-03, ACCT-04, ACCT-05; AC-02 (a role the institution may not hold is offered disabled); AC-03 (menus follow
permissions); WEB-04/PII-06 (no CSP violations in a real browser).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
from playwright.sync_api import expect

from tests.factories import VALID_ID_NUMBERS, image_bytes, make_user

ADMIN_MENUS = ("menu.account_review", "menu.users", "menu.roles", "menu.audit")


def _login(page, base: str, username: str, password: str, totp: str | None = None) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/login")
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    if totp:
        page.get_by_test_id("mfa-code").fill(pyotp.TOTP(totp).now())
        page.get_by_test_id("mfa-submit").click()
    page.get_by_test_id("sidebar").wait_for()


def _menus(page) -> set[str]:  # type: ignore[no-untyped-def]
    ids = page.locator("[data-testid^='menu-menu.']").evaluate_all("els => els.map(e => e.dataset.testid)")
    return {i.removeprefix("menu-") for i in ids}


def _select(page, trigger: str, option: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_test_id(trigger).click()
    page.get_by_test_id(option).click()


def test_register_review_approve_then_role_menu(app, page, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = page.base_url
    id_photo, qual_photo = tmp_path / "身份证.jpg", tmp_path / "资格证.png"
    id_photo.write_bytes(image_bytes("JPEG", (320, 200), "navy"))
    qual_photo.write_bytes(image_bytes("PNG", (300, 400), "teal"))

    # 1. A doctor of member hospital M01 registers (自助注册) with both photos.
    page.goto(f"{base}/register")
    page.get_by_test_id("reg-username").fill("e2e_doctor")
    page.get_by_test_id("reg-password").fill("Reg#Strong2026")
    page.get_by_test_id("reg-password-confirm").fill("Reg#Strong2026")
    page.get_by_test_id("reg-full-name").fill("端到端医生")
    _select(page, "reg-institution", "reg-institution-option-M01")
    page.get_by_test_id("reg-title").fill("主治医师")
    page.get_by_test_id("reg-phone").fill("13912345678")
    page.get_by_test_id("reg-id-number").fill(VALID_ID_NUMBERS[1])
    page.get_by_test_id("reg-id-card-photo").locator("input[type=file]").set_input_files(str(id_photo))
    page.get_by_test_id("reg-qualification-photo").locator("input[type=file]").set_input_files(str(qual_photo))
    page.get_by_test_id("reg-id-card-photo-preview").wait_for()
    page.get_by_test_id("reg-submit").click()
    page.get_by_test_id("reg-success").wait_for()

    # Pending accounts cannot log in yet.
    page.goto(f"{base}/login")
    page.get_by_test_id("login-username").fill("e2e_doctor")
    page.get_by_test_id("login-password").fill("Reg#Strong2026")
    page.get_by_test_id("login-submit").click()
    assert "审核" in page.get_by_test_id("login-error").inner_text()

    # 2. The 安全管理员 reviews: finds the application by name, views the photos, approves with 申请医生 (a central-only
    #    role such as 报告医生 is offered disabled, with the reason in Chinese — issue 11).
    sec = make_user(app, "sec_admin")
    admin_ctx = browser.new_context(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1400, "height": 900}
    )
    admin = admin_ctx.new_page()
    admin.set_default_timeout(15000)
    admin_errors: list[str] = []
    admin.on("pageerror", lambda exc: admin_errors.append(str(exc)))
    _login(admin, base, sec.username, sec.password, sec.totp_secret)
    assert {"menu.account_review", "menu.users", "menu.roles"} <= _menus(admin)
    assert "menu.audit" not in _menus(admin)  # 三权分立: the security admin never sees the audit log
    admin.get_by_test_id("menu-menu.account_review").click()
    admin.get_by_test_id("review-search").fill("端到端")
    admin.get_by_test_id("review-search-btn").click()
    row = admin.locator("tr.el-table__row", has_text="端到端医生")
    row.wait_for()
    assert admin.locator("tr.el-table__row").count() == 1
    row.get_by_test_id("review-detail").click()
    drawer = admin.get_by_test_id("review-drawer")
    drawer.wait_for()
    assert re.fullmatch(r"\d{6}\*{8}\d{3}[\dX]", admin.get_by_test_id("review-detail-id-number").inner_text().strip())
    photo = admin.get_by_test_id("review-photo-id_card").locator("img")
    # The watermarked photo really loads through the authorised handler (wait for the decode, not just the tag).
    expect(photo).to_have_js_property("naturalWidth", 320)
    admin.keyboard.press("Escape")
    row.get_by_test_id("review-approve").click()
    admin.get_by_test_id("review-approve-dialog").wait_for()
    admin.get_by_test_id("role-select").click()
    central_only = admin.get_by_test_id("role-option-report_l2")
    expect(central_only).to_have_class(re.compile(r"\bis-disabled\b"))
    expect(central_only).to_contain_text("仅限中心医院")
    admin.get_by_test_id("role-option-requester").click()
    admin.keyboard.press("Escape")
    admin.get_by_test_id("review-approve-confirm").click()
    admin.get_by_role("tab", name="已通过").click()
    admin.locator("tr.el-table__row", has_text="端到端医生").wait_for()
    assert not admin_errors, admin_errors
    admin_ctx.close()

    # 3. The new user logs in and sees only that role's menu.
    _login(page, base, "e2e_doctor", "Reg#Strong2026")
    menus = _menus(page)
    # Exactly the 申请医生's menus: its requests and images (shown once the SPA knows them) and nothing admin.
    requester_menus = {"menu.home", "menu.profile", "menu.cases", "menu.imaging"}
    assert {"menu.home", "menu.profile"} <= menus <= requester_menus
    assert not set(ADMIN_MENUS) & menus
    assert "端到端医生" in page.get_by_test_id("header-user-name").inner_text()
    page.goto(f"{base}/admin/users")
    page.get_by_test_id("page-403").wait_for()  # a route outside the menus answers 无权访问
    csp = [e for e in page.js_errors if "Content Security Policy" in e]
    assert not csp, csp
