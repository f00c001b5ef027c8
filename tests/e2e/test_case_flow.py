"""Browser end-to-end of the case flow: a member hospital submits → pool → claim → write → review → approve →
the member hospital sees and prints the released report (issue 3; REQ: REG-12, DISP-03/04, RPT-10, REC-04)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.test_account_flow import _login
from tests.factories import make_user


def _switch(page, base: str, user) -> None:  # type: ignore[no-untyped-def]
    """Log out (the server-side session ends) and log in as someone else."""
    page.get_by_test_id("logout-button").click()
    page.get_by_test_id("login-username").wait_for()
    _login(page, base, user.username, user.password)


def _open(page, base: str, title: str, *, pool: bool) -> None:  # type: ignore[no-untyped-def]
    if pool:
        page.goto(f"{base}/pool")
        row = page.locator("tr.el-table__row", has_text=title).first
        row.get_by_test_id("pool-claim").click()
        page.locator(".el-message", has_text="抢单成功").wait_for()
        page.goto(f"{base}/tasks")
    else:
        page.goto(f"{base}/tasks")
        page.locator("#tab-group").click()
    row = page.locator("tr.el-table__row", has_text=title).first
    row.dblclick()
    page.get_by_test_id("task-form-page").wait_for()


def test_case_submit_pool_review_release_print(app, page) -> None:  # type: ignore[no-untyped-def]
    base = page.base_url
    reg = make_user(app, "registrar", institution_code="M01")
    l1, l2, l3 = make_user(app, "report_l1"), make_user(app, "report_l2"), make_user(app, "report_l3")

    # 1. The member hospital's 登记员 submits a remote-diagnosis request.
    _login(page, base, reg.username, reg.password)
    page.goto(f"{base}/cases/new")
    page.get_by_test_id("case-patient-no").fill("E2E-0001")
    page.get_by_test_id("case-patient-name").fill("测试患者")
    page.get_by_test_id("case-patient-sex").click()
    page.get_by_test_id("case-sex-option-M").click()
    birth = page.get_by_test_id("case-patient-birth-date").locator("input")
    birth.fill("1970-01-01")
    birth.press("Enter")
    page.get_by_test_id("case-exam-modality").click()
    page.get_by_test_id("case-modality-option-CT").click()
    page.get_by_test_id("case-exam-body-part").fill("胸部")
    page.get_by_test_id("case-exam-item").fill("胸部平扫")
    page.get_by_test_id("case-clinical-info").fill("咳嗽两周")
    page.keyboard.press("Control+s")
    page.get_by_test_id("case-detail").wait_for()
    case_no = page.get_by_test_id("case-detail-no").inner_text().strip()
    assert case_no.startswith("RC")
    page.get_by_test_id("case-diagram").locator(".djs-container").wait_for()  # bpmn-js renders the flow

    # 2. 初级报告医生 grabs it from the pool, writes and submits (the editor holds the report lock).
    _switch(page, base, l1)
    _open(page, base, case_no, pool=True)
    expect(page.get_by_test_id("task-lock-status")).to_be_visible()
    page.get_by_test_id("form-input-findings").fill("右肺上叶见一结节，直径约 8 mm。")
    page.get_by_test_id("form-input-impression").fill("右肺上叶结节，建议随访。")
    page.get_by_test_id("form-option-positive-阳性").click()
    page.get_by_test_id("task-submit").click()
    page.wait_for_url(f"{base}/tasks")

    # 3. 报告医生 confirms, 4. 审核医生 approves — each from their role queue (组内任务).
    _switch(page, base, l2)
    _open(page, base, case_no, pool=False)
    page.get_by_test_id("form-field-decision").get_by_text("确认").click()
    page.get_by_test_id("task-submit").click()
    page.wait_for_url(f"{base}/tasks")
    _switch(page, base, l3)
    _open(page, base, case_no, pool=False)
    expect(page.locator("[data-testid^='revision-'][data-level='l1']").first).to_be_visible()
    page.get_by_test_id("form-field-decision").get_by_text("通过").click()
    page.get_by_test_id("task-submit").click()
    page.wait_for_url(f"{base}/tasks")

    # 5. The member hospital sees the released report and prints it (已打印).
    _switch(page, base, reg)
    page.goto(f"{base}/cases")
    page.locator("tr.el-table__row", has_text=case_no).dblclick()
    expect(page.get_by_test_id("case-report-findings")).to_contain_text("右肺上叶")
    expect(page.locator("[data-testid='exam-status-tag'][data-status='released']").first).to_be_visible()
    page.evaluate("window.print = () => {}")
    page.get_by_test_id("case-print").click()
    expect(page.get_by_test_id("case-printed-tag")).to_have_text("已打印")
    csp = [e for e in page.js_errors if "Content Security Policy" in e]
    assert not csp, csp
