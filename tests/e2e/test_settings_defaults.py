"""Browser: the 系统管理员's institution default for the task-list columns reaches a doctor with no own setting, the
doctor's own change overrides it, and a landing page chosen in 个人中心 is honoured at the next login (issue 14)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.test_account_flow import _login
from tests.factories import make_user

SHOTS = Path("/tmp/shots")


def _headers(page) -> list[str]:  # type: ignore[no-untyped-def]
    cells = page.get_by_test_id("task-table").locator(".el-table__header-wrapper th .cell")
    return [t.strip() for t in cells.all_inner_texts() if t.strip()]


def _wait_setting(page, key: str, ok) -> dict:  # type: ignore[no-untyped-def]
    """The debounced save reaches the server."""
    got: dict = {}
    for _ in range(50):
        got = page.request.get(f"{page.base_url}/api/me/settings/{key}").json()
        if ok(got):
            return got
        page.wait_for_timeout(100)
    raise AssertionError(got)


def _logout(page) -> None:  # type: ignore[no-untyped-def]
    page.get_by_test_id("logout-button").click()
    page.wait_for_url(f"{page.base_url}/login")


def test_institution_default_columns_own_override_and_landing_page(app, page) -> None:  # type: ignore[no-untyped-def]
    base = page.base_url
    SHOTS.mkdir(exist_ok=True)
    admin = make_user(app, "sys_admin")
    doc = make_user(app, "report_l1")

    # 1. The 系统管理员 opens 默认个人设置 from the sidebar and hides 检查类别 in 我的任务 for the institution.
    _login(page, base, admin.username, admin.password, admin.totp_secret)
    page.js_errors.clear()  # the login page's anonymous session probe (GET /api/auth/me → 401)
    menu = page.get_by_test_id("menu-setting.default.manage")
    expect(menu).to_have_text("默认个人设置")
    menu.click()
    page.wait_for_url(f"{base}/admin/settings/defaults")
    table = page.get_by_test_id("sd-table")
    expect(table).to_contain_text("我的任务列表的列")
    expect(table).to_contain_text("登录后首页")
    expect(table).to_contain_text("报告编辑器字号")
    expect(page.get_by_test_id("sd-inst-list.tasks.columns")).to_have_text("未设置（使用系统默认）")
    expect(page.locator(".el-loading-mask")).to_have_count(0)
    expect(page.get_by_test_id("sd-save-list.tasks.columns")).to_be_disabled()  # nothing changed yet
    page.screenshot(path=str(SHOTS / "defaults-page.png"), full_page=True)

    page.get_by_test_id("sd-columns-tasks").click()
    panel = page.get_by_test_id("sd-columns-tasks-panel")
    panel.wait_for()
    panel.get_by_test_id("sd-columns-tasks-shown-modality").click()
    expect(page.get_by_test_id("sd-editor-list.tasks.columns")).to_contain_text("隐藏：检查类别")
    page.wait_for_timeout(300)  # the popover's fade-in
    page.screenshot(path=str(SHOTS / "defaults-columns-editor.png"))
    page.get_by_test_id("sd-name-list.tasks.columns").click()  # close the popover
    page.get_by_test_id("sd-save-list.tasks.columns").click()
    expect(page.get_by_test_id("sd-inst-list.tasks.columns")).to_have_text("隐藏：检查类别")
    defaults = page.request.get(f"{base}/api/settings/defaults").json()
    assert [(d["key"], d["role"]) for d in defaults] == [("list.tasks.columns", None)]
    assert {"id": "modality", "shown": False, "width": None} in defaults[0]["value"]
    page.screenshot(path=str(SHOTS / "defaults-saved.png"), full_page=True)
    assert page.js_errors == []
    _logout(page)

    # 2. A doctor of the institution with no own setting: 检查类别 is hidden.
    _login(page, base, doc.username, doc.password)
    page.js_errors.clear()
    page.goto(f"{base}/tasks")
    page.get_by_test_id("task-table").wait_for()
    expect(page.get_by_test_id("task-table").locator(".el-table__header-wrapper")).not_to_contain_text("检查类别")
    assert "申请单号" in _headers(page)
    got = page.request.get(f"{base}/api/me/settings/list.tasks.columns").json()
    assert got["source"] == "institution"
    page.screenshot(path=str(SHOTS / "defaults-doctor-tasks.png"))

    # 3. The doctor's own change (show 检查类别 again) overrides the default, also after a reload.
    page.get_by_test_id("task-table-columns").click()
    panel = page.get_by_test_id("task-table-columns-panel")
    panel.wait_for()
    panel.get_by_test_id("task-table-columns-shown-modality").click()
    expect(page.get_by_test_id("task-table").locator(".el-table__header-wrapper")).to_contain_text("检查类别")
    own = _wait_setting(page, "list.tasks.columns", lambda s: s["source"] == "user")
    assert {"id": "modality", "shown": True, "width": None} in own["value"]
    page.reload()
    page.get_by_test_id("task-table").wait_for()
    expect(page.get_by_test_id("task-table").locator(".el-table__header-wrapper")).to_contain_text("检查类别")
    page.screenshot(path=str(SHOTS / "defaults-doctor-own.png"))

    # 4. 个人中心 › 登录后首页 lists the doctor's pages by name; 抢单池 is used at the next login.
    page.get_by_test_id("menu-menu.profile").click()
    page.wait_for_url(f"{base}/profile")
    prefs = page.get_by_test_id("profile-preferences")
    expect(prefs).to_contain_text("登录后首页")
    expect(page.get_by_test_id("profile-landing-now")).to_contain_text("登录后进入“首页”")
    page.get_by_test_id("profile-landing").click()
    options = page.locator(".profile-landing-popper .el-select-dropdown__item:visible")
    expect(options.first).to_be_visible()
    texts = [t.strip() for t in options.all_inner_texts()]
    assert texts == ["默认", "首页", "个人中心", "远程诊断申请", "我的任务", "抢单池", "影像检查", "模板管理"], (
        texts
    )  # sidebar order
    page.screenshot(path=str(SHOTS / "landing-profile-options.png"))
    page.locator(".profile-landing-popper .el-select-dropdown__item:visible", has_text="抢单池").click()
    expect(page.get_by_test_id("profile-landing-now")).to_contain_text("登录后进入“抢单池”")
    _wait_setting(page, "landing_page", lambda s: s["value"] == "menu.pool" and s["source"] == "user")
    page.screenshot(path=str(SHOTS / "landing-profile.png"), full_page=True)
    assert page.js_errors == []
    _logout(page)

    _login(page, base, doc.username, doc.password)
    page.wait_for_url(f"{base}/pool")
    page.get_by_test_id("pool-table").wait_for()
    expect(page.get_by_test_id("menu-menu.pool")).to_contain_class("is-active")
    page.screenshot(path=str(SHOTS / "landing-after-login.png"))
