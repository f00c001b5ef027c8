"""Browser end-to-end of report templates and phrases, keyboard only — no mouse event anywhere (issue 17;
REQ: RPT-03, RPT-06, RPT-07, DICT-02; UX R5, R6, R7).

A doctor opens the claimed task from 我的任务 with ↓ and Enter, Alt+T searches a combination template by its pinyin
initials, Enter inserts it, Tab walks its `[A/B]` choices and `___` blanks (a digit picks an option, typing fills a
blank), Ctrl+1 and `/` insert phrases, Ctrl+Enter submits; the submitted revision holds exactly that text. A 审核医生
(template.manage) then creates a public template in 模板管理 with the keyboard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from playwright.sync_api import expect
from sqlalchemy import select

from engine import uow
from engine.reports.models import Report, ReportRevision
from engine.templates.models import ReportTemplateUsage
from engine.templates.search import initials
from tests.api.test_cases_flow import new_case, ok, the_task
from tests.factories import Session, as_user

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
COMBO = "胸部及上腹部CT平扫"
PHRASE_1 = "建议3个月后复查胸部CT。"
PHRASE_2 = "请结合临床及其他检查。"


def _seed(app: Flask) -> dict[str, Any]:
    """Two public single templates with markers, their combination, two phrases of the doctor, one claimed task."""
    req = as_user(app, "requester", institution_code="M01")
    l1, l3 = as_user(app, "report_l1"), as_user(app, "report_l3")
    chest = ok(
        l3.post(
            "/api/templates",
            json={
                "name": "胸部CT平扫肺结节",
                "kind": "single",
                "scope": "public",
                "category": "abnormal",
                "modality": "CT",
                "body_part": "胸部",
                "sections": {
                    "findings": "两肺纹理[清晰/增多]，右肺上叶见约___mm结节。",
                    "impression": "右肺上叶结节，大小约___mm。",
                    "positive": "阳性",
                },
            },
        ),
        201,
    )
    abdomen = ok(
        l3.post(
            "/api/templates",
            json={
                "name": "上腹部CT平扫正常",
                "kind": "single",
                "scope": "public",
                "category": "normal",
                "modality": "CT",
                "body_part": "上腹部",
                "sections": {
                    "findings": "肝脏大小形态正常，密度[均匀/不均匀]。",
                    "impression": "上腹部CT平扫未见明显异常。",
                },
            },
        ),
        201,
    )
    combo = ok(
        l3.post(
            "/api/templates",
            json={
                "name": COMBO,
                "kind": "combination",
                "scope": "public",
                "category": "abnormal",
                "modality": "CT",
                "body_part": "胸腹部",
                "parts": [chest["id"], abdomen["id"]],
            },
        ),
        201,
    )
    ok(l1.post("/api/phrases", json={"text": PHRASE_1, "scope": "private", "shortcut": 1}), 201)
    ok(l1.post("/api/phrases", json={"text": PHRASE_2, "scope": "private", "shortcut": None}), 201)
    case = new_case(req, modality="CT", body_part="胸部")
    task = the_task(app, case["id"], "draft_report")
    ok(l1.post(f"/api/tasks/{task.id}/claim"))
    return {"l1": l1, "l3": l3, "case": case, "combo": combo}


def _login(page, base: str, sess: Session) -> None:  # type: ignore[no-untyped-def]
    """Log in with the keyboard: type, Enter submits the form."""
    page.goto(f"{base}/login")
    page.get_by_test_id("login-username").fill(sess.user.username)
    page.get_by_test_id("login-password").fill(sess.user.password)
    page.get_by_test_id("login-password").press("Enter")
    page.get_by_test_id("sidebar").wait_for()


def _textarea(page, field: str):  # type: ignore[no-untyped-def]
    return page.locator(f"textarea[data-testid='form-input-{field}']")


def _selection(page, field: str) -> str:  # type: ignore[no-untyped-def]
    return str(_textarea(page, field).evaluate("t => t.value.slice(t.selectionStart, t.selectionEnd)"))


def _no_mouse(page) -> None:  # type: ignore[no-untyped-def]
    """Count every mouse/pointer event the page sees: the test asserts there were none. A button or radio activated
    by Enter/Space/arrow keys gets a trusted `click` too, with detail 0: that one is the keyboard's."""
    page.add_init_script(
        """
        window.__mouse = 0;
        for (const t of ['mousedown', 'mouseup', 'dblclick', 'pointerdown', 'pointerup', 'contextmenu', 'wheel'])
          window.addEventListener(t, (e) => { if (e.isTrusted) window.__mouse++ }, true);
        window.addEventListener('click', (e) => { if (e.isTrusted && e.detail > 0) window.__mouse++ }, true);
        """
    )


def test_doctor_writes_a_report_with_templates_and_phrases_by_keyboard_only(app, page) -> None:  # type: ignore[no-untyped-def]
    base = page.base_url
    seed = _seed(app)
    case_no = seed["case"]["case_no"]
    _no_mouse(page)
    _login(page, base, seed["l1"])

    # 我的任务: ↓ selects the row, Enter opens the report editor.
    page.goto(f"{base}/tasks")
    expect(page.locator("tr.el-table__row", has_text=case_no)).to_be_visible()
    page.get_by_test_id("task-table-keyboard").focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.get_by_test_id("task-form-page").wait_for()
    expect(page.get_by_test_id("task-lock-status")).to_be_visible()
    expect(page.get_by_test_id("template-panel")).to_be_visible()

    # Alt+T: the template search; the combination's pinyin initials find it; Enter inserts it.
    page.keyboard.press("Alt+t")
    expect(page.get_by_test_id("template-search")).to_be_focused()
    page.keyboard.type(initials(COMBO))
    expect(page.locator("[data-testid='template-results'] li.is-active")).to_contain_text(COMBO)
    expect(page.get_by_test_id("template-preview")).to_contain_text("胸部CT平扫肺结节")
    page.keyboard.press("Enter")
    findings = _textarea(page, "findings")
    expect(findings).to_have_value(
        "两肺纹理[清晰/增多]，右肺上叶见约___mm结节。\n肝脏大小形态正常，密度[均匀/不均匀]。"
    )
    expect(_textarea(page, "impression")).to_have_value("1. 右肺上叶结节，大小约___mm。\n2. 上腹部CT平扫未见明显异常。")
    expect(findings).to_be_focused()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "templates-editor.png"), full_page=True)

    # Tab walks the markers: a digit picks a choice's option, typing fills a blank.
    page.keyboard.press("Tab")
    assert _selection(page, "findings") == "[清晰/增多]"
    page.keyboard.press("2")
    page.keyboard.press("Tab")
    assert _selection(page, "findings") == "___"
    page.keyboard.type("8")
    page.keyboard.press("Tab")
    assert _selection(page, "findings") == "[均匀/不均匀]"
    page.keyboard.press("1")
    page.keyboard.press("Tab")
    expect(_textarea(page, "impression")).to_be_focused()
    assert _selection(page, "impression") == "___"
    page.keyboard.type("8")
    expect(findings).to_have_value("两肺纹理增多，右肺上叶见约8mm结节。\n肝脏大小形态正常，密度均匀。")

    # Phrases: Ctrl+1 (the doctor's shortcut) and `/` at a line start (pinyin search, Enter inserts).
    page.keyboard.press("Control+End")
    page.keyboard.press("Enter")
    page.keyboard.press("Control+1")
    page.keyboard.press("Enter")
    page.keyboard.press("/")
    expect(page.get_by_test_id("phrase-search-input")).to_be_focused()
    page.keyboard.type(initials(PHRASE_2)[:5])
    expect(page.locator("[data-testid='phrase-search-results'] li.is-active")).to_contain_text(PHRASE_2)
    page.screenshot(path=str(ARTIFACTS / "templates-phrase-search.png"))
    page.keyboard.press("Enter")
    impression = "1. 右肺上叶结节，大小约8mm。\n2. 上腹部CT平扫未见明显异常。\n" + PHRASE_1 + "\n" + PHRASE_2
    expect(_textarea(page, "impression")).to_have_value(impression)
    expect(_textarea(page, "impression")).to_be_focused()
    page.screenshot(path=str(ARTIFACTS / "templates-editor-filled.png"), full_page=True)

    # No marker left: Tab moves on as usual, to 建议.
    page.keyboard.press("Tab")
    expect(_textarea(page, "recommendation")).to_be_focused()

    # The panel folds to a strip (a per-user setting the server keeps); Alt+T opens it again, Esc returns to the
    # report field focused last.
    page.get_by_test_id("template-panel-collapse").focus()
    saved = "/api/me/settings/report_editor.template_panel"
    with page.expect_response(lambda r: saved in r.url and r.request.method == "PUT") as put:
        page.keyboard.press("Enter")
    assert (put.value.status, put.value.json()["value"]) == (200, {"collapsed": True})
    expect(page.get_by_test_id("template-panel-collapsed")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "templates-editor-collapsed.png"), full_page=True)
    page.keyboard.press("Alt+t")
    expect(page.get_by_test_id("template-search")).to_be_focused()
    page.keyboard.press("Escape")
    expect(_textarea(page, "recommendation")).to_be_focused()

    # Ctrl+Enter submits.
    page.keyboard.press("Control+Enter")
    page.wait_for_url(f"{base}/tasks")
    assert page.evaluate("window.__mouse") == 0

    with app.app_context():
        s = uow.session()
        report_id = s.execute(select(Report.id).where(Report.case_id == seed["case"]["id"])).scalar_one()
        rev = (
            s.execute(
                select(ReportRevision).where(ReportRevision.report_id == report_id).order_by(ReportRevision.seq.desc())
            )
            .scalars()
            .first()
        )
        assert rev is not None
        assert (rev.kind, rev.findings, rev.impression, rev.positive) == (
            "submit",
            "两肺纹理增多，右肺上叶见约8mm结节。\n肝脏大小形态正常，密度均匀。",
            impression,
            "阳性",
        )
        # the insert counted as the doctor's use of the combination (POST …/use; orders 常用★)
        uses = s.execute(
            select(ReportTemplateUsage.use_count).where(
                ReportTemplateUsage.template_id == seed["combo"]["id"],
                ReportTemplateUsage.user_id == seed["l1"].user.id,
            )
        ).scalar_one()
        assert uses == 1
    assert not [e for e in page.js_errors if "Content Security Policy" in e]


def test_admin_creates_a_public_template_by_keyboard(app, page) -> None:  # type: ignore[no-untyped-def]
    base = page.base_url
    l3 = as_user(app, "report_l3")
    _no_mouse(page)
    _login(page, base, l3)
    page.goto(f"{base}/admin/templates")
    expect(page.get_by_test_id("templates-admin-table")).to_be_visible()

    page.get_by_test_id("template-new-single").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_test_id("template-edit-dialog")
    expect(dialog).to_be_visible()
    page.get_by_test_id("template-form-name").focus()
    page.keyboard.type("头颅MR平扫正常")
    # 设备类型: ↓ opens the list on the current CT, ↓ moves to MR, Enter takes it
    page.locator("[data-testid='template-form-modality'] input").focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("template-form-modality")).to_contain_text("MR")
    page.get_by_test_id("template-form-body-part").focus()
    page.keyboard.type("头颅")
    # 范围: the radios move with the arrow keys (个人 → 本院共享 → 公共)
    page.locator("[data-testid='template-form-scope-private'] input").focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(page.locator("[data-testid='template-form-scope-public'] input")).to_be_checked()
    page.get_by_test_id("template-form-findings").focus()
    page.keyboard.type("脑实质未见异常信号，中线结构[居中/偏移]。")
    page.get_by_test_id("template-form-impression").focus()
    page.keyboard.type("头颅MR平扫未见明显异常。")
    page.screenshot(path=str(ARTIFACTS / "templates-admin-dialog.png"), full_page=True)
    page.get_by_test_id("template-form-save").focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    row = page.locator("[data-testid='templates-admin-table'] tr.el-table__row", has_text="头颅MR平扫正常")
    expect(row).to_be_visible()
    expect(row).to_contain_text("公共")
    expect(row).to_contain_text("正常")
    expect(row).to_contain_text("MR")
    page.screenshot(path=str(ARTIFACTS / "templates-admin.png"), full_page=True)
    assert page.evaluate("window.__mouse") == 0

    found = ok(l3.get("/api/templates?q=" + initials("头颅MR平扫正常")))
    (item,) = found["items"]
    assert (item["scope"], item["kind"], item["modality"], item["body_part"]) == ("public", "single", "MR", "头颅")
    full = ok(l3.get(f"/api/templates/{item['id']}"))
    assert full["sections"]["findings"] == "脑实质未见异常信号，中线结构[居中/偏移]。"
    # another doctor sees it in 科室共享 / 全部
    other = as_user(app, "report_l1")
    assert "头颅MR平扫正常" in [t["name"] for t in ok(other.get("/api/templates?tab=all&page_size=50"))["items"]]
