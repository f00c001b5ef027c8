"""Manual upload (REQ: REG-16): a member hospital's 登记员 uploads a study by STOW-RS and links it to an exam of its
case — the exam moves to 已检查, the study is listed with the exam and readable at once (QIDO, and by the central
doctors who see the case); the worker's later match keeps the link; another hospital, another hospital's study and a
study linked elsewhere are refused (DSEC-03, AC-02)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select

from engine.cases.models import Exam
from engine.imaging.exam_models import UnmatchedStudy
from engine.imaging.models import Study
from tests.api.test_cases_flow import new_case
from tests.dicom.conftest import audit_events, rows, worker_applies_ingest_events
from tests.dicomweb.test_stow import fresh, multipart, post
from tests.factories import Session, as_user, institution


def _registrar(app: Flask, code: str = "M01") -> Session:
    institution(app, code)
    return as_user(app, "registrar", institution_code=code)


def _upload(sess: Session, **tags: Any) -> str:
    """One CT (pydicom's bundled CT_small) with fresh UIDs by STOW-RS; returns its StudyInstanceUID."""
    data = fresh("CT_small.dcm", AccessionNumber=tags.pop("AccessionNumber", "NOSUCHACC"), **tags)
    r = post(sess, multipart([data]))
    assert r.status_code == 200, r.get_data(as_text=True)
    url = r.get_json()["00081199"]["Value"][0]["00081190"]["Value"][0]
    return str(url.split("/studies/")[1].split("/")[0])


def _link(sess: Session, exam_id: int, *uids: str) -> Any:
    return sess.post(f"/api/imaging/exams/{exam_id}/studies", json={"study_instance_uids": list(uids)})


def _exam_status(app: Flask, exam_id: int) -> str:
    return str(rows(app, select(Exam.status).where(Exam.id == exam_id))[0][0])


def test_reg16_upload_then_link_lists_study_and_moves_exam(app: Flask) -> None:
    reg = _registrar(app)
    case = new_case(reg, modality="CT")
    exam_id = case["exams"][0]["id"]
    assert _exam_status(app, exam_id) == "awaiting"  # a submitted case's exam waits for its diagnosis
    uid = _upload(reg)

    r = _link(reg, exam_id, uid)
    assert r.status_code == 200, r.get_json()
    (item,) = r.get_json()["items"]
    assert item["study_instance_uid"] == uid
    assert item["linked_now"] is True
    assert item["exam_id"] == exam_id
    assert item["instance_count"] == 1
    assert item["series_count"] == 1
    assert item["institution"]["code"] == "M01"
    assert _exam_status(app, exam_id) == "awaiting"  # only an exam waiting for images (已登记/检查中) moves
    (event,) = audit_events(app, "dicom_study_matched")
    assert event.details["by"] == "upload"
    assert event.details["exam_id"] == exam_id

    # listed with the exam; linking again is harmless (not linked "now")
    listed = reg.get(f"/api/imaging/exams/{exam_id}/studies").get_json()["items"]
    assert [s["study_instance_uid"] for s in listed] == [uid]
    again = _link(reg, exam_id, uid).get_json()["items"]
    assert again[0]["linked_now"] is False

    # readable at once: QIDO finds it
    q = reg.get(f"/dicomweb/studies?StudyInstanceUID={uid}")
    assert q.status_code == 200
    assert len(q.get_json()) == 1

    # the worker applies the upload's ingest event later: the study keeps its exam, nothing queued as unmatched
    assert worker_applies_ingest_events(app) == 1
    assert rows(app, select(Study.exam_id).where(Study.study_instance_uid == uid)) == [(exam_id,)]
    assert rows(app, select(UnmatchedStudy.id)) == []


def test_reg16_link_resolves_the_unmatched_entry(app: Flask) -> None:
    reg = _registrar(app)
    exam_id = new_case(reg, modality="CT")["exams"][0]["id"]
    uid = _upload(reg)
    worker_applies_ingest_events(app)  # no exam has its accession: queued as 未匹配影像
    assert [r[0] for r in rows(app, select(UnmatchedStudy.resolved_at))] == [None]

    assert _link(reg, exam_id, uid).status_code == 200
    (resolved,) = rows(app, select(UnmatchedStudy.resolved_at))
    assert resolved[0] is not None
    assert rows(app, select(Study.exam_id).where(Study.study_instance_uid == uid)) == [(exam_id,)]


def test_reg16_central_doctor_reads_the_linked_study(app: Flask) -> None:
    """Central clinical sight follows the exam link (engine/visibility.py): before it, the study (another PatientID
    than the case's patient) is not the doctor's; after it, it is."""
    reg = _registrar(app)
    exam_id = new_case(reg, modality="CT")["exams"][0]["id"]
    uid = _upload(reg, PatientID="OTHER-ID")
    doctor = as_user(app, "report_l1")  # the draft task is in the pool: the doctor could take it
    assert doctor.get(f"/dicomweb/studies?StudyInstanceUID={uid}").get_json() in ([], None)
    assert _link(reg, exam_id, uid).status_code == 200
    found = doctor.get(f"/dicomweb/studies?StudyInstanceUID={uid}")
    assert found.status_code == 200
    assert len(found.get_json()) == 1
    listed = doctor.get(f"/api/imaging/exams/{exam_id}/studies").get_json()["items"]
    assert [s["study_instance_uid"] for s in listed] == [uid]


def test_reg16_link_refusals(app: Flask) -> None:
    reg = _registrar(app)
    exam_a = new_case(reg, modality="CT")["exams"][0]["id"]
    exam_b = new_case(reg, modality="CT")["exams"][0]["id"]
    uid = _upload(reg)

    # another hospital: the case is not theirs (404, security alert), and their upload is not M01's study
    other = _registrar(app, "M02")
    assert _link(other, exam_a, uid).status_code == 404
    their_uid = _upload(other)
    r = _link(reg, exam_a, their_uid)
    assert r.status_code == 400
    assert r.get_json()["code"] == "study_not_found"
    assert "上传" in r.get_json()["message"]

    # a requester without image.write cannot link
    requester = as_user(app, "requester", institution_code="M01")
    assert _link(requester, exam_a, uid).status_code == 403

    # linked to exam A, it cannot move to exam B
    assert _link(reg, exam_a, uid).status_code == 200
    r = _link(reg, exam_b, uid)
    assert r.status_code == 409
    assert r.get_json()["code"] == "study_linked_elsewhere"
    assert _exam_status(app, exam_b) == "awaiting"
    assert rows(app, select(Study.exam_id).where(Study.study_instance_uid == uid)) == [(exam_a,)]

    # bad input: no UID, a malformed UID, an unknown field
    assert _link(reg, exam_a).status_code in (400, 422)
    assert _link(reg, exam_a, "1.2.x").status_code in (400, 422)
    bad = reg.post(f"/api/imaging/exams/{exam_a}/studies", json={"study_instance_uids": [uid], "exam": 1})
    assert bad.status_code in (400, 422)
    assert reg.get("/api/imaging/exams/999999/studies").status_code == 404
