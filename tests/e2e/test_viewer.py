"""Browser end-to-end of the viewer core (issue 16; REQ: VIEW-01, VIEW-02, VIEW-03, VIEW-05, VIEW-12, VIEW-16, UX R7):
a synthetic CT series (pydicom, 20 slices 256×256 with structure and a 60xx overlay) received from member hospital
M01 for a case's patient, opened by the central 初级报告医生 from the task; scrolled, windowed by preset key and by
mouse drag, shown 2×2; a synthetic multi-frame US played, paused and reversed; another member hospital's user gets
无权 on the study URL. Cornerstone3D renders through WebGL: Chromium runs SwiftShader (software GL).
Screenshots go to /tmp/shots/viewer/."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.api.test_cases_flow import Team, new_case, ok, the_task
from tests.dicom import archive, synthetic
from tests.dicom.conftest import add_node
from tests.e2e.test_account_flow import _login
from tests.factories import make_user

SHOTS = Path(os.environ.get("TELERAD_VIEWER_SHOTS", "/tmp/shots/viewer"))


# -- synthetic studies -------------------------------------------------------------------------------------------
def ct_series(patient_no: str, accession: str, n: int = 20, size: int = 256) -> list[Dataset]:
    """A CT phantom: a body ellipse of soft tissue (40 HU) with lungs (-800 HU), a spine (700 HU) and a nodule whose
    size changes from slice to slice, 16-bit signed with RescaleIntercept -1024; slice 1 carries an overlay (60xx)."""
    study, series = generate_uid(), generate_uid()
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = size / 2
    out = []
    for i in range(n):
        hu = np.full((size, size), -1000.0, dtype=np.float32)
        body = ((xx - c) / (0.42 * size)) ** 2 + ((yy - c) / (0.32 * size)) ** 2 <= 1
        hu[body] = 40
        for side in (-1, 1):
            lung = ((xx - c - side * 0.19 * size) / (0.14 * size)) ** 2 + ((yy - c + 0.02 * size) / (0.2 * size)) ** 2
            hu[lung <= 1] = -800
        spine = (xx - c) ** 2 + (yy - c - 0.22 * size) ** 2 <= (0.06 * size) ** 2
        hu[spine] = 700
        r = 4 + 10 * math.sin(math.pi * i / max(1, n - 1))
        nodule = (xx - c - 0.2 * size) ** 2 + (yy - c) ** 2 <= r * r
        hu[nodule] = 60
        hu += (xx / size) * 30  # a gentle ramp: no two rows alike
        stored = np.clip(hu + 1024, 0, 4095).astype(np.int16)
        ds = synthetic.base(synthetic.CT_IMAGE, modality="CT", PatientID=patient_no, AccessionNumber=accession)
        ds.PatientName = "Wang^Xiaoming=王^小明"
        ds.SpecificCharacterSet = ["ISO_IR 192"]
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SeriesNumber, ds.InstanceNumber = 1, i + 1
        ds.SeriesDescription = "胸部平扫"
        ds.StudyDescription = "胸部CT"
        ds.InstitutionName = "成员医院一"
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelSpacing = [0.7, 0.7]
        ds.SliceThickness = 5
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-90, -90, -5.0 * i]
        ds.SliceLocation = -5.0 * i
        ds.PixelData = stored.tobytes()
        if i == 0:
            bits = np.zeros((size, size), dtype=np.uint8)
            bits[20:24, 20:120] = 1  # a bar and a box outline in the top-left corner
            bits[40:100, 20] = bits[40:100, 80] = bits[40, 20:81] = bits[100, 20:81] = 1
            ds.add_new(0x60000010, "US", size)
            ds.add_new(0x60000011, "US", size)
            ds.add_new(0x60000040, "CS", "G")
            ds.add_new(0x60000050, "SS", [1, 1])
            ds.add_new(0x60000100, "US", 1)
            ds.add_new(0x60000102, "US", 0)
            ds.add_new(0x60003000, "OW", np.packbits(bits.ravel(), bitorder="little").tobytes())
        out.append(ds)
    return out


def us_multiframe(patient_no: str, accession: str, frames: int = 12, size: int = 128) -> Dataset:
    """An 8-bit US cine loop: a bright blob that moves left to right over a speckled background."""
    ds = synthetic.base(synthetic.US_MULTIFRAME, modality="US", PatientID=patient_no, AccessionNumber=accession)
    rng = np.random.default_rng(16)
    yy, xx = np.mgrid[0:size, 0:size]
    stack = []
    for f in range(frames):
        img = rng.integers(0, 60, (size, size)).astype(np.uint8)
        cx = 16 + f * (size - 32) / max(1, frames - 1)
        img[(xx - cx) ** 2 + (yy - size / 2) ** 2 <= 12**2] = 230
        stack.append(img)
    ds.SpecificCharacterSet = ["ISO_IR 192"]
    ds.SeriesNumber, ds.SeriesDescription = 2, "超声动态"
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames = frames
    ds.FrameTime = 100
    ds.CineRate = 10
    ds.PixelData = np.stack(stack).tobytes()
    return ds


# -- browser with software WebGL ---------------------------------------------------------------------------------


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def _wait_corner(page: Any, corner: str, text: str) -> None:
    page.wait_for_function(
        "([c, t]) => document.querySelector(`[data-testid=viewer-corner-${c}]`)?.innerText.includes(t)",
        arg=[corner, text],
    )


def _stats(page: Any) -> dict[str, Any]:
    return page.evaluate("() => ({...window.__teleradViewer.stats})")  # type: ignore[no-any-return]


def _viewport_pixels(page: Any, index: int = 0) -> dict[str, float]:
    """Mean and spread of the rendered viewport (its WebGL/2D canvas read back through a screenshot)."""
    from io import BytesIO

    from PIL import Image

    png = page.get_by_test_id(f"viewer-viewport-{index}").screenshot()
    arr = np.asarray(Image.open(BytesIO(png)).convert("L"), dtype=np.float32)
    h, w = arr.shape
    core = arr[h // 5 : 4 * h // 5, w // 5 : 4 * w // 5]  # away from the corner text
    return {"mean": float(core.mean()), "std": float(core.std())}


def _seed(app: Any) -> tuple[Team, dict[str, Any], int, list[Dataset], Dataset]:
    team = Team(app)
    accession = "ACCV0001"
    case = new_case(
        team.req,
        patient={"patient_no": "VIEW0001", "name": "王小明", "sex": "M", "birth_date": "1970-05-01"},
        exams=[{"modality": "CT", "body_part": "胸部", "exam_item": "胸部CT平扫", "accession_no": accession}],
    )
    task = the_task(app, case["id"], "draft_report")
    ok(team.l1.post(f"/api/tasks/{task.id}/claim"))
    node = add_node(app, "VIEWM01", institution="M01")
    ct = ct_series("VIEW0001", accession)
    us = us_multiframe("VIEW0001", accession)
    us.StudyInstanceUID = ct[0].StudyInstanceUID
    archive.ingest(app, node, [*ct, us], route=True)
    return team, case, task.id, ct, us


def test_view01_open_from_task_scroll_window_layout_cine_overlay(app, vpage) -> None:  # type: ignore[no-untyped-def]
    page = vpage
    base = page.base_url
    team, _case, task_id, ct, _us = _seed(app)
    study_uid = ct[0].StudyInstanceUID

    _login(page, base, team.l1.user.username, team.l1.user.password)
    page.goto(f"{base}/tasks/{task_id}")
    page.get_by_test_id("task-form-page").wait_for()
    with page.expect_popup() as popup:  # the report page opens the (synchronised) viewer window; the report stays
        page.get_by_test_id("open-viewer-window").click()
    page = popup.value
    page.base_url, page.js_errors = vpage.base_url, vpage.js_errors
    page.on("pageerror", lambda exc: vpage.js_errors.append(str(exc)))
    page.on("console", lambda msg: vpage.js_errors.append(msg.text) if msg.type == "error" else None)
    page.wait_for_url(re.compile(r"/viewer/window\?.*study=" + re.escape(study_uid)))
    page.get_by_test_id("viewer-viewport-0").wait_for()
    page.wait_for_function("() => window.__teleradViewer && window.__teleradViewer.stats.firstImageMs !== null")
    page.wait_for_timeout(500)
    _shot(page, "01-opened")
    first = _viewport_pixels(page)
    assert first["std"] > 10, f"the viewport looks blank: {first}"  # REQ: VIEW-01 — a visibly rendered image
    vp0 = page.get_by_test_id("viewer-viewport-0")  # the study opens in 1×2 (the CT stack and the US loop)
    expect_text = vp0.get_by_test_id("viewer-corner-bottom_left").inner_text()
    assert "图像：1 / 20" in expect_text
    assert "王 小明" in vp0.get_by_test_id("viewer-corner-top_left").inner_text()  # UTF-8 JSON metadata

    # REQ: VIEW-03 — the overlay of slice 1 is drawn
    page.wait_for_function("() => document.querySelector('[data-testid=viewer-overlay]').dataset.overlays === '1'")

    # scroll by keys and wheel (VIEW-01)
    page.get_by_test_id("viewer-viewport-0").click()
    for _ in range(5):
        page.keyboard.press("ArrowDown")
    _wait_corner(page, "bottom_left", "图像：6 / 20")
    page.get_by_test_id("viewer-viewport-0").hover()
    page.mouse.wheel(0, 300)
    page.wait_for_timeout(300)
    assert "图像：6 / 20" not in vp0.get_by_test_id("viewer-corner-bottom_left").inner_text()
    # the whole series is decoded into the cache
    page.wait_for_function("() => window.__teleradViewer.stats.allImagesMs !== null")
    stats = _stats(page)
    # the study opens in 1×2 (a CT stack and a US loop: a viewport each), both decoded: 20 slices and 12 frames
    assert stats["imagesCached"] == stats["imagesTotal"] == 32
    assert 0 < stats["firstImageMs"] <= stats["allImagesMs"]
    _shot(page, "02-scrolled")

    # W/L by preset key (VIEW-05): 1 = 肺窗 (1500/-600)
    page.keyboard.press("1")
    _wait_corner(page, "bottom_right", "窗宽 1500 窗位 -600")
    lung = _viewport_pixels(page)
    _shot(page, "03-lung-window")
    # W/L by mouse drag with the default left-button tool
    box = page.get_by_test_id("viewer-viewport-0").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 120, cy + 60, steps=8)
    page.mouse.up()
    corner = vp0.get_by_test_id("viewer-corner-bottom_right").inner_text()
    assert "窗宽" in corner
    assert "窗宽 1500 窗位 -600" not in corner
    dragged = _viewport_pixels(page)
    assert abs(dragged["mean"] - lung["mean"]) > 1, (lung, dragged)
    _shot(page, "04-dragged-window")

    # measurements (VIEW-08): a length and an ellipse ROI whose statistics are in HU
    page.keyboard.press("l")
    page.mouse.move(cx - 150, cy)
    page.mouse.down()
    page.mouse.move(cx + 50, cy + 40, steps=6)
    page.mouse.up()
    page.keyboard.press("e")
    page.mouse.move(cx - 60, cy - 60)
    page.mouse.down()
    page.mouse.move(cx + 20, cy + 10, steps=6)
    page.mouse.up()
    svg = page.get_by_test_id("viewer-viewport-0").locator("svg")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=viewer-viewport-0] svg text')]"
        ".some((t) => t.textContent.includes('HU'))"
    )
    assert "mm" in svg.first.inner_html()
    _shot(page, "04b-measurements")
    page.keyboard.press("d")  # values hidden
    page.wait_for_function(
        "() => ![...document.querySelectorAll('[data-testid=viewer-viewport-0] svg text')]"
        ".some((t) => t.textContent.includes('HU'))"
    )
    page.keyboard.press("d")
    page.keyboard.press("w")

    # 2×2 layout (VIEW-12): four viewports, the US series in the second
    page.keyboard.press("Alt+3")
    page.get_by_test_id("viewer-viewport-3").wait_for()
    page.wait_for_timeout(800)
    _shot(page, "05-layout-2x2")

    # cine on the multi-frame US (VIEW-02/16): play, pause, reverse
    page.get_by_test_id("viewer-layout-button").click()
    page.get_by_test_id("viewer-layout-1x1").click()
    page.locator(".series-browser .series", has_text="超声动态").click()
    _wait_corner(page, "bottom_left", "/ 12")

    def frame_no() -> int:
        text = vp0.get_by_test_id("viewer-corner-bottom_left").inner_text()
        return int(text.split("图像：")[1].split("/")[0].strip())

    page.get_by_test_id("viewer-cine-play").click()
    page.wait_for_timeout(1200)
    playing_at = frame_no()
    assert playing_at > 1
    page.get_by_test_id("viewer-cine-play").click()  # pause
    paused_at = frame_no()
    page.wait_for_timeout(600)
    assert frame_no() == paused_at
    _shot(page, "06-cine-paused")
    page.get_by_test_id("viewer-cine-reverse").click()
    page.get_by_test_id("viewer-cine-play").click()
    seen = []
    for _ in range(12):
        seen.append(frame_no())
        page.wait_for_timeout(80)
    page.get_by_test_id("viewer-cine-play").click()
    steps = [(b - a) % 12 for a, b in zip(seen, seen[1:], strict=False) if a != b]
    assert steps, seen
    assert all(st >= 6 for st in steps), seen  # every move is backwards (mod the 12-frame loop)
    _shot(page, "07-cine-reversed")
    # VIEW-13: the corner text of the US modality, set by the user for that modality only
    page.get_by_test_id("viewer-corner-settings").click()
    dialog = page.get_by_test_id("viewer-corner-dialog")
    dialog.wait_for()
    _shot(page, "08a-corner-dialog")
    dialog.get_by_test_id("viewer-corner-save").click()
    page.wait_for_function(
        """async () => {
            const r = await fetch('/api/me/settings', { credentials: 'same-origin' })
            const e = (await r.json()).find((x) => x.key === 'viewer.corner_text_by_modality')
            return e && e.source === 'user' && !!e.value.US
        }"""
    )
    _shot(page, "08b-corner-text-us")

    # UX R7: the ? overlay lists the viewer's keys
    page.keyboard.press("?")
    help_box = page.get_by_test_id("keymap-help")
    help_box.wait_for()
    assert "窗宽窗位预设 1–9" in help_box.inner_text()
    _shot(page, "09-keymap-help")
    print("viewer stats", stats)
    # (the login page's first /api/auth/me answers 401 before anyone is logged in)
    assert not [e for e in page.js_errors if "favicon" not in e and "401" not in e], page.js_errors


def test_view01_member_user_gets_no_access_to_another_hospitals_study(app, vpage) -> None:  # type: ignore[no-untyped-def]
    page = vpage
    base = page.base_url
    _team, _case, _task, ct, _us = _seed(app)
    other = make_user(app, "requester", institution_code="M02")
    _login(page, base, other.username, other.password)
    page.goto(f"{base}/viewer/studies/{ct[0].StudyInstanceUID}")
    err = page.get_by_test_id("viewer-error")
    err.wait_for()
    assert "无权查看或检查不存在" in err.inner_text()
    _shot(page, "08-no-access")
