"""Browser: per-user list columns stick across a reload, and the one keymap's `?` overlay (issue 14)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.test_account_flow import _login
from tests.factories import make_user

SHOTS = Path("/tmp/shots")


def _headers(page) -> list[str]:  # type: ignore[no-untyped-def]
    cells = page.get_by_test_id("task-table").locator(".el-table__header-wrapper th .cell")
    return [t.strip() for t in cells.all_inner_texts() if t.strip()]


def test_task_list_columns_stick_and_the_keymap_overlay(app, page) -> None:  # type: ignore[no-untyped-def]
    base = page.base_url
    doc = make_user(app, "report_l1")
    _login(page, base, doc.username, doc.password)
    page.js_errors.clear()  # the login page's anonymous session probe (GET /api/auth/me → 401)
    page.goto(f"{base}/tasks")
    page.get_by_test_id("task-table").wait_for()
    before = _headers(page)
    assert before[:5] == ["急诊", "剩余时限", "申请单号", "姓名", "检查类别"], before

    # Hide 检查类别 and move 任务 two places up, in the 列设置 popover.
    page.get_by_test_id("task-table-columns").click()
    panel = page.get_by_test_id("task-table-columns-panel")
    panel.wait_for()
    panel.get_by_test_id("task-table-columns-shown-modality").click()
    panel.get_by_test_id("task-table-columns-up-title").click()
    panel.get_by_test_id("task-table-columns-up-title").click()
    expect(panel).to_contain_text("列设置")
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "settings-columns-popover.png"))
    expect(page.get_by_test_id("task-table").locator(".el-table__header-wrapper")).not_to_contain_text("检查类别")
    after = _headers(page)
    assert "检查类别" not in after
    assert after[:5] == ["急诊", "剩余时限", "申请单号", "姓名", "任务"], after

    # The debounced save reaches the server; after a reload the arrangement is the same.
    saved = None
    for _ in range(50):
        saved = page.request.get(f"{base}/api/me/settings/list.tasks.columns").json()
        if saved["source"] == "user" and [c["id"] for c in saved["value"]].index("title") == 2:
            break
        page.wait_for_timeout(100)
    assert saved is not None
    assert saved["source"] == "user"
    assert {"id": "modality", "shown": False, "width": None} in saved["value"]
    page.reload()
    page.get_by_test_id("task-table").wait_for()
    expect(page.get_by_test_id("task-table").locator(".el-table__header-wrapper")).not_to_contain_text("检查类别")
    assert _headers(page) == after

    # `?` typed in the search box is just a character; elsewhere it opens the overlay listing the bindings in Chinese.
    search = page.get_by_test_id("task-search")
    search.click()
    page.keyboard.type("?")
    expect(search).to_have_value("?")
    page.wait_for_timeout(300)
    expect(page.get_by_test_id("keymap-help")).to_be_hidden()
    search.fill("")
    page.get_by_test_id("task-table-keyboard").focus()
    page.keyboard.press("Shift+Slash")
    help_ = page.get_by_test_id("keymap-help")
    expect(help_).to_be_visible()
    shown = ("快捷键", "全局", "列表", "报告编辑", "显示全部快捷键", "选择下一行", "打开选中的行", "保存草稿")
    for text in (*shown, "当前页面可用"):
        expect(help_).to_contain_text(text)
    page.screenshot(path=str(SHOTS / "settings-keymap-overlay.png"))
    page.keyboard.press("Shift+Slash")
    expect(help_).to_be_hidden()
    assert page.js_errors == []
