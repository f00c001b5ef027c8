"""Browser end-to-end of the viewer's saved marks and key images (issue 16; REQ: VIEW-08, RPT-05; UX R7, R13).

A central doctor opens a member hospital's CT in the viewer, measures a length and an ROI, saves (Ctrl+S); another
doctor reopens the study and sees both (drawn from the JSON; the SR TID 1500 the browser made is in the archive
under the hospital); `K` marks the image as a key image, which the report editor's 图像 card then lists.
Chromium with software WebGL (SwiftShader). Screenshots → /tmp/shots/persist/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select

from engine import uow
from engine.accounts.models import Institution
from engine.imaging.models import Instance, Series
from tests.api.test_cases_flow import new_case, the_task
from tests.dicom import synthetic
from tests.dicomweb.conftest import DicomWeb
from tests.e2e.test_account_flow import _login
from tests.factories import Session, as_user, make_user

SHOTS = Path("/tmp/shots/persist")


@pytest.fixture
def gl_page(gl_browser: Any, live_server: str) -> Iterator[Any]:
    viewport = {"width": 1400, "height": 900}
    context = gl_browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", viewport=viewport)
    pg = context.new_page()
    pg.set_default_timeout(30000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.base_url = live_server
    pg.js_errors = errors
    yield pg
    context.close()


def ct_series(patient_no: str, n: int = 3, size: int = 128) -> list[Dataset]:
    """A small CT series with real geometry (spacing, position, orientation) and 16-bit pixels."""
    study, series, frame_of_ref = generate_uid(), generate_uid(), generate_uid()
    out = []
    for i in range(n):
        ds = synthetic.base(
            synthetic.CT_IMAGE, modality="CT", charset="ISO_IR 192", PatientID=patient_no, PatientName="Wang^Wu"
        )
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_ref
        ds.InstanceNumber, ds.SeriesDescription = i + 1, "胸部平扫"
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelSpacing = [0.7, 0.7]
        ds.SliceThickness = 5
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, i * 5.0]
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.WindowCenter, ds.WindowWidth = 40, 400
        pixels = bytearray()
        for y in range(size):
            for x in range(size):
                inside = (x - size / 2) ** 2 + (y - size / 2) ** 2 < (size / 3) ** 2
                value = 1024 + (60 if inside else -900) + (x + y + i * 10) % 40
                pixels += int(value).to_bytes(2, "little", signed=True)
        ds.PixelData = bytes(pixels)
        out.append(ds)
    return out


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def _drag(page: Any, box: dict[str, float], a: tuple[float, float], b: tuple[float, float]) -> None:
    x0, y0 = box["x"] + box["width"] * a[0], box["y"] + box["height"] * a[1]
    x1, y1 = box["x"] + box["width"] * b[0], box["y"] + box["height"] * b[1]
    page.mouse.move(x0, y0)
    page.mouse.down()
    for k in range(1, 11):
        page.mouse.move(x0 + (x1 - x0) * k / 10, y0 + (y1 - y0) * k / 10)
    page.mouse.up()


def _sr_in_archive(app: Flask, study_uid: str) -> list[str]:
    with app.app_context():
        rows = uow.session().execute(
            select(Institution.code)
            .select_from(Instance)
            .join(Series, Series.id == Instance.series_id)
            .join(Institution, Institution.id == Instance.institution_id)
            .where(Series.modality == "SR", Instance.sop_class_uid.like("1.2.840.10008.5.1.4.1.1.88.%"))
        )
        return [r[0] for r in rows]


def _viewer(page: Any, study_uid: str) -> Any:
    page.goto(f"{page.base_url}/viewer/studies/{study_uid}")
    page.get_by_test_id("viewer-grid").wait_for()
    page.get_by_test_id("viewer-persist-panel").wait_for()
    page.get_by_test_id("viewer-marks-status").filter(has_text="标记").wait_for()
    return page.get_by_test_id("viewer-viewport-0")


def test_view08_rpt05_measure_save_reopen_as_another_doctor_and_key_image(app: Flask, gl_page: Any) -> None:
    page = gl_page
    requester = as_user(app, "requester", institution_code="M01")
    case = new_case(requester, exams=[{"modality": "CT", "body_part": "胸部", "exam_item": "胸部平扫"}])
    images = ct_series(case["patient"]["patient_no"])
    DicomWeb(app, "").seed(images, institution="M01")
    study_uid = str(images[0].StudyInstanceUID)
    first, second = make_user(app, "report_l1"), make_user(app, "report_l1")
    task_id = the_task(app, case["id"]).id
    holder = Session(app.test_client(), first)
    claim = holder.post(f"/api/tasks/{task_id}/claim")
    assert claim.status_code == 200, claim.get_json()

    # 1. the first doctor measures a length and an elliptical ROI on the first image, and saves with Ctrl+S
    _login(page, page.base_url, first.username, first.password)
    vp = _viewer(page, study_uid)
    box = vp.bounding_box()
    assert box is not None
    page.keyboard.press("l")
    _drag(page, box, (0.35, 0.35), (0.6, 0.55))
    page.keyboard.press("e")
    _drag(page, box, (0.4, 0.6), (0.55, 0.72))
    page.get_by_test_id("viewer-marks-status").filter(has_text="未保存").wait_for()
    _shot(page, "01-measured-unsaved")
    page.keyboard.press("Control+s")
    page.locator(".el-message", has_text="标记已保存").wait_for()
    page.get_by_test_id("viewer-marks-status").filter(has_text="第 1 版").wait_for()
    _shot(page, "02-saved")
    assert _sr_in_archive(app, study_uid) == ["M01"]  # the browser's SR TID 1500, under the study's hospital

    # 2. K marks the image shown as a key image
    page.keyboard.press("k")
    page.locator(".el-message", has_text="已标记为关键图像").wait_for()
    page.get_by_test_id("key-image-badge").wait_for()
    page.get_by_test_id("key-image-list-toggle").click()
    page.get_by_test_id("key-image-item-0").wait_for()
    _shot(page, "03-key-image")

    # leaving the viewer with an unsaved mark saves it (autosave on leave, dirty check)
    page.keyboard.press("l")
    _drag(page, box, (0.3, 0.8), (0.45, 0.85))
    page.get_by_test_id("viewer-marks-status").filter(has_text="未保存").wait_for()
    page.get_by_test_id("viewer-back").click()
    saved: dict[str, Any] = {}
    for _ in range(100):
        saved = holder.get(f"/api/studies/{study_uid}/annotations").get_json()
        if saved["version"] == 2:
            break
        page.wait_for_timeout(100)
    assert (saved["version"], len(saved["items"])) == (2, 3), saved

    # 3. the report editor's 图像 card lists the key image; a click opens the viewer at it in the viewer window
    page.goto(f"{page.base_url}/tasks/{task_id}")
    page.get_by_test_id("task-form-page").wait_for()
    card = page.get_by_test_id("images-card")
    card.get_by_test_id("images-card-item").first.wait_for()
    assert card.get_by_test_id("images-card-item").count() == 1
    assert card.get_by_test_id("images-card-print").locator("input").is_checked()
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=\"images-card-thumb\"]');"
        " return i && i.naturalWidth > 0 }"
    )
    _shot(page, "05-editor-images-card")
    with page.expect_popup() as popup_info:
        card.get_by_test_id("images-card-thumb").first.click()
    popup = popup_info.value
    (key,) = holder.get(f"/api/studies/{study_uid}/key-images").get_json()["items"]
    assert key["sop_uid"] in {str(i.SOPInstanceUID) for i in images}
    assert f"sop={key['sop_uid']}" in popup.url
    popup.get_by_test_id("key-image-badge").wait_for()
    popup.close()

    # 4. the first doctor hands the task back to the pool; another doctor who could take it reopens the study: both
    #    marks are drawn again, with their values
    assert holder.post(f"/api/tasks/{task_id}/release").status_code == 200
    page.goto(f"{page.base_url}/login")
    page.context.clear_cookies()
    _login(page, page.base_url, second.username, second.password)
    _viewer(page, study_uid)
    page.get_by_test_id("viewer-marks-status").filter(has_text="第 2 版").wait_for()
    page.get_by_test_id("key-image-badge").wait_for()
    counts = page.evaluate(
        """() => {
            const el = document.querySelector('[data-testid="viewer-viewport-0"] svg');
            return el ? el.querySelectorAll('path, ellipse, line, polyline').length : -1;
        }"""
    )
    _shot(page, "04-reopened-by-another-doctor")
    assert counts > 0, "the saved marks are drawn as SVG over the viewport"
    doc = Session(app.test_client(), second).get(f"/api/studies/{study_uid}/annotations").get_json()
    assert sorted(i["toolName"] for i in doc["items"]) == ["EllipticalROI", "Length", "Length"]
    assert {i["author"]["id"] for i in doc["items"]} == {first.id}
    assert page.js_errors == []

    # 5. the member hospital's clinician sees the key images first on the case page
    page.context.clear_cookies()
    _login(page, page.base_url, requester.user.username, requester.user.password)
    page.goto(f"{page.base_url}/cases/{case['id']}")
    page.get_by_test_id("key-image-strip").get_by_test_id("key-image-strip-item").first.wait_for()
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=\"key-image-strip-item\"]');"
        " return i && i.naturalWidth > 0 }"
    )
    _shot(page, "06-member-case-key-images")
