"""补传影像: a 临床资料补充 query that waits for the ``images_received`` message, delivered by the ingest worker
(issue 14, "events out of ingest"; engine/workflow/messages.py, engine/imaging/arrivals.py). Through the HTTP API
and the worker's job on a real database, SQLite and PostgreSQL (tests/processes is in POSTGRESQL_PATHS).

The receipt side is the outbox row the receive service writes (engine/imaging/outbox.py `stage_study`, as a STOW-RS
client would); tests/dicom/test_ingest_correlation.py sends real C-STOREs and races real worker threads.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from flask import Flask
from sqlalchemy import func, select, update

from engine import uow
from engine.accounts.models import Institution
from engine.cases.models import CaseEvent
from engine.imaging import events, outbox
from engine.imaging.exam_models import IngestEvent
from engine.imaging.models import Study
from engine.imaging.source import Source
from engine.workflow.models import HumanTask, ProcessInstance, WorkflowMessageWait
from telerad import jobs
from tests.api.test_cases_flow import Team, case_of, new_case, ok, refused
from tests.factories import Session, as_user, audit_count

REQUEST = "胸部CT层厚过大，请补传1mm薄层重建序列。"
_uids = itertools.count(1)


def _case(team: Team, accession: str) -> int:
    exam = {"modality": "CT", "body_part": "胸部", "exam_item": "胸部CT平扫", "accession_no": accession}
    case = new_case(team.req, exams=[exam])
    task = team.to_level(case["id"], "draft_report")
    ok(team.l1.post(f"/api/tasks/{task.id}/claim"))
    return int(case["id"])


def _ask_images(team: Team, case_id: int, **over: Any) -> dict[str, Any]:
    body = {"question": REQUEST, "request_images": True, **over}
    return ok(team.l1.post(f"/api/cases/{case_id}/clinical-queries", json=body), 201)  # type: ignore[no-any-return]


def _receive(app: Flask, accession: str, *, study_uid: str | None = None) -> int:
    """One receipt of a study from member hospital M01, as the receive service stages it in its index transaction:
    the study row (new, or an existing one receiving more images) and its `ingest_event`. Returns the study id."""
    uid = study_uid or f"1.2.826.0.1.3680043.8.498.9{next(_uids):04d}"
    with app.app_context(), uow.unit_of_work():
        s = uow.session()
        inst = s.execute(select(Institution.id).where(Institution.code == "M01")).scalar_one()
        study = s.execute(select(Study).where(Study.institution_id == inst, Study.study_instance_uid == uid)).scalar()
        new = study is None
        if study is None:
            study = Study(institution_id=inst, study_instance_uid=uid, accession_number=accession, patient_id="P1")
            s.add(study)
            s.flush()
        src = Source.client("pacs", inst, "M01", "127.0.0.1", "stow-rs")
        tags = {"study_instance_uid": uid, "accession_number": accession, "patient_id": "P1", "modality": "CT",
                "study_date": ""}  # fmt: skip
        outbox.stage_study(src, study.id, tags, audited=True, new_study=new)
        return int(study.id)


def _queries(sess: Session, case_id: int) -> list[dict[str, Any]]:
    return ok(sess.get(f"/api/cases/{case_id}/clinical-queries"))  # type: ignore[no-any-return]


def _count(app: Flask, stmt: Any) -> int:
    with app.app_context():
        return int(uow.session().execute(stmt).scalar_one())


def _arrived_events(app: Flask, case_id: int) -> int:
    return _count(
        app,
        select(func.count()).where(CaseEvent.case_id == case_id, CaseEvent.event == "clinical_query_images_arrived"),
    )


def _waits(app: Flask, pi_id: int) -> int:
    return _count(app, select(func.count()).where(WorkflowMessageWait.process_instance_id == pi_id))


def _notes(sess: Session, kind: str) -> list[dict[str, Any]]:
    items = sess.get("/api/notifications").get_json()["items"]
    return [n for n in items if n["kind"] == kind]


def test_the_arrival_completes_the_query_once_and_tells_the_doctor(app: Flask) -> None:
    team = Team(app)
    case_id = _case(team, "ACC-IR-1")
    query = _ask_images(team, case_id)
    assert (query["kind"], query["kind_name"]) == ("images", "补传影像")
    assert (query["status"], query["status_name"]) == ("awaiting_images", "等待补传影像")
    assert _waits(app, query["id"]) == 1  # the boundary message catch, copied out of the workflow state
    # The member hospital is told (等待影像) and sees a 补传影像 task it can answer only with "cannot".
    (note,) = _notes(team.req, "images_awaited")
    assert note["kind_name"] == "等待影像"
    assert "需要补传影像" in note["text"]
    registrar = as_user(app, "registrar", institution_code="M01")
    (row,) = ok(registrar.get("/api/process-tasks?scope=open"))["items"]
    assert (row["title"], row["case_id"]) == ("补传影像", case_id)
    history = {e["event"]: e for e in case_of(team.l1, case_id)["history"]}
    # stored codes; the web app labels them (web/src/utils/caseHistory.ts: 补传影像, 答复时限 24小时)
    asked = history["clinical_query_asked"]["details"]
    assert (asked["question"], asked["due"], asked["request_images"]) == (REQUEST, "PT24H", True)

    study_id = _receive(app, "ACC-IR-1")
    assert _queries(team.l1, case_id)[0]["status"] == "awaiting_images"  # nothing before the worker runs
    with app.app_context():
        assert jobs.ingest_events() == 1
    (seen,) = _queries(team.l1, case_id)
    assert (seen["status"], seen["status_name"]) == ("images_arrived", "影像已到达")
    assert seen["answered_at"] is not None
    assert _arrived_events(app, case_id) == 1
    assert _waits(app, query["id"]) == 0
    assert audit_count(app, "process_message_delivered") == 1
    with app.app_context():
        pi = uow.session().get(ProcessInstance, query["id"])
        assert pi is not None
        assert pi.status == "completed"
        task = uow.session().execute(select(HumanTask).where(HumanTask.process_instance_id == pi.id)).scalar_one()
        assert (task.outcome, task.completed_at is not None) == ("cancelled", True)  # ended by the message
    assert ok(registrar.get("/api/process-tasks?scope=open"))["items"] == []
    (arrived,) = _notes(team.l1, "images_arrived")
    assert (arrived["kind_name"], arrived["link"]) == ("影像已到达", f"/cases/{case_id}")
    assert case_of(team.l1, case_id)["case_no"] in arrived["text"]
    history = {e["event"]: e for e in case_of(team.l1, case_id)["history"]}
    assert history["clinical_query_images_arrived"]["event_name"] == "补传影像已到达"

    # A replay of the same event (its mark lost, e.g. restored from a backup) and a later receipt of more images
    # of the same study find nothing waiting: nothing happens twice.
    with app.app_context(), uow.unit_of_work():
        uow.session().execute(update(IngestEvent).values(processed_at=None))
    _receive(app, "ACC-IR-1", study_uid=_study_uid(app, study_id))
    with app.app_context():
        assert events.drain() == 2
    assert _arrived_events(app, case_id) == 1
    assert audit_count(app, "process_message_delivered") == 1
    assert len(_notes(team.l1, "images_arrived")) == 1
    # The remote-diagnosis case goes on: the doctor still holds the draft task.
    assert case_of(team.l1, case_id)["status"] == "open"


def _study_uid(app: Flask, study_id: int) -> str:
    with app.app_context():
        return str(uow.session().execute(select(Study.study_instance_uid).where(Study.id == study_id)).scalar_one())


def test_images_for_another_case_do_not_touch_a_waiting_query(app: Flask) -> None:
    team = Team(app)
    waiting_case, other_case = _case(team, "ACC-IR-A"), _case(team, "ACC-IR-B")
    waiting = _ask_images(team, waiting_case)
    other = _ask_images(team, other_case)
    _receive(app, "ACC-IR-B")
    _receive(app, "ACC-IR-NONE")  # unmatched: no exam, no case
    with app.app_context():
        assert jobs.ingest_events() == 2
    assert _queries(team.l1, waiting_case)[0]["status"] == "awaiting_images"
    assert _queries(team.l1, other_case)[0]["status"] == "images_arrived"
    assert (_waits(app, waiting["id"]), _waits(app, other["id"])) == (1, 0)
    assert _arrived_events(app, waiting_case) == 0


def test_no_waiting_instance_the_event_is_still_processed(app: Flask) -> None:
    team = Team(app)
    case_id = _case(team, "ACC-IR-2")
    _receive(app, "ACC-IR-2")  # matched to the case's exam, but nobody waits for images
    with app.app_context():
        assert jobs.ingest_events() == 1
        assert events.drain() == 0
    assert _count(app, select(func.count()).where(IngestEvent.processed_at.is_(None))) == 0
    assert audit_count(app, "dicom_study_matched") == 1
    assert audit_count(app, "process_message_delivered") == 0
    # Images received but not yet applied when the doctor asks: applying them delivers (the worker looks at the
    # instances waiting when it applies the event, not when the images came in).
    study_uid = _study_uid(app, _receive(app, "ACC-IR-2"))
    query = _ask_images(team, case_id)
    assert _queries(team.l1, case_id)[0]["status"] == "awaiting_images"
    with app.app_context():
        assert jobs.ingest_events() == 1
    assert _queries(team.l1, case_id)[0]["status"] == "images_arrived"
    _receive(app, "ACC-IR-2", study_uid=study_uid)
    with app.app_context():
        assert jobs.ingest_events() == 1
    assert audit_count(app, "process_message_delivered") == 1
    assert _waits(app, query["id"]) == 0


def test_late_images_into_a_study_matched_earlier_deliver(app: Flask) -> None:
    team = Team(app)
    case_id = _case(team, "ACC-IR-3")
    study_uid = _study_uid(app, _receive(app, "ACC-IR-3"))
    with app.app_context():
        assert jobs.ingest_events() == 1  # matched now, before anyone asked
    _ask_images(team, case_id)
    _receive(app, "ACC-IR-3", study_uid=study_uid)  # the hospital re-sends into the same study: not a new study
    with app.app_context():
        assert jobs.ingest_events() == 1
    assert _queries(team.l1, case_id)[0]["status"] == "images_arrived"
    assert audit_count(app, "dicom_study_matched") == 1  # matched once, delivered on the later receipt


def test_the_hospital_says_it_cannot_resend_and_later_images_change_nothing(app: Flask) -> None:
    team = Team(app)
    case_id = _case(team, "ACC-IR-4")
    query = _ask_images(team, case_id)
    (row,) = ok(team.req.get("/api/process-tasks?scope=open"))["items"]
    ok(team.req.post(f"/api/process-tasks/{row['id']}/claim"))
    form = ok(team.req.get(f"/api/process-tasks/{row['id']}/form"))
    assert form["data"] == {"question": REQUEST}
    assert form["schema"]["properties"]["reason"]["title"] == "无法补传的原因"
    url = f"/api/process-tasks/{row['id']}/complete"
    refused(team.req.post(url, json={"data": {"question": REQUEST}}), 400, "form_invalid")  # a reason is required
    reason = "原始数据已超过保存期限"
    ok(team.req.post(url, json={"data": {"question": REQUEST, "reason": reason}}))
    (seen,) = _queries(team.l1, case_id)
    assert (seen["status"], seen["status_name"], seen["reason"]) == ("unavailable", "无法提供", reason)
    assert _waits(app, query["id"]) == 0
    _receive(app, "ACC-IR-4")
    with app.app_context():
        assert jobs.ingest_events() == 1
    assert _queries(team.l1, case_id)[0]["status"] == "unavailable"
    assert audit_count(app, "process_message_delivered") == 0


def test_the_due_time_applies_while_waiting_for_images(app: Flask) -> None:
    team = Team(app)
    case_id = _case(team, "ACC-IR-5")
    _ask_images(team, case_id, due="PT1H")
    start = datetime.now(UTC)
    with time_machine.travel(start + timedelta(hours=2), tick=False), app.app_context():
        assert jobs.fire_timers() == 1
        assert jobs.fire_timers() == 0
    (seen,) = _queries(team.l1, case_id)
    assert (seen["status"], seen["status_name"], seen["overdue"]) == ("overdue", "已超时", True)
    _receive(app, "ACC-IR-5")  # still waiting after the reminder: the images complete it
    with app.app_context():
        assert jobs.ingest_events() == 1
    (seen,) = _queries(team.l1, case_id)
    assert (seen["status"], seen["overdue"]) == ("images_arrived", True)


def test_an_information_query_does_not_wait_for_images(app: Flask) -> None:
    team = Team(app)
    case_id = _case(team, "ACC-IR-6")
    query = ok(team.l1.post(f"/api/cases/{case_id}/clinical-queries", json={"question": "请补充手术史"}), 201)
    assert (query["kind"], query["status"]) == ("info", "waiting")
    assert _waits(app, query["id"]) == 0
    _receive(app, "ACC-IR-6")
    with app.app_context():
        assert jobs.ingest_events() == 1
    assert _queries(team.l1, case_id)[0]["status"] == "waiting"
