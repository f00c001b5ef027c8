"""Deployments and incidents of the case engine against the real database.

REQ: WF-08 (no unsafe expression, unknown service or formless task is ever deployed — by the engine or through
the API), WF-07 (running cases stay on their version; migration is explicit and audited), incidents (a failing
service task parks the case, the caller still gets 200, a retry clears it).
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from engine import uow
from engine.audit import AuditEvent
from engine.cases.models import Case
from engine.errors import ValidationFailed
from engine.workflow import service_tasks, specs
from engine.workflow.models import Incident, ProcessDeployment
from tests.api.test_cases_flow import APPROVE, Team, case_of, complete, new_case, ok, refused, report_row
from tests.factories import Session, as_user, audit_count

PID = "remote_diagnosis"
BPMN, DMN = specs.read_files(PID)
XML = BPMN[f"{PID}.bpmn"]
DMN_XML = DMN["dispatch_rules.dmn"]
MANUAL = "<bpmn:conditionExpression>dispatch_mode == &quot;manual&quot;</bpmn:conditionExpression>"
UNSAFE = ["__import__('os').system('id')", "().__class__.__base__.__subclasses__()", "open('/etc/passwd').read()"]


def esc(expr: str) -> str:
    return expr.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")


def variants() -> dict[str, tuple[str, dict[str, str], str]]:
    """name → (bpmn, dmn, the element the refusal must name)."""
    out: dict[str, tuple[str, dict[str, str], str]] = {}
    for i, expr in enumerate(UNSAFE):
        cond = XML.replace(MANUAL, f"<bpmn:conditionExpression>{esc(expr)}</bpmn:conditionExpression>")
        out[f"condition{i}"] = (cond, DMN, "f_manual")
        cell = DMN_XML.replace('<text>"M05"</text>', f"<text>{esc(expr)}</text>")
        out[f"dmn{i}"] = (XML, {"dispatch_rules.dmn": cell}, "row_manual_m05_2")
    timer = XML.replace("<bpmn:timeDate>tat_due</bpmn:timeDate>", f"<bpmn:timeDate>{esc(UNSAFE[0])}</bpmn:timeDate>")
    out["timer"] = (timer, DMN, "sla_timer")
    out["service"] = (XML.replace('id="reports.publish"', 'id="os.system"'), DMN, "publish_report")
    formless = XML.replace(
        '<spiffworkflow:property name="formJsonSchemaFilename" value="draft_report.schema.json" />', ""
    )
    out["no_form"] = (formless, DMN, "draft_report")
    out["missing_form"] = (XML.replace("draft_report.schema.json", "nope.schema.json"), DMN, "draft_report")
    return out


VARIANTS = variants()


def deployments(app: Flask) -> int:
    with app.app_context():
        # Of this process: processes/ holds other kinds too (issue 14: clinical_query), deployed at start-up.
        stmt = select(func.count()).select_from(ProcessDeployment).where(ProcessDeployment.process_id == PID)
        return int(uow.session().execute(stmt).scalar_one())


def admin(app: Flask) -> Session:
    return as_user(app, "process_admin")  # logs in with TOTP (MFA_ROLE_CODES)


# --- WF-08 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_wf08_engine_deploy_refuses_and_names_the_element(app: Flask, name: str) -> None:
    assert all(v[0] != XML or v[1] != DMN for v in VARIANTS.values())  # every variant really changed something
    bpmn, dmn, element = VARIANTS[name]
    before = deployments(app)
    with app.app_context():
        with pytest.raises(ValidationFailed) as exc:
            specs.deploy(PID, {f"{PID}.bpmn": bpmn}, dmn)
        uow.rollback()
    assert exc.value.code == "deploy_invalid"
    assert element in {e["element"] for e in exc.value.details["errors"]}, exc.value.details
    assert deployments(app) == before


@pytest.mark.parametrize("name", ["condition0", "condition1", "timer", "service", "no_form"])
def test_wf08_api_deploy_refuses_with_400_naming_the_element(app: Flask, name: str) -> None:
    pa = admin(app)
    bpmn, _dmn, element = VARIANTS[name]
    before = deployments(app)
    checked = ok(pa.post("/api/processes/validate", json={"process_id": PID, "bpmn_xml": bpmn}))
    assert checked["ok"] is False
    assert element in {e["element"] for e in checked["errors"]}
    body = refused(pa.post("/api/processes/deploy", json={"process_id": PID, "bpmn_xml": bpmn}), 400, "deploy_invalid")
    assert element in {e["element"] for e in body["details"]["errors"]}
    assert deployments(app) == before


def test_wf08_only_the_process_admin_deploys(app: Flask) -> None:
    for role in ("dispatcher", "report_l3", "sys_admin"):
        sess = as_user(app, role)
        refused(sess.post("/api/processes/deploy", json={"process_id": PID, "bpmn_xml": XML}), 403, "forbidden")
    refused(admin(app).post("/api/processes/deploy", json={"process_id": "../etc", "bpmn_xml": XML}), 400)
    refused(admin(app).post("/api/processes/deploy", json={"process_id": "other_flow", "bpmn_xml": XML}), 400)


def test_wf08_shipped_files_deploy_cleanly_and_identical_content_is_the_same_row(app: Flask) -> None:
    with app.app_context():
        assert specs.validate(PID, BPMN, DMN, specs.load_forms(PID, specs.form_names(BPMN))) == []
        first = specs.latest(PID)
        again, created = specs.deploy(PID, BPMN, DMN)
        assert (again.id, created) == (first.id, False)
        first_id, first_hash = first.id, first.content_hash
        uow.commit()
    # Deploying an unchanged diagram is no new version: 200 with the existing one (201 is for a new version).
    body = ok(admin(app).post("/api/processes/deploy", json={"process_id": PID, "bpmn_xml": XML}), 200)
    assert (body["id"], body["version"], body["content_hash"]) == (first_id, 1, first_hash)
    assert deployments(app) == 1
    assert audit_count(app, "process_deployed") == 1


# --- WF-07 -------------------------------------------------------------------------------------------------


def _finish(app: Flask, team: Team, case_id: int) -> None:
    ok(complete(team.l3, team.to_level(case_id, "review_level3").id, APPROVE))
    assert case_of(team.req, case_id)["status"] == "completed"


def test_wf07_running_cases_stay_on_their_version_and_migration_is_explicit(app: Flask) -> None:
    team = Team(app)
    pa = admin(app)
    dispatcher = as_user(app, "dispatcher")
    old = [new_case(team.req)["id"] for _ in range(3)]
    v1 = case_of(team.req, old[0])["deployment"]
    v2_xml = XML.replace('name="审核医生审核"', 'name="审核医生终审"')
    v2 = ok(pa.post("/api/processes/deploy", json={"process_id": PID, "bpmn_xml": v2_xml}), 201)
    assert (v1["version"], v2["version"], v2["latest"]) == (1, 2, True)
    listed = {d["version"]: d for d in ok(pa.get("/api/processes"))}
    assert (listed[1]["running_cases"], listed[1]["latest"]) == (3, False)

    fresh = new_case(team.req)["id"]
    assert case_of(team.req, fresh)["deployment"]["version"] == 2
    refused(dispatcher.post(f"/api/processes/{v2['id']}/migrate", json={"case_ids": [old[2]]}), 403)
    assert ok(pa.post(f"/api/processes/{v2['id']}/migrate", json={"case_ids": [old[2]]})) == {"migrated": 1}
    assert audit_count(app, "cases_migrated") == 1
    assert case_of(team.req, old[2])["deployment"]["id"] == v2["id"]
    assert "migrated" in [h["event"] for h in case_of(dispatcher, old[2])["history"]]  # the central history (UX.md R25)

    titles = {}
    for case_id in (*old, fresh):
        task = team.to_level(case_id, "review_level3")
        titles[case_id] = task.title  # the step's name comes from the case's own version
        ok(complete(team.l3, task.id, APPROVE))
        assert case_of(team.req, case_id)["status"] == "completed"
    assert [titles[c] for c in (*old, fresh)] == ["审核医生审核", "审核医生审核", "审核医生终审", "审核医生终审"]
    assert [case_of(team.req, c)["deployment"]["version"] for c in old] == [1, 1, 2]
    # A closed case is outside the process administrator's migration scope (running cases of the process, issue
    # 11): the same 404 as an unknown id.
    refused(pa.post(f"/api/processes/{v1['id']}/migrate", json={"case_ids": [old[0]]}), 404, "not_found")


# --- incidents ---------------------------------------------------------------------------------------------


def _incidents(app: Flask, case_id: int) -> list[tuple[str, bool]]:
    with app.app_context():
        rows = uow.session().execute(
            select(Incident.task_name, Incident.resolved_at.is_not(None))
            .join(Case, Case.process_instance_id == Incident.process_instance_id)
            .where(Case.id == case_id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_incident_failing_service_task_then_retry_releases_the_report(app: Flask, monkeypatch: Any) -> None:
    team = Team(app)
    dispatcher = as_user(app, "dispatcher")
    case_id = new_case(team.req)["id"]
    l3 = team.to_level(case_id, "review_level3")

    def broken(params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        raise ConnectionError("报告服务器无响应")

    real = service_tasks._HANDLERS["reports.publish"]
    monkeypatch.setitem(service_tasks._HANDLERS, "reports.publish", broken)
    answer = ok(complete(team.l3, l3.id, APPROVE))  # the approving doctor still gets a normal answer
    assert answer["case"]["status"] == "incident"
    assert "报告服务器无响应" in answer["case"]["incident"]
    assert _incidents(app, case_id) == [("publish_report", False)]
    assert report_row(app, case_id).status == "reviewed"
    assert case_of(team.req, case_id)["report"] is None  # not released, so not shown
    failed_again = ok(dispatcher.post(f"/api/cases/{case_id}/retry"))  # still broken: stays an incident
    assert failed_again["status"] == "incident"

    monkeypatch.setitem(service_tasks._HANDLERS, "reports.publish", real)
    refused(team.l3.post(f"/api/cases/{case_id}/retry"), 403)  # retry is the dispatcher's (task.assign)
    detail = ok(dispatcher.post(f"/api/cases/{case_id}/retry"))
    assert (detail["status"], detail["incident"], detail["report"]["status"]) == ("completed", None, "released")
    assert all(resolved for _name, resolved in _incidents(app, case_id))
    assert {e["status"] for e in case_of(team.req, case_id)["exams"]} == {"released"}
    assert audit_count(app, "incident_retried") == 2
    refused(dispatcher.post(f"/api/cases/{case_id}/retry"), 409, "no_incident")


def test_incident_retry_through_the_runner_under_the_case_lock(app: Flask, monkeypatch: Any) -> None:
    from engine.cases import services
    from engine.workflow import runner

    team = Team(app)
    case_id = new_case(team.req)["id"]
    l3 = team.to_level(case_id, "review_level3")
    real = service_tasks._HANDLERS["reports.publish"]
    monkeypatch.setitem(service_tasks._HANDLERS, "reports.publish", lambda p, d: 1 / 0)
    ok(complete(team.l3, l3.id, APPROVE))
    monkeypatch.setitem(service_tasks._HANDLERS, "reports.publish", real)
    with app.app_context():
        with uow.unit_of_work():
            case = services.lock_case(case_id)
            assert case.status == "incident"
            runner.retry_incident(case.process, services.assign)
            services.mirror_status(case)
        case = uow.session().get(Case, case_id)
        assert case is not None
        assert case.status == "completed"
    assert report_row(app, case_id).status == "released"
    assert _incidents(app, case_id) == [("publish_report", True)]
    with app.app_context():
        events = uow.session().execute(select(func.count()).where(AuditEvent.event_type == "task_completed"))
        assert events.scalar_one() == 3
