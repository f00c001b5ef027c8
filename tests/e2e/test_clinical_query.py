"""Browser end-to-end of 临床资料补充 (issue 14, the second process): the doctor holding a case's task asks the
requesting hospital from the case page (补充临床资料); the hospital's 登记员 takes and answers it in the generated
form on the same page; the doctor sees the answer there."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.api.test_cases_flow import Team, new_case, ok
from tests.e2e.test_account_flow import _login
from tests.e2e.test_case_flow import _switch
from tests.factories import make_user

SHOTS = Path("/tmp/shots")


def test_a_doctor_asks_the_requesting_hospital_which_answers_on_the_case_page(app, page) -> None:  # type: ignore[no-untyped-def]
    base = page.base_url
    SHOTS.mkdir(parents=True, exist_ok=True)
    team = Team(app)
    case = new_case(team.req)
    task = team.to_level(case["id"], "draft_report")
    ok(team.l1.post(f"/api/tasks/{task.id}/claim"))
    reg = make_user(app, "registrar", institution_code="M01")

    _login(page, base, team.l1.user.username, team.l1.user.password)
    page.goto(f"{base}/cases/{case['id']}")
    page.get_by_test_id("clinical-queries").wait_for()
    expect(page.get_by_test_id("clinical-queries")).to_contain_text("暂无临床资料补充")
    page.get_by_test_id("clinical-query-ask").click()
    page.get_by_test_id("clinical-query-question").fill("请补充患者既往胸部手术史及近期血常规结果。")
    page.wait_for_timeout(500)  # the dialog's fade-in
    page.screenshot(path=str(SHOTS / "clinical-query-ask.png"))
    page.get_by_test_id("clinical-query-send").click()
    table = page.get_by_test_id("clinical-query-table")
    expect(table).to_contain_text("请补充患者既往胸部手术史")
    expect(table).to_contain_text("待答复")

    _switch(page, base, reg)
    page.goto(f"{base}/cases/{case['id']}")
    page.get_by_test_id("clinical-query-answer-open").click()
    dialog = page.get_by_test_id("clinical-query-answer")
    expect(dialog).to_contain_text("需补充的临床资料")
    dialog.locator("textarea").nth(1).fill("2019年行右肺上叶切除术；血常规（12月1日）白细胞 6.2×10⁹/L。")
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "clinical-query-answer.png"))
    page.get_by_test_id("clinical-query-submit").click()
    expect(page.get_by_test_id("clinical-query-table")).to_contain_text("已答复")
    expect(page.get_by_test_id("clinical-query-answer-open")).to_have_count(0)

    _switch(page, base, team.l1.user)
    page.goto(f"{base}/cases/{case['id']}")
    table = page.get_by_test_id("clinical-query-table")
    expect(table).to_contain_text("右肺上叶切除术")
    expect(table).to_contain_text("已答复")
    page.wait_for_timeout(500)
    page.get_by_test_id("clinical-queries").screenshot(path=str(SHOTS / "clinical-query-doctor.png"))
    page.screenshot(path=str(SHOTS / "clinical-query-case-page.png"), full_page=True)
    assert not [e for e in page.js_errors if "401" not in e], page.js_errors
