"""Browser end-to-end of the manual upload (REQ: REG-16): a member hospital's 登记员 opens its case, uploads a folder
(several DICOM files, one refused by the server with its Chinese reason, one non-DICOM file skipped by the browser)
and then a zip (images of another PatientID: asked first), sees the progress bar and each file's result; the study is
listed with the exam at once, QIDO finds it and its metadata is readable."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from playwright.sync_api import expect
from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.api.test_cases_flow import new_case
from tests.dicomweb.test_stow import fresh
from tests.e2e.test_account_flow import _login
from tests.factories import as_user, institution

SHOTS = Path("/tmp/shots/upload")


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_reg16_member_uploads_folder_and_zip_and_reads_the_study(app, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = page.base_url
    institution(app, "M01")
    reg = as_user(app, "registrar", institution_code="M01")
    case = new_case(reg, modality="CT")
    patient_no = case["patient"]["patient_no"]
    exam_no = case["exams"][0]["exam_no"]
    study = generate_uid()

    # a folder from the modality's export: three CT images, one with a broken UID, and a text file
    folder = tmp_path / "CT_EXPORT"
    folder.mkdir()
    series1 = generate_uid()
    for i in range(3):
        data = fresh("CT_small.dcm", StudyInstanceUID=study, SeriesInstanceUID=series1, PatientID=patient_no)
        (folder / f"IM{i:04d}").write_bytes(data)
    # without its Series Instance UID: the server refuses it (DSEC-04) and says why
    bad = dcmread(io.BytesIO(fresh("CT_small.dcm", StudyInstanceUID=study, PatientID=patient_no)))
    del bad.SeriesInstanceUID
    bad.save_as(folder / "IM9999", enforce_file_format=True)
    (folder / "说明.txt").write_text("刻录说明", encoding="utf-8")
    # a zip of the same study's second series, PatientID as the other hospital system wrote it
    zpath = tmp_path / "series2.zip"
    series2 = generate_uid()
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(2):
            data = fresh("CT_small.dcm", StudyInstanceUID=study, SeriesInstanceUID=series2, PatientID="HIS-778")
            z.writestr(f"DICOM/S2/IM{i}", data)
        z.writestr("DICOMDIR.txt", "not dicom")

    _login(page, base, reg.user.username, reg.user.password)
    page.goto(f"{base}/cases/{case['id']}")
    images = page.get_by_test_id("exam-images").first
    expect(images.get_by_test_id("exam-no-studies")).to_be_visible()
    images.get_by_test_id("exam-upload").click()
    dialog = page.get_by_test_id("upload-dialog")
    expect(dialog.get_by_test_id("upload-exam-name")).to_contain_text(exam_no)

    # 1. the folder
    dialog.get_by_test_id("upload-input-folder").set_input_files(str(folder))
    phase = dialog.get_by_test_id("upload-phase")
    expect(phase).to_have_attribute("data-phase", "done", timeout=30000)
    rows = dialog.get_by_test_id("upload-row")
    expect(rows).to_have_count(5)
    status = {r.get_attribute("data-name"): r.get_attribute("data-status") for r in rows.all()}
    assert status == {
        "CT_EXPORT/IM0000": "stored",
        "CT_EXPORT/IM0001": "stored",
        "CT_EXPORT/IM0002": "stored",
        "CT_EXPORT/IM9999": "refused",
        "CT_EXPORT/说明.txt": "skipped",
    }
    results = dialog.get_by_test_id("upload-results")
    expect(results).to_contain_text("UID 不符合 DICOM 规范")  # the server's reason, as it gave it
    expect(results).to_contain_text("不是 DICOM 文件")
    expect(dialog.get_by_test_id("upload-progress")).to_have_attribute("data-percent", "100")
    expect(dialog.get_by_test_id("upload-summary")).to_contain_text("已存储 3 个 · 未存储 1 个 · 已跳过 1 个")
    expect(dialog.get_by_test_id("upload-linked")).to_contain_text(exam_no)
    _shot(page, "01-folder-results")

    # 2. the zip: another PatientID — the uploader asks first
    dialog.get_by_test_id("upload-input-files").set_input_files(str(zpath))
    box = page.locator(".el-message-box")
    expect(box).to_contain_text("HIS-778")
    expect(box).to_contain_text(patient_no)
    _shot(page, "02-zip-patient-check")
    box.get_by_role("button", name="仍然上传").click()
    expect(phase).to_have_attribute("data-phase", "done", timeout=30000)
    status = {r.get_attribute("data-name"): r.get_attribute("data-status") for r in rows.all()}
    assert status == {
        "series2.zip › DICOM/S2/IM0": "stored",
        "series2.zip › DICOM/S2/IM1": "stored",
        "series2.zip › DICOMDIR.txt": "skipped",
    }
    _shot(page, "03-zip-results")
    dialog.get_by_test_id("upload-close").click()

    # 3. listed with the exam at once, and readable
    listed = images.get_by_test_id("exam-study")
    expect(listed).to_have_count(1)
    expect(listed).to_have_attribute("data-uid", study)
    expect(listed).to_contain_text("2 个序列，5 幅")
    expect(listed.get_by_test_id("exam-study-view")).to_have_attribute(
        "href", f"/viewer/studies/{study}?institution=M01"
    )
    _shot(page, "04-case-images")
    qido = page.request.get(f"{base}/dicomweb/studies?StudyInstanceUID={study}")
    assert qido.status == 200
    assert len(qido.json()) == 1
    meta = page.request.get(f"{base}/dicomweb/studies/{study}/metadata")
    assert meta.status == 200
    assert len(meta.json()) == 5
    assert not [e for e in page.js_errors if "401" not in e], page.js_errors  # 401: the check before login


def test_reg16_drop_on_case_page_opens_the_uploader(app, page) -> None:  # type: ignore[no-untyped-def]
    """Files dropped anywhere on the case page go to the uploader (a synthetic drop of a DataTransfer with one
    non-DICOM file: it is skipped with its line); a requester without image.write has no upload at all."""
    base = page.base_url
    institution(app, "M01")
    reg = as_user(app, "registrar", institution_code="M01")
    case = new_case(reg, modality="CT")
    _login(page, base, reg.user.username, reg.user.password)
    page.goto(f"{base}/cases/{case['id']}")
    page.get_by_test_id("exam-images").first.wait_for()
    page.evaluate(
        """() => {
            const dt = new DataTransfer()
            dt.items.add(new File(['hello'], 'notes.txt', { type: 'text/plain' }))
            const target = document.querySelector('[data-testid=case-info]')
            target.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }))
            target.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }))
        }"""
    )
    dialog = page.get_by_test_id("upload-dialog")
    expect(dialog.get_by_test_id("upload-phase")).to_have_attribute("data-phase", "done")
    row = dialog.get_by_test_id("upload-row")
    expect(row).to_have_attribute("data-status", "skipped")
    expect(dialog.get_by_test_id("upload-results")).to_contain_text("不是 DICOM 文件")
    _shot(page, "05-page-drop")
    dialog.get_by_test_id("upload-close").click()

    requester = as_user(app, "requester", institution_code="M01")
    page.get_by_test_id("logout-button").click()
    page.get_by_test_id("login-username").wait_for()
    _login(page, base, requester.user.username, requester.user.password)
    page.goto(f"{base}/cases/{case['id']}")
    page.get_by_test_id("exam-images").first.wait_for()
    expect(page.get_by_test_id("exam-upload")).to_have_count(0)
