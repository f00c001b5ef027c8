"""Browser end-to-end of the viewer's later parts (issue 16; REQ: VIEW-08, VIEW-12; UX R18): a two-image DR opens in
1×2 with both images shown; opened from 我的任务, the next task's study is prefetched (its frames requested before it
is opened) and opens from the cache; an ellipse ROI on a synthetic PET shows its statistics in SUV. Cornerstone3D
renders through WebGL: Chromium runs SwiftShader. Screenshots go to /tmp/shots/parts/."""

from __future__ import annotations

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

SHOTS = Path(os.environ.get("TELERAD_PARTS_SHOTS", "/tmp/shots/parts"))


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def dr_study(patient_no: str, accession: str, size: int = 256) -> list[Dataset]:
    """A two-view chest DR (PA and lateral, a series each, one image each): a bright field with a dark body."""
    study = generate_uid()
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for n, view in enumerate(("PA", "LL"), start=1):
        r = np.hypot((xx - size / 2) / (size * (0.4 if view == "PA" else 0.3)), (yy - size / 2) / (size * 0.45))
        img = np.clip(3000 - 2200 * np.exp(-(r**4)), 0, 4095).astype(np.uint16)
        ds = synthetic.base(
            "1.2.840.10008.5.1.4.1.1.1.1",
            modality="DX",
            charset="ISO_IR 192",
            PatientID=patient_no,
            AccessionNumber=accession,
        )
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
        ds.SeriesNumber, ds.SeriesDescription, ds.ViewPosition = n, f"胸部 {view}", view
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
        ds.PixelSpacing = [0.5, 0.5]
        ds.PixelData = img.tobytes()
        out.append(ds)
    return out


def _case(app: Any, team: Team, patient_no: str, accession: str, modality: str, datasets: list[Dataset]) -> int:
    """A case of M01 for the patient whose study arrives from M01's modality; its draft task claimed by the doctor."""
    case = new_case(
        team.req,
        patient={"patient_no": patient_no, "name": "李四", "sex": "F", "birth_date": "1980-02-01"},
        exams=[{"modality": modality, "body_part": "胸部", "exam_item": "胸部检查", "accession_no": accession}],
    )
    task = the_task(app, case["id"], "draft_report")
    ok(team.l1.post(f"/api/tasks/{task.id}/claim"))
    node = add_node(app, f"N{accession}"[:16], institution="M01")
    archive.ingest(app, node, datasets, route=True)
    return int(task.id)


def _pixels_of(study_uid: str, url: str) -> bool:
    """A request for pixel data of the study (a frame, or a whole series' frames), not its metadata or thumbnails."""
    if study_uid not in url or "/series/" not in url:
        return False
    return not any(k in url for k in ("/metadata", "/thumbnail", "/rendered")) and not re.search(r"/series(\?|$)", url)


def test_ux_r18_dr_in_1x2_and_the_next_task_prefetched(app, vpage) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page = vpage
    base = page.base_url
    team = Team(app)
    first = dr_study("PRE0001", "ACCPRE1")
    second = dr_study("PRE0002", "ACCPRE2")
    _case(app, team, "PRE0001", "ACCPRE1", "DR", first)
    _case(app, team, "PRE0002", "ACCPRE2", "DR", second)
    uid1, uid2 = first[0].StudyInstanceUID, second[0].StudyInstanceUID
    requests: list[tuple[str, str]] = []  # (phase, url)
    phase = ["list"]
    page.on("request", lambda r: requests.append((phase[0], r.url)))

    _login(page, base, team.l1.user.username, team.l1.user.password)
    page.goto(f"{base}/tasks")
    buttons = page.get_by_test_id("task-open-viewer")
    buttons.nth(1).wait_for()
    phase[0] = "first"
    buttons.nth(0).click()  # 我的任务: the first task (the oldest), the second one after it
    page.wait_for_url(f"**/viewer/studies/{uid1}**")

    # VIEW-12 / UX R18: the two-image DR opens in 1×2 and both images are shown and decoded
    page.get_by_test_id("viewer-viewport-1").wait_for()
    page.wait_for_function(
        "() => { const s = window.__teleradViewer && window.__teleradViewer.stats;"
        " return s && s.viewportsShownMs !== null && s.allImagesMs !== null }"
    )
    stats = page.evaluate("() => ({...window.__teleradViewer.stats})")
    assert stats["imagesTotal"] == stats["imagesCached"] == 2, stats
    assert page.get_by_test_id("viewer-viewport-2").count() == 0
    page.wait_for_timeout(300)
    _shot(page, "01-dr-1x2")

    # the next task's study is prefetched in the background once this one is loaded: its frames are requested
    # before it is opened
    page.wait_for_function(
        "uid => { const p = window.__teleradNextExam; return p && p.studyUid === uid && p.done }", arg=uid2
    )
    prefetch = page.evaluate("() => ({...window.__teleradNextExam})")
    assert prefetch["images"] == 2, prefetch
    assert prefetch["cached"] == 2, prefetch
    assert "stopped" not in prefetch, prefetch
    ahead = [u for ph, u in requests if ph == "first" and _pixels_of(uid2, u)]
    assert ahead, "the next exam's frames were not requested ahead"

    # back to the list and open the next task: shown from the cache, no pixel request for it any more
    page.get_by_test_id("viewer-back").click()
    page.get_by_test_id("task-open-viewer").nth(1).wait_for()
    page.evaluate("() => { window.__before = window.__teleradViewer.stats }")  # the first viewer's figures
    phase[0] = "second"
    clicked = page.evaluate("() => performance.now()")
    page.get_by_test_id("task-open-viewer").nth(1).click()
    page.wait_for_url(f"**/viewer/studies/{uid2}**")
    page.wait_for_function(
        "() => { const s = window.__teleradViewer.stats;"
        " return s !== window.__before && s.viewportsShownMs !== null && s.allImagesMs !== null }"
    )
    opened = page.evaluate("() => ({...window.__teleradViewer.stats})")
    assert opened["imagesTotal"] == opened["imagesCached"] == 2, opened
    again = [u for ph, u in requests if ph == "second" and _pixels_of(uid2, u)]
    assert again == [], again
    shown_ms = opened["viewportsShownMs"] - clicked
    print(f"next exam opened from the cache: both views shown {shown_ms:.0f} ms after the click", opened)  # noqa: T201
    _shot(page, "02-next-exam-from-cache")
    assert not [e for e in page.js_errors if "favicon" not in e and "401" not in e], page.js_errors


def test_view08_ellipse_roi_on_pet_shows_suv(app, vpage) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page = vpage
    base = page.base_url
    team = Team(app)
    pet = synthetic.pet_series(PatientID="PET0001", AccessionNumber="ACCPET1")
    _case(app, team, "PET0001", "ACCPET1", "PT", pet)

    _login(page, base, team.l1.user.username, team.l1.user.password)
    page.goto(f"{base}/viewer/studies/{pet[0].StudyInstanceUID}?institution=M01")
    vp = page.get_by_test_id("viewer-viewport-0")
    vp.wait_for()
    page.wait_for_function("() => window.__teleradViewer && window.__teleradViewer.stats.firstImageMs !== null")
    page.wait_for_timeout(300)
    box = vp.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    vp.click()
    page.keyboard.press("e")  # the ellipse ROI, inside the hot disk
    page.mouse.move(cx - 40, cy - 40)
    page.mouse.down()
    page.mouse.move(cx + 40, cy + 40, steps=6)
    page.mouse.up()
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=viewer-viewport-0] svg text')]"
        ".some((t) => t.textContent.includes('SUV'))"
    )
    text = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=viewer-viewport-0] svg text')].map((t) => t.textContent)"
        ".join(' ')"
    )
    _shot(page, "03-pet-roi-suv")
    # the disk is 5,000 Bq/ml everywhere: the ROI's mean is the hand-computed SUVbw (tests/dicom/synthetic.py)
    mean = re.search(r"均值：([0-9.]+) SUV", text)
    assert mean, text
    assert abs(float(mean.group(1)) - synthetic.PET_HOT_SUV) < 0.01, text
    assert "标准差：0 SUV" in text, text
    assert not [e for e in page.js_errors if "favicon" not in e and "401" not in e], page.js_errors
