"""Image matching on ingest (REQ: IMG-06): a new study is linked to its exam by AccessionNumber, else by PatientID +
modality + study date, only among the sending institution's exams (AC-08, DSEC-03); the rest wait in a queue."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from dicom import status
from dicom.scp import Running
from engine.imaging.exam_models import UnmatchedStudy
from engine.imaging.models import Study
from tests.dicom import synthetic
from tests.dicom.conftest import add_node, audit_events, count, rows, store, worker_applies_ingest_events
from tests.dicom.exams import add_exam, exam_status, institution_id


def _study(app: Flask, uid: str) -> tuple[int, int | None, int]:
    (row,) = rows(app, select(Study.id, Study.exam_id, Study.institution_id).where(Study.study_instance_uid == uid))
    return row.id, row.exam_id, row.institution_id


def test_img06_match_by_accession_moves_registered_exam_to_examined(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    exam = add_exam(app, patient_no="P900", exam_no="M01CT0001", accession="ACC-M1")
    other = add_exam(app, patient_no="P900", exam_no="M01CT0002", accession="ACC-OTHER")
    files = [
        synthetic.ct(tmp_path / f"{i}.dcm", StudyInstanceUID="1.2.826.0.1.3680043.8.498.61", AccessionNumber="ACC-M1",
                     PatientID="SOMEONE-ELSE", InstanceNumber=i + 1)
        for i in range(3)
    ]  # fmt: skip
    assert store(scp.port, modality, files) == [status.SUCCESS] * 3
    worker_applies_ingest_events(app)
    study_id, exam_id, _ = _study(app, "1.2.826.0.1.3680043.8.498.61")
    assert exam_id == exam
    assert exam_status(app, exam) == "examined"
    assert exam_status(app, other) == "registered"
    assert count(app, UnmatchedStudy) == 0
    # once per new study, not per instance
    matched = [e for e in audit_events(app, "dicom_study_matched") if e.object_id == str(study_id)]
    assert len(matched) == 1
    assert matched[0].details["by"] == "accession"
    changed = [e for e in audit_events(app, "exam_status_changed") if e.object_id == str(exam)]
    assert [(e.details["from"], e.details["to"]) for e in changed] == [("registered", "examined")]


def test_img06_match_by_patient_modality_local_date(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    # 2026-04-01 17:30 UTC is 2026-04-02 01:30 in China: the study date 20260402 is that exam's day
    exam = add_exam(
        app, patient_no="P901", exam_no="M01MR0001", modality="MR", exam_time=datetime(2026, 4, 1, 17, 30, tzinfo=UTC)
    )
    ct_same_day = add_exam(
        app, patient_no="P901", exam_no="M01CT0003", modality="CT", exam_time=datetime(2026, 4, 1, 17, 30, tzinfo=UTC)
    )
    mr_other_day = add_exam(
        app, patient_no="P901", exam_no="M01MR0002", modality="MR", exam_time=datetime(2026, 4, 5, 2, 0, tzinfo=UTC)
    )
    f = synthetic.ct(tmp_path / "mr.dcm", StudyInstanceUID="1.2.826.0.1.3680043.8.498.62", AccessionNumber="",
                     PatientID="P901", Modality="MR", StudyDate="20260402")  # fmt: skip
    assert store(scp.port, modality, [f]) == [status.SUCCESS]
    worker_applies_ingest_events(app)
    _, exam_id, _ = _study(app, "1.2.826.0.1.3680043.8.498.62")
    assert exam_id == exam
    assert [exam_status(app, e) for e in (exam, ct_same_day, mr_other_day)] == ["examined", "registered", "registered"]
    (ev,) = audit_events(app, "dicom_study_matched")
    assert ev.details["by"] == "patient_modality_date"


def test_img06_in_progress_exam_completes_and_examined_exam_is_only_linked(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    running = add_exam(app, patient_no="P902", exam_no="M01CT0004", accession="ACC-RUN", status="in_progress")
    later = add_exam(app, patient_no="P902", exam_no="M01CT0005", accession="ACC-LATE", status="awaiting")
    a = synthetic.ct(tmp_path / "a.dcm", StudyInstanceUID="1.2.826.0.1.3680043.8.498.63", AccessionNumber="ACC-RUN")
    b = synthetic.ct(tmp_path / "b.dcm", StudyInstanceUID="1.2.826.0.1.3680043.8.498.64", AccessionNumber="ACC-LATE")
    assert store(scp.port, modality, [a, b]) == [status.SUCCESS] * 2
    worker_applies_ingest_events(app)
    assert _study(app, "1.2.826.0.1.3680043.8.498.63")[1] == running
    assert _study(app, "1.2.826.0.1.3680043.8.498.64")[1] == later
    assert exam_status(app, running) == "examined"
    assert exam_status(app, later) == "awaiting"  # a later status is never moved back


def test_img06_unmatched_queue_and_no_cross_institution_match(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    exam = add_exam(
        app, patient_no="P903", exam_no="M01CT0006", accession="ACC-M01", exam_time=datetime(2026, 1, 1, 4, tzinfo=UTC)
    )
    add_node(app, "M02MOD", institution="M02", allow="store")
    # M02 sends M01's accession number and patient: never matched to M01's exam (REQ: AC-08, DSEC-03)
    foreign = synthetic.ct(tmp_path / "f.dcm", StudyInstanceUID="1.2.826.0.1.3680043.8.498.65",
                           AccessionNumber="ACC-M01", PatientID="P903", StudyDate="20260101")  # fmt: skip
    unknown = synthetic.ct(tmp_path / "u.dcm", StudyInstanceUID="1.2.826.0.1.3680043.8.498.66",
                           AccessionNumber="NOPE", PatientID="P-UNKNOWN", StudyDate="20260101")  # fmt: skip
    assert store(scp.port, "M02MOD", [foreign]) == [status.SUCCESS]
    worker_applies_ingest_events(app)
    assert store(scp.port, modality, [unknown]) == [status.SUCCESS]
    worker_applies_ingest_events(app)
    assert exam_status(app, exam) == "registered"
    u = UnmatchedStudy
    queue = rows(app, select(u.study_id, u.institution_id, u.reason, u.resolved_at, u.details).order_by(u.id))
    f_id, f_exam, f_inst = _study(app, "1.2.826.0.1.3680043.8.498.65")
    u_id, u_exam, u_inst = _study(app, "1.2.826.0.1.3680043.8.498.66")
    assert (f_exam, u_exam) == (None, None)
    assert (f_inst, u_inst) == (institution_id(app, "M02"), institution_id(app, "M01"))
    assert [(q.study_id, q.institution_id, q.reason, q.resolved_at) for q in queue] == [
        (f_id, f_inst, "no_exam", None),
        (u_id, u_inst, "no_exam", None),
    ]
    assert "P-UNKNOWN" in queue[1].details
    assert len(audit_events(app, "dicom_study_unmatched")) == 2
