"""WF-06 for the second process kind (issue 14, "timer fires once across a restart"): a 临床资料补充 query's due
timer, across a real kill -9 of the server and two worker processes started after the due time.

`telerad run` (web server and worker in one process) runs on a file database (SQLite, or a fresh PostgreSQL
database when TELERAD_TEST_DB=postgresql). Over real HTTP a central doctor working on a case asks the member
hospital for clinical information with an answer deadline of a few seconds — the deadline is the query's own
`due` field (ISO 8601 duration, the start form's 答复时限; engine/cases/clinical_queries.py), so no clock is faked
in any process. The server is killed with SIGKILL before the deadline; after it has passed, two `telerad worker`
processes start at the same moment and each runs its timer job every second (TELERAD_TIMER_POLL_SECONDS, an
operator's setting) against the same due timer, several times over. It fires exactly once: one 已超时 mark in the
case history, one 超时提醒 notification to the requester, one `timer_fired` audit event, and the answer task stays
open (the timer is non-interrupting).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from engine import config, uow
from engine.audit import AuditEvent
from engine.cases.clinical_queries import OVERDUE
from engine.cases.models import CaseEvent
from engine.db import utcnow
from engine.notifications.models import Notification
from engine.workflow.models import HumanTask, WorkflowTimer
from tests.conftest import TEST_SECRET, make_settings
from tests.factories import make_user
from tests.integration.test_restart_safety import TELERAD, Client, Server, free_port, new_case, task_of

DUE_SECONDS = 2  # the query's answer deadline: long enough to start it and kill the server before it falls due
POLL_SECONDS = 1  # TELERAD_TIMER_POLL_SECONDS: each worker's timer job runs every second, first a second after start


def query_timer(app: Flask, query_id: int) -> dict[str, Any]:
    """What the due timer of one query left behind: its row, the history marks, notifications and audit events."""
    with app.app_context():
        s = uow.session()
        (timer,) = s.execute(select(WorkflowTimer).where(WorkflowTimer.process_instance_id == query_id)).scalars()
        marks = [
            d
            for d in s.execute(select(CaseEvent.details).where(CaseEvent.event == OVERDUE)).scalars()
            if (d or {}).get("query") == query_id
        ]
        notes = s.execute(
            select(Notification.recipient_user_id, Notification.link).where(Notification.kind == "overdue")
        ).all()
        audits = [
            d
            for d in s.execute(select(AuditEvent.details).where(AuditEvent.event_type == "timer_fired")).scalars()
            if (d or {}).get("process_instance_id") == query_id
        ]
        open_tasks = s.execute(
            select(HumanTask.task_name).where(
                HumanTask.process_instance_id == query_id, HumanTask.completed_at.is_(None)
            )
        ).scalars()
        return {
            "task_name": timer.task_name,
            "due_at": timer.due_at,
            "fired_at": timer.fired_at,
            "marks": len(marks),
            "notifications": [tuple(n) for n in notes],
            "audits": len(audits),
            "open": list(open_tasks),
            "timer_events": s.execute(select(func.count()).where(CaseEvent.event == "timer")).scalar_one(),
        }


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([str(TELERAD), "worker"], env=env, stdout=out, stderr=out, start_new_session=True)


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def wait_until(when: datetime) -> None:
    while utcnow() < when:
        time.sleep(0.1)


def test_wf06_a_clinical_query_timer_fires_once_after_kill_9_and_with_two_workers(
    file_database: str, tmp_path: Path
) -> None:
    from api.app import create_app
    from api.extensions import db
    from engine.accounts.seed import ensure_institutions

    env = {
        **os.environ,
        "TELERAD_MODE": "test",
        "TELERAD_SECRET_KEY": TEST_SECRET,
        "TELERAD_DATABASE_URL": file_database,
        "TELERAD_INSTANCE_DIR": str(tmp_path / "instance"),
        "TELERAD_ARGON2_MEMORY_KIB": "1024",
        "TELERAD_ARGON2_TIME_COST": "1",
        "TELERAD_LOGIN_IP_LIMIT": "1000 per minute",
        "TELERAD_DICOM_PORT": str(free_port()),
        "TELERAD_DICOM_PROCESSES": "1",
        "TELERAD_TIMER_POLL_SECONDS": str(POLL_SECONDS),
    }
    done = subprocess.run([str(TELERAD), "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "clinical_query" in done.stdout  # both processes were deployed by the upgrade
    app = create_app(make_settings(file_database, tmp_path / "tests"))
    with app.app_context(), uow.unit_of_work():
        ensure_institutions()
    registrar = make_user(app, "registrar", institution_code="M01")
    l1 = make_user(app, "report_l1")
    server = Server(env, tmp_path / "server.log")
    workers: list[subprocess.Popen[bytes]] = []
    try:
        port = server.start()
        case = new_case(Client(port, registrar), 1)
        doctor = Client(port, l1)
        task = task_of(doctor, "pool", case["id"])
        doctor.call("POST", f"/api/tasks/{task['id']}/claim")  # only a doctor working on the case may ask
        body = {"question": "请补充既往病史。", "due": f"PT{DUE_SECONDS}S"}
        query = doctor.call("POST", f"/api/cases/{case['id']}/clinical-queries", body, status=201)
        assert query["status"] == "waiting"
        server.kill()  # kill -9 while the query waits for its answer

        before = query_timer(app, query["id"])
        assert before["task_name"] == "due_timer"
        assert before["fired_at"] is None
        assert before["due_at"] > utcnow()  # the server died before the deadline
        assert (before["marks"], before["notifications"], before["audits"]) == (0, [], 0)

        wait_until(before["due_at"])
        started = time.monotonic()  # two workers at once: their timer jobs run at the same moment
        workers = [start_worker(env, tmp_path / f"worker{i}.log") for i in (1, 2)]
        deadline = started + 20
        while query_timer(app, query["id"])["fired_at"] is None and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3 * POLL_SECONDS)  # both workers run the job again, a few times each
        assert [w.poll() for w in workers] == [None, None]  # both still running: each ran its timer job
        for w in workers:
            kill(w)
        logs = "".join((tmp_path / f"worker{i}.log").read_text() for i in (1, 2))
        assert "Traceback" not in logs
        assert "failed" not in logs  # telerad/jobs.py logs a timer that failed to fire

        after = query_timer(app, query["id"])
        assert after["fired_at"] is not None, logs
        assert after["fired_at"] >= before["due_at"]
        assert after["marks"] == 1  # 已超时, once
        assert after["notifications"] == [(registrar.id, f"/cases/{case['id']}")]  # 超时提醒 to the requester, once
        assert after["audits"] == 1
        assert after["open"] == ["answer_query"]  # non-interrupting: still to be answered
        assert after["timer_events"] == 0  # the case's own report time limit (30 min) did not fire
    finally:
        server.kill()
        for w in workers:
            kill(w)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_wf06_the_timer_poll_interval_is_a_checked_setting(tmp_path: Path) -> None:
    base = {"TELERAD_MODE": "test", "TELERAD_INSTANCE_DIR": str(tmp_path)}
    assert config.load_settings(base).timer_poll_seconds == 15
    assert config.load_settings({**base, "TELERAD_TIMER_POLL_SECONDS": "2"}).timer_poll_seconds == 2
    for bad in ("0", "-5", "3601", "soon"):
        with pytest.raises(config.ConfigError, match="TELERAD_TIMER_POLL_SECONDS"):
            config.load_settings({**base, "TELERAD_TIMER_POLL_SECONDS": bad})
