"""Browser: the case list's search box says it takes 拼音首字母, and "zs" finds 张三 (issue 14)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.api.test_cases_flow import new_case
from tests.e2e.test_account_flow import _login
from tests.factories import Session, make_user

SHOTS = Path("/tmp/shots")


def test_case_list_finds_a_patient_by_pinyin_initials(app, page) -> None:  # type: ignore[no-untyped-def]
    base = page.base_url
    req = make_user(app, "requester", institution_code="M01")
    api = Session(app.test_client(), req)
    for no, name in (("PY1", "张三"), ("PY2", "李四"), ("PY3", "曾小贤")):
        new_case(api, patient={"patient_no": no, "name": name, "sex": "M"})
    _login(page, base, req.username, req.password)
    page.js_errors.clear()  # the login page's anonymous session probe (GET /api/auth/me → 401)
    page.goto(f"{base}/cases")
    search = page.get_by_test_id("case-search")
    expect(search).to_have_attribute("placeholder", "姓名/拼音首字母、检查号或申请单号")
    table = page.locator(".el-table__body-wrapper")
    for name in ("张三", "李四", "曾小贤"):
        expect(table).to_contain_text(name)
    SHOTS.mkdir(exist_ok=True)
    page.get_by_test_id("case-search").locator("xpath=ancestor::div[contains(@class,'toolbar')]").screenshot(
        path=str(SHOTS / "pinyin-cases-placeholder.png")
    )

    search.fill("zs")
    search.press("Enter")
    expect(table).not_to_contain_text("李四")
    expect(table).to_contain_text("张三")
    expect(table).not_to_contain_text("曾小贤")  # 曾 as a surname is zeng: zxx, not zs
    page.screenshot(path=str(SHOTS / "pinyin-cases.png"))

    search.fill("zxx")
    search.press("Enter")
    expect(table).to_contain_text("曾小贤")
    expect(table).not_to_contain_text("张三")
    assert page.js_errors == []
