"""Browser end-to-end of the report beside the images (REQ: RPT-12, REC-11/12; UX R23): the central doctor's report
page switches to 报告+影像 (the viewer embedded beside the editor, remembered per user), opens the viewer window
(在新窗口打开影像), moves to the next task in the report window — and the viewer window loads that task's study (the
time it took, from the click on 下一个任务 to the new study's first image, is printed; UX R23 asks for 1 s, a figure a
shared test machine cannot promise); a series and a key image picked in the report's 图像 card are shown in the viewer
window, a key image marked there with K appears in the card; the window's position is remembered in the settings.
Cornerstone3D renders through WebGL: Chromium runs SwiftShader. Screenshots go to /tmp/shots/upload/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import generate_uid

from tests.api.test_cases_flow import new_case, ok, the_task
from tests.api.test_upload_link import _link
from tests.dicomweb.test_stow import fresh, multipart, post
from tests.e2e.test_account_flow import _login
from tests.factories import Session, as_user, institution

SHOTS = Path("/tmp/shots/upload")


@pytest.fixture
def context(gl_browser, live_server) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    ctx = gl_browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1500, "height": 900})
    ctx.set_default_timeout(30000)
    ctx.base_url = live_server
    ctx.js_errors = []
    ctx.on("page", lambda pg: _watch(ctx, pg))
    yield ctx
    ctx.close()


def _watch(ctx: Any, pg: Any) -> None:
    pg.on("pageerror", lambda exc: ctx.js_errors.append(str(exc)))
    pg.on("console", lambda msg: ctx.js_errors.append(msg.text) if msg.type == "error" else None)


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


SERIES = (("序列甲", 5), ("序列乙", 1), ("序列丙", 1))
ACTIVE_SERIES = "d => document.querySelector('[data-testid=viewer-series-browser] .active')?.innerText.includes(d)"


def _case_with_study(app: Any, reg: Session, doctor: Session, name: str, series: int = 1) -> tuple[int, str]:
    """A case of M01 with a two-slice CT uploaded and linked to its exam, its draft task claimed by the doctor; with
    `series` 3: three series of SERIES (five slices, then one and one)."""
    case = new_case(reg, modality="CT")
    study = generate_uid()
    shape = SERIES if series == 3 else (("", 2),)
    parts = [
        fresh(
            "CT_small.dcm",
            StudyInstanceUID=study,
            SeriesInstanceUID=uid,
            SeriesNumber=n + 1,
            SeriesDescription=desc,
            InstanceNumber=i + 1,
            StudyDescription=name,
            SpecificCharacterSet="ISO_IR 192",
        )
        for n, ((desc, count), uid) in enumerate(zip(shape, [generate_uid() for _ in shape], strict=True))
        for i in range(count)
    ]
    assert post(reg, multipart(parts)).status_code == 200
    assert _link(reg, case["exams"][0]["id"], study).status_code == 200
    task = the_task(app, case["id"], "draft_report")
    ok(doctor.post(f"/api/tasks/{task.id}/claim"))
    return task.id, study


def test_rpt12_viewer_window_follows_the_report_window(app, context) -> None:  # type: ignore[no-untyped-def]
    base = context.base_url
    institution(app, "M01")
    reg = as_user(app, "registrar", institution_code="M01")
    doctor = as_user(app, "report_l1")
    task1, study1 = _case_with_study(app, reg, doctor, "第一例")
    task2, study2 = _case_with_study(app, reg, doctor, "第二例", series=3)

    page = context.new_page()
    _login(page, base, doctor.user.username, doctor.user.password)
    page.goto(f"{base}/tasks/{task1}")
    page.get_by_test_id("task-lock-status").wait_for()

    # 报告+影像: the viewer beside the editor, remembered for this doctor
    page.get_by_test_id("report-layout-split").click()
    pane = page.get_by_test_id("report-viewer-pane")
    pane.wait_for()
    page.wait_for_function(
        "uid => document.querySelector('[data-testid=report-viewer-pane]').dataset.study === uid", arg=study1
    )
    pane.get_by_test_id("viewer-viewport-0").wait_for()
    page.wait_for_timeout(1500)
    _shot(page, "10-report-split")
    page.wait_for_timeout(600)  # the setting is saved after 400 ms of quiet
    page.reload()
    page.get_by_test_id("report-split").wait_for()
    page.wait_for_function("() => document.querySelector('[data-testid=report-split]').dataset.mode === 'split'")
    page.get_by_test_id("report-layout-report").click()
    page.wait_for_function("() => document.querySelector('[data-testid=report-split]').dataset.mode === 'report'")

    # 在新窗口打开影像: the viewer window shows the task's study and says it follows the report window
    with context.expect_event("page") as popup:
        page.get_by_test_id("open-viewer-window").click()
    viewer = popup.value
    viewer.wait_for_url("**/viewer/window?**")
    win = viewer.get_by_test_id("viewer-window")
    win.wait_for()
    viewer.wait_for_function(
        "uid => document.querySelector('[data-testid=viewer-window]').dataset.study === uid", arg=study1
    )
    viewer.wait_for_function("() => document.querySelector('[data-testid=viewer-window]').dataset.linked === 'yes'")
    viewer.get_by_test_id("viewer-viewport-0").wait_for()
    viewer.wait_for_timeout(1500)
    _shot(viewer, "11-viewer-window-first")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=viewer-window-status]').dataset.linked === 'yes'"
    )

    # the next task in the report window: the viewer window loads its study (a new viewer renders its first image)
    viewer.evaluate("() => { window.__before = window.__teleradViewer.stats }")
    clicked = page.evaluate("() => performance.timeOrigin + performance.now()")
    page.get_by_test_id("next-task").click()
    page.wait_for_url(f"**/tasks/{task2}")
    page.get_by_test_id("task-form-title").wait_for()
    titled = page.evaluate("() => performance.timeOrigin + performance.now()")
    viewer.wait_for_function(
        "uid => document.querySelector('[data-testid=viewer-window]').dataset.study === uid", arg=study2
    )
    viewer.wait_for_function(
        "() => { const s = window.__teleradViewer.stats; return s !== window.__before && s.firstImageMs !== null }"
    )
    loaded = viewer.evaluate("() => performance.timeOrigin + window.__teleradViewer.stats.firstImageMs")
    # UX R23's 1 s, measured with the pages' own clocks, reported rather than asserted (a shared, loaded machine)
    print(  # noqa: T201 — shown with -s
        f"viewer window: next study's first image {loaded - clicked:.0f} ms after the click on 下一个任务, "
        f"{loaded - titled:.0f} ms after the report window showed the task"
    )
    assert study2 in viewer.url
    viewer.get_by_test_id("viewer-viewport-1").wait_for()  # three series, one a stack: 1×2
    viewer.wait_for_timeout(1000)
    _shot(viewer, "12-viewer-window-next")
    _shot(page, "13-report-window-next")

    def active_series() -> str:  # the series browser marks the active viewport's series
        return str(viewer.locator("[data-testid=viewer-series-browser] .series.active").first.inner_text())

    # REQ: RPT-12 — a series picked in the report's 图像 card is shown in the viewer window (序列丙 was in no viewport)
    chips = page.get_by_test_id("images-card-series-item")
    chips.nth(2).wait_for()
    assert chips.count() == 3
    chips.nth(2).click()
    viewer.wait_for_function(ACTIVE_SERIES, arg="序列丙")
    # RPT-05 / UX R13 — K in the viewer window: the key image appears in the report's 图像 card (sync channel)
    viewer.bring_to_front()
    viewer.get_by_test_id("viewer-viewport-0").click()
    viewer.keyboard.press("k")
    viewer.get_by_test_id("key-image-badge").wait_for()
    page.get_by_test_id("images-card-item").first.wait_for()
    assert page.get_by_test_id("images-card-item").count() == 1
    # another series in the viewer, then the key image picked in the card: the viewer window shows it again
    viewer.locator("[data-testid=viewer-series-browser] .series", has_text="序列甲").click()
    viewer.wait_for_function(ACTIVE_SERIES, arg="序列甲")
    pages_before = len(context.pages)
    page.bring_to_front()
    page.get_by_test_id("images-card-thumb").first.click()
    viewer.wait_for_function(ACTIVE_SERIES, arg="序列丙")
    viewer.get_by_test_id("key-image-badge").wait_for()
    assert "序列丙" in active_series()
    assert "/viewer/window" in viewer.url  # shown in the linked window, not a new viewer page
    assert len(context.pages) == pages_before
    _shot(viewer, "14-viewer-window-key-image")
    _shot(page, "15-report-images-card")

    # the window's position and size are remembered in the doctor's settings
    viewer.wait_for_timeout(1600)
    settings = {e["key"]: e["value"] for e in page.request.get(f"{base}/api/me/settings").json()}
    rect = settings["window.positions"].get("viewer_window")
    assert rect is not None
    assert rect["width"] >= 100
    assert rect["height"] >= 100
    errors = [e for e in context.js_errors if "401" not in e and "favicon" not in e]
    assert not errors, errors
