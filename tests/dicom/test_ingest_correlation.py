"""Images received over DICOM reach the process waiting for them (issue 14, "events out of ingest": the worker
correlates the ingest event to the waiting process instance; a replay does nothing twice). Real C-STOREs to the
SCP, the worker's job, and real threads draining the outbox at once, on SQLite and PostgreSQL.

The waiting process is a 补传影像 query (processes/clinical_query: a boundary message catch ``images_received`` on
its 补传影像 task); engine/imaging/arrivals.py delivers the message about the study's exam and cases.
"""

from __future__ import annotations

import threading
from pathlib import Path

from flask import Flask
from sqlalchemy import func, select

from dicom import status
from dicom.scp import Running
from engine import audit, uow
from engine.cases.models import CaseEvent
from engine.imaging import events
from engine.imaging.exam_models import IngestEvent
from engine.workflow.models import ProcessInstance, WorkflowMessageWait
from telerad import jobs
from tests.api.test_cases_flow import Team, new_case, ok
from tests.dicom import synthetic
from tests.dicom.conftest import audit_events, dcmtk, scalar, store
from tests.factories import Session


def _case(team: Team, accession: str) -> int:
    exam = {"modality": "CT", "body_part": "胸部", "exam_item": "胸部CT平扫", "accession_no": accession}
    case = new_case(team.req, exams=[exam])
    task = team.to_level(case["id"], "draft_report")
    ok(team.l1.post(f"/api/tasks/{task.id}/claim"))
    return int(case["id"])


def _ask_images(team: Team, case_id: int) -> int:
    body = {"question": "请补传增强扫描序列", "request_images": True}
    return int(ok(team.l1.post(f"/api/cases/{case_id}/clinical-queries", json=body), 201)["id"])


def _status(sess: Session, case_id: int) -> list[str]:
    return [q["status"] for q in ok(sess.get(f"/api/cases/{case_id}/clinical-queries"))]


def _files(tmp_path: Path, accession: str, n: int, tag: str) -> list[Path]:
    return [synthetic.ct(tmp_path / f"{tag}{i}.dcm", AccessionNumber=accession, PatientID=f"P{tag}") for i in range(n)]


def _waits(app: Flask, pi_id: int) -> int:
    stmt = select(func.count()).where(WorkflowMessageWait.process_instance_id == pi_id)
    return int(scalar(app, stmt) or 0)


def _arrived(app: Flask, case_id: int) -> int:
    stmt = select(func.count()).where(CaseEvent.case_id == case_id, CaseEvent.event == "clinical_query_images_arrived")
    return int(scalar(app, stmt) or 0)


def _pi_status(app: Flask, pi_id: int) -> str:
    return str(scalar(app, select(ProcessInstance.status).where(ProcessInstance.id == pi_id)))


def test_img06_images_sent_with_storescu_advance_the_waiting_query_once(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    team = Team(app)
    case_id = _case(team, "ACC-CORR-1")
    query = _ask_images(team, case_id)
    (path,) = _files(tmp_path, "ACC-CORR-1", 1, "s")
    res = dcmtk("storescu", "-aet", modality, "-aec", "TELERAD", "127.0.0.1", str(scp.port), str(path))
    assert res.returncode == 0, res.stderr
    assert _status(team.l1, case_id) == ["awaiting_images"]  # C-STORE only staged the event
    with app.app_context():
        assert jobs.ingest_events() == 1
    assert _status(team.l1, case_id) == ["images_arrived"]
    assert (_pi_status(app, query), _waits(app, query), _arrived(app, case_id)) == ("completed", 0, 1)
    # The same file again (a modality re-sending): a new receipt, the query already done — nothing twice.
    res = dcmtk("storescu", "-aet", modality, "-aec", "TELERAD", "127.0.0.1", str(scp.port), str(path))
    assert res.returncode == 0, res.stderr
    with app.app_context():
        jobs.ingest_events()
        assert events.drain() == 0
    assert _arrived(app, case_id) == 1
    assert len(audit_events(app, "process_message_delivered")) == 1
    notes = [n for n in team.l1.get("/api/notifications").get_json()["items"] if n["kind"] == "images_arrived"]
    assert len(notes) == 1


def test_img06_concurrent_workers_deliver_each_wait_once(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    team = Team(app)
    busy, quiet, unasked = _case(team, "ACC-CORR-A"), _case(team, "ACC-CORR-B"), _case(team, "ACC-CORR-C")
    busy_queries = [_ask_images(team, busy), _ask_images(team, busy)]  # two queries on one case: each takes it once
    quiet_query = _ask_images(team, quiet)
    files = (
        _files(tmp_path, "ACC-CORR-A", 6, "a")  # six studies for the busy case, over one association
        + _files(tmp_path, "ACC-CORR-C", 2, "c")  # matched to a case nobody asked
        + _files(tmp_path, "ACC-CORR-X", 2, "x")  # unmatched
    )
    assert store(scp.port, modality, files) == [status.SUCCESS] * len(files)

    workers = 4
    applied: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def worker() -> None:
        # One event per transaction, so the workers interleave on the busy case's instances (a batch of 200 would
        # let the first worker take every row on PostgreSQL, FOR UPDATE SKIP LOCKED).
        try:
            with app.app_context():
                start.wait()
                while True:
                    with uow.unit_of_work():
                        n = events.process_pending(limit=1)
                    if n == 0:
                        break
                    applied.append(n)
        except BaseException as exc:  # noqa: BLE001  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert sum(applied) == len(files)  # every event applied by exactly one worker
    assert int(scalar(app, select(func.count()).where(IngestEvent.processed_at.is_(None))) or 0) == 0

    delivered = audit_events(app, "process_message_delivered")
    assert sorted(int(e.details["process_instance_id"]) for e in delivered) == sorted(busy_queries)
    assert _status(team.l1, busy) == ["images_arrived", "images_arrived"]
    assert _arrived(app, busy) == 2  # once per query, not once per study
    assert [_waits(app, q) for q in busy_queries] == [0, 0]
    assert _status(team.l1, quiet) == ["awaiting_images"]  # another case's instance is not touched
    assert _waits(app, quiet_query) == 1
    assert _arrived(app, unasked) == 0
    notes = [n for n in team.l1.get("/api/notifications").get_json()["items"] if n["kind"] == "images_arrived"]
    assert len(notes) == 2
    with app.app_context():
        try:
            assert audit.verify_chain(uow.session()).ok
        finally:
            uow.session().rollback()
    with app.app_context():  # a replay finds nothing to do
        assert events.drain() == 0
    assert len(audit_events(app, "process_message_delivered")) == 2
