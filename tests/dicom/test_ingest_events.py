"""The ingest outbox (engine/imaging/outbox.py, events.py; issue 12, issue 14 "events out of ingest"; REQ: IMG-06,
DSEC-10): a receipt writes one `ingest_event` row per study in its index transaction, and the worker turns each into
its audit event and exam match exactly once — replays, rollbacks and concurrent workers included."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from dicom import status
from dicom.scp import Running
from engine import audit, uow
from engine.audit import AuditEvent
from engine.imaging import events
from engine.imaging.exam_models import IngestEvent, UnmatchedStudy
from engine.imaging.models import Study
from telerad import jobs
from tests.dicom import synthetic
from tests.dicom.conftest import audit_events, count, rows, scalar, store
from tests.dicom.exams import add_exam, exam_status

STUDIES = 12


def _send_studies(scp: Running, modality: str, tmp_path: Path) -> list[str]:
    """STUDIES one-instance studies over one association (the DX/DR pattern that made new-study cost matter); the
    even ones carry the accession number of a registered exam."""
    files, uids = [], []
    for i in range(STUDIES):
        uid = f"1.2.826.0.1.3680043.8.498.77{i:02d}"
        uids.append(uid)
        files.append(synthetic.ct(tmp_path / f"{i}.dcm", StudyInstanceUID=uid, AccessionNumber=f"ACC-EV{i:02d}",
                                  PatientID=f"PEV{i:02d}"))  # fmt: skip
    assert store(scp.port, modality, files) == [status.SUCCESS] * STUDIES
    return uids


def _pending(app: Flask) -> int:
    return int(scalar(app, select(func.count()).where(IngestEvent.processed_at.is_(None))) or 0)


def test_img06_dsec10_receipt_queues_one_event_per_study_and_chains_nothing(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    _send_studies(scp, modality, tmp_path)
    assert _pending(app) == STUDIES
    assert count(app, AuditEvent, AuditEvent.event_type == "dicom_instances_stored") == 0
    assert count(app, UnmatchedStudy) == 0
    (new,) = rows(app, select(func.count()).where(IngestEvent.new_study.is_(True)))
    assert new[0] == STUDIES


@pytest.mark.parametrize("workers", [4])
def test_img06_concurrent_workers_apply_each_event_once(
    app: Flask, scp: Running, modality: str, tmp_path: Path, workers: int
) -> None:
    exams = {i: add_exam(app, patient_no=f"PEV{i:02d}", exam_no=f"M01CT77{i:02d}", accession=f"ACC-EV{i:02d}")
             for i in range(0, STUDIES, 2)}  # fmt: skip
    _send_studies(scp, modality, tmp_path)
    applied: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def worker() -> None:
        try:
            with app.app_context():
                start.wait()
                applied.append(events.drain())
        except BaseException as exc:  # noqa: BLE001  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert sum(applied) == STUDIES  # every event applied by exactly one worker
    assert _pending(app) == 0
    assert len(audit_events(app, "dicom_instances_stored")) == STUDIES
    matched = audit_events(app, "dicom_study_matched")
    assert len(matched) == len(exams)  # one match per new study, never two
    assert len(audit_events(app, "dicom_study_unmatched")) == STUDIES - len(exams)
    assert count(app, UnmatchedStudy) == STUDIES - len(exams)
    assert all(exam_status(app, e) == "examined" for e in exams.values())
    linked = rows(app, select(Study.exam_id).where(Study.exam_id.is_not(None)))
    assert sorted(r.exam_id for r in linked) == sorted(exams.values())
    with app.app_context():
        try:
            assert audit.verify_chain(uow.session()).ok
        finally:
            uow.session().rollback()
    with app.app_context():  # a replay finds nothing to do
        assert events.drain() == 0


def test_img06_a_worker_transaction_that_rolls_back_leaves_its_events_pending(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    _send_studies(scp, modality, tmp_path)

    class Crash(Exception):
        pass

    def dies_before_commit() -> None:
        with uow.unit_of_work():
            assert events.process_pending() == STUDIES
            raise Crash

    with app.app_context(), pytest.raises(Crash):
        dies_before_commit()
    assert _pending(app) == STUDIES
    assert count(app, AuditEvent, AuditEvent.event_type == "dicom_instances_stored") == 0
    assert count(app, UnmatchedStudy) == 0
    with app.app_context():  # the worker's job, as the scheduler runs it
        assert jobs.ingest_events() == STUDIES
    assert _pending(app) == 0
    assert count(app, UnmatchedStudy) == STUDIES


def test_ingest_events_is_a_scheduled_worker_job() -> None:
    fn, seconds, own_transactions = jobs.JOBS["ingest_events"]
    assert fn is jobs.ingest_events
    assert seconds <= 5  # a matched exam shows 已检查 within seconds of the images
    assert own_transactions
