"""WF-06: kill -9 the real server mid-flow; after a restart the case continues and a due timer fires exactly once.

`telerad run` (web server and worker in one process) runs as a subprocess on a file database (SQLite, or a
fresh PostgreSQL database when TELERAD_TEST_DB=postgresql). Over real HTTP a member hospital creates two
emergency cases and a report_l1 doctor locks, saves and submits the first report; then the whole process group
is killed with SIGKILL. After the restart the first case continues from the level-2 queue to release, and the
worker fires the second case's 30-minute report time limit once — and only once, however often the job runs.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from engine import uow
from engine.audit import AuditEvent
from engine.cases.models import Case, CaseEvent
from engine.db import utcnow
from engine.workflow.models import HumanTask, WorkflowTimer
from tests import factories
from tests.conftest import TEST_SECRET, make_settings
from tests.factories import make_user

TELERAD = Path(sys.executable).with_name("telerad")
REPORT = {"findings": "双肺纹理清晰。", "impression": "胸部未见明显异常。", "recommendation": "", "positive": "阴性"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    """Keep-alive HTTP with a cookie jar and the session's CSRF token."""

    def __init__(self, port: int, user: factories.TestUser) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        body = self.call("POST", "/api/auth/login", {"username": user.username, "password": user.password})
        assert body["state"] == "active", body
        self.csrf = body["csrf_token"]

    def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()), "Content-Type": "application/json"}
        if self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        self.conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        for cookie in resp.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        parsed = json.loads(raw) if raw else None
        assert resp.status == status, (method, path, resp.status, parsed)
        return parsed


class Server:
    """`telerad run` in its own process group, so kill -9 takes the web threads and the worker down together."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> int:
        self.port = free_port()
        env = {**self.env, "TELERAD_HTTP_PORT": str(self.port)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([str(TELERAD), "run"], env=env, stdout=out, stderr=out, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/api/health")
                if conn.getresponse().status == 200:
                    return self.port
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"telerad run did not answer: {self.log.read_text()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


def new_case(registrar: Client, n: int) -> dict[str, Any]:
    body = {
        "patient": {"patient_no": f"RS{n:04d}", "name": f"重启{n}", "sex": "F", "birth_date": "1980-02-03"},
        "exams": [{"modality": "DX", "body_part": "胸部", "exam_item": "胸部正位"}],
        "emergency": True,
        "clinical_info": "胸痛",
    }
    return registrar.call("POST", "/api/cases", body, status=201)  # type: ignore[no-any-return]


def task_of(client: Client, scope: str, case_id: int) -> dict[str, Any]:
    items = client.call("GET", f"/api/tasks?scope={scope}&page_size=100")["items"]
    (task,) = [t for t in items if t["case_id"] == case_id]
    return task  # type: ignore[no-any-return]


def make_timer_due(app: Flask, case_id: int) -> None:
    """Let the case's 30-minute report time limit fall due while the server is down.

    The worker picks due rows from workflow_timer, and SpiffWorkflow then checks the event value it stored in
    the workflow state against its own clock. Moving both into the past is exactly what half an hour of waiting
    would have done; a clock offset cannot be handed to another process.
    """
    past = utcnow() - timedelta(minutes=1)
    with app.app_context(), uow.unit_of_work() as s:
        case = s.get(Case, case_id)
        assert case is not None
        (timer,) = s.execute(
            select(WorkflowTimer).where(WorkflowTimer.process_instance_id == case.process_instance_id)
        ).scalars()
        assert timer.task_name == "sla_timer"
        assert timer.fired_at is None
        assert timer.due_at > utcnow() + timedelta(minutes=25)  # 急诊: 30 minutes after the case was created
        state = copy.deepcopy(case.process.state)
        state["tasks"][timer.task_guid]["internal_data"]["event_value"] = past.isoformat()
        case.process.state = state
        timer.due_at = past


def timer_record(app: Flask, case_id: int) -> dict[str, Any]:
    with app.app_context():
        s = uow.session()
        events = dict(
            s.execute(
                select(CaseEvent.event, func.count()).where(CaseEvent.case_id == case_id).group_by(CaseEvent.event)
            ).all()
        )
        audits = s.execute(
            select(func.count()).where(AuditEvent.event_type == "timer_fired", AuditEvent.object_id == str(case_id))
        ).scalar_one()
        of_case = select(Case.process_instance_id).where(Case.id == case_id).scalar_subquery()
        fired = (
            s.execute(select(WorkflowTimer.fired_at).where(WorkflowTimer.process_instance_id == of_case))
            .scalars()
            .all()
        )
        open_tasks = s.execute(
            select(HumanTask.task_name).where(HumanTask.case_id == case_id, HumanTask.completed_at.is_(None))
        ).scalars()
        return {"events": events, "audits": audits, "fired": fired, "open": list(open_tasks)}


def test_wf06_kill_mid_flow_then_the_case_continues_and_the_due_timer_fires_once(
    file_database: str, tmp_path: Path
) -> None:
    from api.app import create_app
    from api.extensions import db
    from engine.accounts.seed import ensure_institutions
    from telerad.jobs import fire_timers

    env = {
        **os.environ,
        "TELERAD_MODE": "test",
        "TELERAD_SECRET_KEY": TEST_SECRET,
        "TELERAD_DATABASE_URL": file_database,
        "TELERAD_INSTANCE_DIR": str(tmp_path / "instance"),
        "TELERAD_ARGON2_MEMORY_KIB": "1024",
        "TELERAD_ARGON2_TIME_COST": "1",
        "TELERAD_LOGIN_IP_LIMIT": "1000 per minute",
        "TELERAD_TIMER_POLL_SECONDS": "1",  # the worker looks for due timers every second (default 15)
    }
    done = subprocess.run([str(TELERAD), "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "remote_diagnosis" in done.stdout  # the process was deployed by the upgrade
    app = create_app(make_settings(file_database, tmp_path / "tests"))
    with app.app_context(), uow.unit_of_work():
        ensure_institutions()  # test mode loads no demo data: CENTRAL and M01..M05 as in every test database
    registrar = make_user(app, "registrar", institution_code="M01")
    l1, l2, l3 = (make_user(app, role) for role in ("report_l1", "report_l2", "report_l3"))
    server = Server(env, tmp_path / "server.log")
    try:
        port = server.start()
        reg = Client(port, registrar)
        first, second = new_case(reg, 1), new_case(reg, 2)
        doctor = Client(port, l1)
        task = task_of(doctor, "pool", first["id"])  # 急诊 → emergency_team, which does not exist → 抢单池
        doctor.call("POST", f"/api/tasks/{task['id']}/claim")
        report_id = doctor.call("GET", f"/api/cases/{first['id']}")["report"]["id"]  # members see released ones only
        token = doctor.call("POST", f"/api/reports/{report_id}/lock")["lock_token"]
        doctor.call("PUT", f"/api/reports/{report_id}/draft", {"lock_token": token, **REPORT, "findings": "草稿"})
        doctor.call("POST", f"/api/tasks/{task['id']}/complete", {"data": REPORT, "lock_token": token})
        server.kill()  # kill -9 mid-flow: the level-2 step is pending, the second case's timer is waiting

        make_timer_due(app, second["id"])
        port = server.start()
        reg, reviewer, auditor = Client(port, registrar), Client(port, l2), Client(port, l3)
        diagram = reviewer.call("GET", f"/api/cases/{first['id']}/diagram")  # the saved workflow state loads
        assert "report_level2" in diagram["active"]
        assert {"draft_report"} <= set(diagram["completed"])
        revisions = reviewer.call("GET", f"/api/reports/{report_id}/revisions")
        assert [(r["signed"], r["findings"]) for r in revisions] == [(False, "草稿"), (True, REPORT["findings"])]
        task = task_of(reviewer, "group", first["id"])
        assert task["task_name"] == "report_level2"
        reviewer.call("POST", f"/api/tasks/{task['id']}/complete", {"data": {**REPORT, "decision": "approve"}})
        task = task_of(auditor, "group", first["id"])
        assert task["task_name"] == "review_level3"
        auditor.call("POST", f"/api/tasks/{task['id']}/complete", {"data": {**REPORT, "decision": "approve"}})
        case = reg.call("GET", f"/api/cases/{first['id']}")
        assert case["status"] == "completed"
        assert case["report"]["status"] == "released"
        assert {e["status"] for e in case["exams"]} == {"released"}

        deadline = time.monotonic() + 40  # the restarted worker runs fire_timers every second
        while not timer_record(app, second["id"])["fired"][0] and time.monotonic() < deadline:
            time.sleep(0.5)
        with app.app_context():
            assert fire_timers() == 0  # the job running again (here and in the server) fires nothing more
            assert fire_timers() == 0
        record = timer_record(app, second["id"])
        assert record["fired"][0] is not None, server.log.read_text()
        assert record["events"]["overdue"] == 1
        assert record["events"]["timer"] == 1
        assert record["audits"] == 1
        assert record["open"] == ["draft_report"]  # non-interrupting: the report is still to be written
    finally:
        server.kill()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
