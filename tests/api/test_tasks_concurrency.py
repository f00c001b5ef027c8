"""Races with real threads on the real database (SQLite and PostgreSQL): each thread has its own test client and
session, and all start together at a barrier.

REQ: WF-01 (a pool claim is atomic), WF-02 (a completion is atomic and exactly-once).
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from engine import config, uow
from engine.audit import AuditEvent
from engine.reports.models import ReportRevision
from engine.workflow.models import HumanTask
from tests.api.test_cases_flow import REPORT, Team, new_case, open_tasks, report_row, the_task
from tests.factories import Session, as_user


def race(sessions: list[Session], call: Callable[[Session], Any]) -> list[tuple[int, str]]:
    """Run `call` once per session in its own thread, all released by one barrier; (status, code) each."""
    barrier = threading.Barrier(len(sessions))
    results: list[tuple[int, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(sess: Session) -> None:
        try:
            barrier.wait(timeout=60)
            r = call(sess)
            with lock:
                results.append((r.status_code, (r.get_json() or {}).get("code", "")))
        except BaseException as exc:  # noqa: BLE001 — reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(results) == len(sessions)
    return results


def audit_events(app: Flask, event_type: str, object_id: int) -> list[AuditEvent]:
    with app.app_context():
        s = uow.session()
        rows = list(
            s.execute(
                select(AuditEvent).where(AuditEvent.event_type == event_type, AuditEvent.object_id == str(object_id))
            ).scalars()
        )
        s.expunge_all()
        return rows


def test_wf01_twenty_simultaneous_claims_one_winner(app: Flask) -> None:
    team = Team(app)
    doctors = [as_user(app, "report_l1") for _ in range(20)]
    task = the_task(app, new_case(team.req)["id"], "draft_report")
    results = race(doctors, lambda d: d.post(f"/api/tasks/{task.id}/claim"))
    counts = Counter(results)
    assert counts[(200, "")] == 1, counts
    assert counts[(409, "already_claimed")] == 19, counts
    (row,) = open_tasks(app, task.case_id)
    assert row.id == task.id
    assert row.assignee_id in {d.user.id for d in doctors}
    claimed = audit_events(app, "task_claimed", task.id)
    assert [e.user_id for e in claimed] == [row.assignee_id]
    conflicts = audit_events(app, "claim_conflict", task.id)
    assert len(conflicts) == 19
    assert row.assignee_id not in {e.user_id for e in conflicts}
    assert not audit_events(app, "security_alert", task.id)  # losing a race is not an intrusion


def test_wf02_ten_simultaneous_completions_advance_once(app: Flask) -> None:
    team = Team(app)
    reviewers = [as_user(app, "report_l2") for _ in range(10)]
    case_id = new_case(team.req)["id"]
    task = team.to_level(case_id, "report_level2")
    results = race(
        reviewers,
        lambda d: d.post(
            f"/api/tasks/{task.id}/complete",
            json={"data": {**REPORT, "impression": f"{d.user.username} 确认", "decision": "approve"}},
        ),
    )
    counts = Counter(status for status, _ in results)
    assert counts[200] == 1, results
    losers = [r for r in results if r[0] != 200]
    assert all(r in {(409, "task_not_ready"), (409, "already_claimed"), (403, "not_candidate")} for r in losers)
    (nxt,) = open_tasks(app, case_id)  # advanced exactly one step
    assert nxt.task_name == "review_level3"
    report = report_row(app, case_id)
    with app.app_context():
        s = uow.session()
        per_guid = s.execute(
            select(func.count())
            .select_from(HumanTask)
            .where(HumanTask.case_id == case_id, HumanTask.completed_at.is_(None))
            .group_by(HumanTask.task_guid)
        ).scalars()
        assert all(n <= 1 for n in per_guid)
        done = s.get(HumanTask, task.id)
        assert done is not None
        assert done.outcome == "completed"
        winner = done.completed_by_id
        signed_l2 = list(
            s.execute(
                select(ReportRevision.author_id).where(
                    ReportRevision.report_id == report.id, ReportRevision.level == "l2", ReportRevision.signed
                )
            ).scalars()
        )
    assert signed_l2 == [winner]
    assert report.author_l2_id == winner
    completed = audit_events(app, "task_completed", task.id)
    assert [e.user_id for e in completed] == [winner]


# --- WF-01 across two server processes -----------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
SERVER = """
import sys
from pathlib import Path
from waitress import serve
from api.app import create_app
from tests.conftest import make_settings
app = create_app(make_settings(sys.argv[1], Path(sys.argv[2])))
serve(app, host="127.0.0.1", port=int(sys.argv[3]), threads=10, ident="telerad-wf01")
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def two_servers(app: Flask, database_url: str, tmp_path: Path) -> Iterator[list[int]]:
    """Two `waitress` processes serving the same database: two connection pools, two Python interpreters."""
    ports = [_free_port(), _free_port()]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SERVER, database_url, str(tmp_path / f"srv{i}"), str(port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i, port in enumerate(ports)
    ]
    try:
        deadline = time.monotonic() + 60
        for port, proc in zip(ports, procs, strict=True):
            while True:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "server process did not start"
                    time.sleep(0.1)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


def test_wf01_claims_through_two_server_processes_one_winner(app: Flask, two_servers: list[int]) -> None:
    """SECURITY.md WF-01 as written: 2 processes, 20 threads, barrier start → one 200, nineteen 409, one
    assignee, one "claimed" audit event and nineteen "claim_conflict"."""
    team = Team(app)
    doctors = [as_user(app, "report_l1") for _ in range(20)]
    task = the_task(app, new_case(team.req)["id"], "draft_report")
    cookie_name = config.current().session_cookie_name
    barrier = threading.Barrier(len(doctors))
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def claim(i: int, doctor: Session) -> None:
        cookie = doctor.client.get_cookie(cookie_name)
        assert cookie is not None
        conn = http.client.HTTPConnection("127.0.0.1", two_servers[i % 2], timeout=60)
        conn.connect()  # connected before the barrier: the race is between the requests, not the handshakes
        barrier.wait(timeout=60)
        conn.request(
            "POST",
            f"/api/tasks/{task.id}/claim",
            body=b"{}",
            headers={
                "Cookie": f"{cookie_name}={cookie.value}",
                "X-CSRF-Token": doctor.csrf,
                "Content-Type": "application/json",
            },
        )
        resp = conn.getresponse()
        body = json.loads(resp.read() or b"{}")
        with lock:
            results.append((resp.status, body.get("code", "") if resp.status != 200 else ""))

    threads = [threading.Thread(target=claim, args=(i, d)) for i, d in enumerate(doctors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    counts = Counter(results)
    assert (counts[(200, "")], counts[(409, "already_claimed")]) == (1, 19), counts
    (row,) = open_tasks(app, task.case_id)
    assert row.assignee_id in {d.user.id for d in doctors}
    assert [e.user_id for e in audit_events(app, "task_claimed", task.id)] == [row.assignee_id]
    assert len(audit_events(app, "claim_conflict", task.id)) == 19


@pytest.mark.slow
def test_wf01_claim_race_repeated_200_times(app: Flask) -> None:
    team = Team(app)
    doctors = [as_user(app, "report_l1") for _ in range(20)]
    for _ in range(200):
        task = the_task(app, new_case(team.req)["id"], "draft_report")
        counts = Counter(race(doctors, lambda d, t=task: d.post(f"/api/tasks/{t.id}/claim")))
        assert (counts[(200, "")], counts[(409, "already_claimed")]) == (1, 19), counts
        assert len({r.assignee_id for r in open_tasks(app, task.case_id)}) == 1
