"""Walk the remote-diagnosis process through the HTTP API on a real database: every dispatch mode, claim and
release, the three report levels, each 驳回, consultation, batch assignment, the report lock and revisions.

REQ: DISP-01/02/04/05, REC-04/05/06/10, RPT-10/11/14, WF-04, TRACE-01/02. The helpers at the top are shared by
tests/api/test_tasks_concurrency.py, tests/api/test_cases_access.py and tests/integration/test_engine_deploy.py.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from flask import Flask
from sqlalchemy import event, func, select

from engine import uow
from engine.accounts import auth
from engine.accounts.models import Institution, User
from engine.accounts.queries import effective_permissions
from engine.actor import Actor
from engine.cases.models import Case, CaseEvent, DispatchPolicy, WorkGroup, WorkGroupMember
from engine.reports.models import Report, ReportRevision
from engine.workflow.models import HumanTask, WorkflowTimer
from tests.factories import Session, as_user, audit_count

_seq = itertools.count(1)
REPORT = {"findings": "双肺纹理清晰。", "impression": "胸部未见明显异常。", "recommendation": "", "positive": "阴性"}
APPROVE = {**REPORT, "decision": "approve"}


# --- helpers (imported by the other case-engine test files) --------------------------------------------------


def case_body(*, modality: str = "DX", body_part: str = "胸部", emergency: bool = False, **over: Any) -> dict[str, Any]:
    n = next(_seq)
    body: dict[str, Any] = {
        "patient": {"patient_no": f"P{n:05d}", "name": f"患者{n}", "sex": "M", "birth_date": "1970-05-01"},
        "exams": [{"modality": modality, "body_part": body_part, "exam_item": f"{body_part}{modality}平扫"}],
        "emergency": emergency,
        "clinical_info": "咳嗽两周",
    }
    body.update(over)
    return body


def new_case(requester: Session, **kw: Any) -> dict[str, Any]:
    r = requester.post("/api/cases", json=case_body(**kw))
    assert r.status_code == 201, r.get_json()
    return r.get_json()  # type: ignore[no-any-return]


def open_tasks(app: Flask, case_id: int) -> list[HumanTask]:
    with app.app_context():
        s = uow.session()
        rows = list(
            s.execute(select(HumanTask).where(HumanTask.case_id == case_id, HumanTask.completed_at.is_(None))).scalars()
        )
        s.expunge_all()
        return rows


def the_task(app: Flask, case_id: int, name: str | None = None) -> HumanTask:
    (task,) = open_tasks(app, case_id)
    if name is not None:
        assert task.task_name == name, task.task_name
    return task


def task_ids(sess: Session, scope: str, **q: Any) -> list[int]:
    query = "&".join(f"{k}={str(v).lower()}" for k, v in q.items())
    r = sess.get(f"/api/tasks?scope={scope}&page_size=100&{query}")
    assert r.status_code == 200, r.get_json()
    return [t["id"] for t in r.get_json()["items"]]


def complete(sess: Session, task_id: int, data: dict[str, Any], token: int | None = None) -> Any:
    body: dict[str, Any] = {"data": data}
    if token is not None:
        body["lock_token"] = token
    return sess.post(f"/api/tasks/{task_id}/complete", json=body)


def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.get_json()
    return resp.get_json()


def refused(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    body = resp.get_json()
    assert resp.status_code == status, body
    if code is not None:
        assert body["code"] == code, body
    return body  # type: ignore[no-any-return]


def case_of(sess: Session, case_id: int) -> dict[str, Any]:
    return ok(sess.get(f"/api/cases/{case_id}"))  # type: ignore[no-any-return]


def exam_statuses(sess: Session, case_id: int) -> set[str]:
    return {e["status"] for e in case_of(sess, case_id)["exams"]}


def make_group(app: Flask, code: str, *members: Session) -> None:
    with app.app_context():
        s = uow.session()
        group = WorkGroup(code=code, name=f"{code}组")
        s.add(group)
        s.flush()
        for m in members:
            s.add(WorkGroupMember(group_id=group.id, user_id=m.user.id))
        uow.commit()


def add_policy(app: Flask, *, institution_code: str | None = None, **fields: Any) -> None:
    with app.app_context():
        s = uow.session()
        inst_id = None
        if institution_code:
            inst_id = s.execute(select(Institution.id).where(Institution.code == institution_code)).scalar_one()
        s.add(DispatchPolicy(institution_id=inst_id, **fields))
        uow.commit()


def _display_name(app: Flask, user_id: int) -> str:
    with app.app_context():
        user = uow.session().get(User, user_id)
        assert user is not None
        return user.full_name


def actor_of(user_id: int) -> Actor:
    """The Actor of a user as the API would build it (for engine-level tests inside an app context)."""
    user = uow.session().get(User, user_id)
    assert user is not None
    return auth.actor_for(user, Actor.system("test"), permissions=effective_permissions(user))


def report_row(app: Flask, case_id: int) -> Report:
    with app.app_context():
        s = uow.session()
        rep = s.execute(select(Report).where(Report.case_id == case_id)).unique().scalar_one()
        s.expunge_all()
        return rep


def revisions_db(app: Flask, report_id: int) -> list[tuple[int, int, str, bool, str, str, str]]:
    with app.app_context():
        cols = [getattr(ReportRevision, c) for c in ("id", "author_id", "level", "signed", "kind", "content_hash")]
        rows = uow.session().execute(
            select(*cols, ReportRevision.findings)
            .where(ReportRevision.report_id == report_id)
            .order_by(ReportRevision.seq)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


class Team:
    """A requester of a member hospital and one central doctor per report level."""

    def __init__(self, app: Flask, institution_code: str = "M01") -> None:
        self.app = app
        self.req = as_user(app, "requester", institution_code=institution_code)
        self.l1 = as_user(app, "report_l1")
        self.l2 = as_user(app, "report_l2")
        self.l3 = as_user(app, "report_l3")

    def to_level(self, case_id: int, level: str) -> HumanTask:
        """Drive a case to the open task of `level` (draft_report → report_level2 → review_level3)."""
        task = the_task(self.app, case_id, "draft_report")
        if level == "draft_report":
            return task
        ok(self.l1.post(f"/api/tasks/{task.id}/claim"))
        ok(complete(self.l1, task.id, REPORT))
        task = the_task(self.app, case_id, "report_level2")
        if level == "report_level2":
            return task
        ok(complete(self.l2, task.id, APPROVE))
        return the_task(self.app, case_id, "review_level3")


# --- dispatch modes (DISP-01/02) ----------------------------------------------------------------------------


def test_disp01_pool_claim_release_and_claimed_filter(app: Flask) -> None:
    team = Team(app)
    other = as_user(app, "report_l1")
    case = new_case(team.req)
    assert (case["status"], case["dispatch_mode"], case["exams"][0]["status"]) == ("open", "pool", "awaiting")
    task = the_task(app, case["id"], "draft_report")
    assert (task.in_pool, task.assignee_id, task.role_code) == (True, None, "report_l1")
    for doc in (team.l1, other):
        assert task.id in task_ids(doc, "pool")
        assert task.id in task_ids(doc, "pool", claimed=False)
        assert task.id not in task_ids(doc, "pool", claimed=True)
    assert task.id not in task_ids(team.l2, "pool")  # the pool shows only tasks of one's own role

    item = ok(team.l1.post(f"/api/tasks/{task.id}/claim"))
    assert (item["assignee"]["id"], bool(item["claimed_at"])) == (team.l1.user.id, True)
    assert task.id in task_ids(team.l1, "mine")
    assert task.id in task_ids(team.l1, "pool", claimed=True)  # DISP-05: 已领取 / 未领取 filter
    assert task.id not in task_ids(team.l1, "pool", claimed=False)
    assert task.id not in task_ids(other, "pool")  # another doctor's claimed case is not shown to others
    refused(other.post(f"/api/tasks/{task.id}/claim"), 409, "already_claimed")
    refused(other.post(f"/api/tasks/{task.id}/release"), 404)  # not theirs, and no longer visible to them

    item = ok(team.l1.post(f"/api/tasks/{task.id}/release"))  # DISP-04: 取消领取 returns it to the pool
    assert (item["assignee"], item["in_pool"]) == (None, True)
    assert task.id not in task_ids(team.l1, "mine")
    assert task.id in task_ids(other, "pool", claimed=False)
    refused(team.l1.post(f"/api/tasks/{task.id}/release"), 409, "not_holder")
    ok(other.post(f"/api/tasks/{task.id}/claim"))
    assert the_task(app, case["id"]).assignee_id == other.user.id
    events = [h["event"] for h in case_of(other, case["id"])["history"]]  # the central history (UX.md R25)
    assert events == ["created", "claimed", "released_claim", "claimed"]


def test_disp02_rule_row_sends_head_ct_and_mr_to_the_neuro_group(app: Flask) -> None:
    team = Team(app)
    outsider = as_user(app, "report_l1")
    make_group(app, "neuro_group", team.l1)
    for modality in ("CT", "MR"):
        case = new_case(team.req, modality=modality, body_part="头颅")
        assert (case["dispatch_mode"], case["target_group"]) == ("rule", "neuro_group")
        task = the_task(app, case["id"], "draft_report")
        assert (task.group_code, task.in_pool, task.assignee_id) == ("neuro_group", False, None)
        assert task.id in task_ids(team.l1, "group")
        assert task.id not in task_ids(outsider, "group")
        assert task.id not in task_ids(outsider, "pool")
        assert outsider.post(f"/api/tasks/{task.id}/claim").status_code in (403, 404)
        ok(team.l1.post(f"/api/tasks/{task.id}/claim"))
        assert task.id in task_ids(team.l1, "mine")
    body = new_case(team.req, modality="CT", body_part="胸部")  # not 头颅: the default row
    assert the_task(app, body["id"]).in_pool


def test_disp02_rule_group_missing_falls_back_to_the_pool(app: Flask) -> None:
    team = Team(app)
    case = new_case(team.req, modality="CT", body_part="头颅")
    task = the_task(app, case["id"], "draft_report")
    assert (task.in_pool, task.group_code) == (True, None)  # a DMN row naming an unknown group strands nothing


def test_disp01_directed_policy_to_a_doctor_and_to_a_group(app: Flask) -> None:
    team = Team(app, "M02")
    add_policy(app, institution_code="M02", mode="directed", target_user_id=team.l1.user.id)
    case = new_case(team.req)
    assert case["dispatch_mode"] == "directed"
    task = the_task(app, case["id"], "draft_report")
    assert (task.assignee_id, task.in_pool) == (team.l1.user.id, False)
    assert task.id in task_ids(team.l1, "mine")

    member = as_user(app, "report_l1")
    make_group(app, "us_group", member)
    add_policy(app, modality="US", mode="directed", target_group="us_group")
    req3 = as_user(app, "requester", institution_code="M03")
    case = new_case(req3, modality="US", body_part="腹部")
    task = the_task(app, case["id"], "draft_report")
    assert (task.group_code, task.assignee_id) == ("us_group", None)
    assert task.id in task_ids(member, "group")
    assert task.id not in task_ids(team.l1, "group")
    # the most specific policy wins: M02 + US is still the M02 doctor
    case = new_case(team.req, modality="US", body_part="腹部")
    assert the_task(app, case["id"]).assignee_id == team.l1.user.id


def _manual(app: Flask, team: Team, case_id: int) -> None:
    dispatcher = as_user(app, "dispatcher")
    task = the_task(app, case_id, "assign_case")
    assert (task.role_code, task.assignee_id) == ("dispatcher", None)
    assert task.id in task_ids(dispatcher, "group")
    assert complete(team.l1, task.id, {"assignee_id": team.l1.user.id}).status_code == 404  # not a dispatcher
    refused(complete(dispatcher, task.id, {"note": "缺医生"}), 400, "form_invalid")
    ok(complete(dispatcher, task.id, {"assignee_id": team.l1.user.id, "note": "请尽快"}))
    draft = the_task(app, case_id, "draft_report")
    assert draft.assignee_id == team.l1.user.id
    assert draft.id in task_ids(team.l1, "mine")


def test_disp01_manual_row_m05_makes_an_assign_task_for_the_dispatcher(app: Flask) -> None:
    team = Team(app, "M05")
    case = new_case(team.req)
    assert case["dispatch_mode"] == "manual"
    _manual(app, team, case["id"])


def test_disp01_manual_policy(app: Flask) -> None:
    team = Team(app, "M03")
    add_policy(app, institution_code="M03", mode="manual")
    _manual(app, team, new_case(team.req)["id"])


def test_disp02_emergency_row_goes_to_the_emergency_team(app: Flask) -> None:
    team = Team(app)
    make_group(app, "emergency_team", team.l1)
    case = new_case(team.req, emergency=True, modality="CT", body_part="头颅")  # emergency row comes first
    assert (case["dispatch_mode"], case["target_group"], case["emergency"]) == ("directed", "emergency_team", True)
    task = the_task(app, case["id"], "draft_report")
    assert (task.group_code, task.emergency) == ("emergency_team", True)
    assert task.id in task_ids(team.l1, "group", emergency=True)
    assert task.id not in task_ids(team.l1, "group", emergency=False)


def test_rec10_emergency_first_in_task_and_case_lists(app: Flask) -> None:
    team = Team(app)
    routine = [new_case(team.req)["id"] for _ in range(2)]
    urgent = new_case(team.req, emergency=True)["id"]  # no emergency_team group: the pool, but first
    order = [the_task(app, c).id for c in (urgent, *routine)]
    assert task_ids(team.l1, "pool") == order
    assert task_ids(team.l1, "all") == order
    listed = ok(team.req.get("/api/cases"))["items"]
    assert (listed[0]["id"], listed[0]["emergency"]) == (urgent, True)


# --- three levels, release, print (RPT-10, REC-04) ----------------------------------------------------------


def test_rec04_three_levels_release_and_print(app: Flask) -> None:
    team = Team(app)
    case_id = new_case(team.req)["id"]
    draft = the_task(app, case_id, "draft_report")
    ok(team.l1.post(f"/api/tasks/{draft.id}/claim"))
    form = ok(team.l1.get(f"/api/tasks/{draft.id}/form"))
    assert (form["schema"]["additionalProperties"], form["report"]["status"]) == (False, "draft")
    report_id = form["report"]["id"]
    token = ok(team.l1.post(f"/api/reports/{report_id}/lock"))["lock_token"]
    ok(team.l1.put(f"/api/reports/{report_id}/draft", json={"lock_token": token, **REPORT, "findings": "草稿"}))
    refused(team.req.post(f"/api/reports/{report_id}/print"), 409, "not_released")
    ok(complete(team.l1, draft.id, REPORT, token))
    assert exam_statuses(team.req, case_id) == {"preliminary"}
    assert case_of(team.req, case_id)["report"] is None  # the requesting hospital sees nothing before release
    refused(team.req.get(f"/api/reports/{report_id}/revisions"), 404)

    ok(complete(team.l2, the_task(app, case_id, "report_level2").id, {**APPROVE, "impression": "未见异常，随访。"}))
    assert exam_statuses(team.req, case_id) == {"pending_review"}
    assert case_of(team.req, case_id)["report"] is None
    l3 = the_task(app, case_id, "review_level3")
    assert ok(complete(team.l3, l3.id, {**APPROVE, "impression": "未见异常，随访。"}))["case"]["status"] == "completed"
    assert not open_tasks(app, case_id)

    detail = case_of(team.req, case_id)
    report, exams = detail["report"], {e["status"] for e in detail["exams"]}
    assert (report["status"], report["current"]["impression"], exams) == ("released", "未见异常，随访。", {"released"})
    assert detail["printed"] is False
    # The central hospital's history, people by their display names (the requesting hospital's public one:
    # tests/api/test_member_view.py).
    central = case_of(team.l3, case_id)
    name = {s.user.id: _display_name(app, s.user.id) for s in (team.req, team.l1, team.l2, team.l3)}
    history = {(h["event"], h["task_title"], h["actor"]) for h in central["history"]}
    assert history == {
        ("created", None, name[team.req.user.id]),
        ("claimed", "draft_report", name[team.l1.user.id]),
        ("completed", "draft_report", name[team.l1.user.id]),
        ("completed", "report_level2", name[team.l2.user.id]),
        ("completed", "review_level3", name[team.l3.user.id]),
        ("released", None, None),
    }
    assert len(central["history"]) == 6  # created, claimed, three completions, released
    assert all(h["ts"] and h["event_name"] for h in central["history"])
    assert [h["event"] for h in detail["history"]] == [
        "status_awaiting",
        "status_preliminary",
        "status_pending_review",
        "status_reviewed",
        "status_released",
    ]

    printed = ok(team.req.post(f"/api/reports/{report_id}/print"))
    assert (printed["print_count"], bool(printed["printed_at"])) == (1, True)
    assert ok(team.req.post(f"/api/reports/{report_id}/print"))["print_count"] == 2
    detail = case_of(team.req, case_id)
    assert ({e["status"] for e in detail["exams"]}, detail["printed"]) == ({"printed"}, True)
    assert audit_count(app, "report_printed") == 2
    rep = report_row(app, case_id)
    signers = (rep.author_l1_id, rep.author_l2_id, rep.reviewer_l3_id)
    assert signers == (team.l1.user.id, team.l2.user.id, team.l3.user.id)


def test_rpt11_each_rejection_returns_to_its_author_with_the_reason(app: Flask) -> None:
    team = Team(app)
    case_id = new_case(team.req)["id"]
    l2_task = team.to_level(case_id, "report_level2")
    report_id = report_row(app, case_id).id
    refused(complete(team.l2, l2_task.id, {"decision": "reject"}), 400, "form_invalid")
    refused(complete(team.l2, l2_task.id, {"decision": "reject", "reject_reason": "   "}), 400, "form_invalid")
    assert the_task(app, case_id).id == l2_task.id  # a refused 驳回 changed nothing

    ok(complete(team.l2, l2_task.id, {"decision": "reject", "reject_reason": "影像所见描述不全"}))
    back = the_task(app, case_id, "draft_report")
    assert (back.assignee_id, back.id in task_ids(team.l1, "mine")) == (team.l1.user.id, True)
    detail = case_of(team.l1, case_id)
    assert (detail["report"]["status"], detail["exams"][0]["status"]) == ("rejected_l2", "review_rejected")
    (rnd,) = [h for h in detail["history"] if h["event"] == "rejected_round"]
    assert rnd["details"] == {"reason": "影像所见描述不全", "back_to": "draft_report"}
    last = ok(team.l1.get(f"/api/reports/{report_id}/revisions"))[-1]
    assert (last["kind"], last["note"], last["author"]["id"]) == ("reject", "影像所见描述不全", team.l2.user.id)

    ok(complete(team.l1, back.id, {**REPORT, "findings": "补充：双肺门不大。"}))
    again = the_task(app, case_id, "report_level2")
    assert again.assignee_id is None  # nobody signed level 2 yet: open to every 报告医生 but the author
    ok(complete(team.l2, again.id, APPROVE))
    l3_task = the_task(app, case_id, "review_level3")
    ok(complete(team.l3, l3_task.id, {"decision": "reject", "reject_reason": "诊断意见需明确"}))
    back2 = the_task(app, case_id, "report_level2")
    assert back2.assignee_id == team.l2.user.id  # 审核驳回 goes back to the level-2 author
    assert report_row(app, case_id).status == "rejected_l3"
    ok(complete(team.l2, back2.id, {**APPROVE, "impression": "胸部未见明显异常，请结合临床。"}))
    ok(complete(team.l3, the_task(app, case_id, "review_level3").id, APPROVE))
    detail = case_of(team.req, case_id)
    assert (detail["status"], detail["report"]["status"]) == ("completed", "released")
    reasons = [r["note"] for r in ok(team.l1.get(f"/api/reports/{report_id}/revisions")) if r["kind"] == "reject"]
    assert reasons == ["影像所见描述不全", "诊断意见需明确"]


def test_rpt11_illegal_transitions_are_refused(app: Flask) -> None:
    team = Team(app)
    case_id = new_case(team.req)["id"]
    draft = team.to_level(case_id, "draft_report")
    ok(team.l1.post(f"/api/tasks/{draft.id}/claim"))
    ok(complete(team.l1, draft.id, REPORT))
    refused(complete(team.l1, draft.id, REPORT), 409, "task_not_ready")  # completing twice
    refused(team.l1.post(f"/api/tasks/{draft.id}/claim"), 409, "task_not_ready")
    other = as_user(app, "report_l1")
    refused(complete(other, draft.id, REPORT), 409, "task_not_ready")  # a candidate who came too late
    refused(team.req.post(f"/api/reports/{report_row(app, case_id).id}/print"), 409, "not_released")
    assert the_task(app, case_id).task_name == "report_level2"


# --- consultation and batch assignment (REC-05, REC-06) -----------------------------------------------------


def test_rec05_the_holder_hands_the_task_over_for_consultation(app: Flask) -> None:
    team = Team(app)
    colleague = as_user(app, "report_l1")
    task = the_task(app, new_case(team.req)["id"], "draft_report")
    ok(team.l1.post(f"/api/tasks/{task.id}/claim"))
    refused(colleague.post(f"/api/tasks/{task.id}/consult", json={"user_id": colleague.user.id}), 404)
    refused(team.l1.post(f"/api/tasks/{task.id}/consult", json={"user_id": team.l2.user.id}), 400, "not_qualified")
    item = ok(team.l1.post(f"/api/tasks/{task.id}/consult", json={"user_id": colleague.user.id}))
    assert (item["assignee"]["id"], item["in_pool"]) == (colleague.user.id, False)
    assert (task.id in task_ids(colleague, "mine"), task.id in task_ids(team.l1, "mine")) == (True, False)
    assert "consulted" in [h["event"] for h in case_of(colleague, task.case_id)["history"]]
    assert audit_count(app, "task_consulted") == 1
    ok(complete(colleague, task.id, REPORT))
    assert report_row(app, task.case_id).author_l1_id == colleague.user.id


def test_rec06_dispatcher_batch_assigns_to_a_doctor_and_to_a_group(app: Flask) -> None:
    team = Team(app)
    dispatcher = as_user(app, "dispatcher")
    member = as_user(app, "report_l1")
    make_group(app, "chest_group", member)
    ids = [the_task(app, new_case(team.req)["id"]).id for _ in range(4)]
    assert set(ids) <= set(task_ids(dispatcher, "all"))
    refused(team.l1.post("/api/tasks/batch-assign", json={"task_ids": ids, "user_id": team.l1.user.id}), 403)
    refused(dispatcher.post("/api/tasks/batch-assign", json={"task_ids": ids}), 400, "validation_error")
    refused(dispatcher.post("/api/tasks/batch-assign", json={"task_ids": ids, "group_code": "nope"}), 404)
    body = ok(dispatcher.post("/api/tasks/batch-assign", json={"task_ids": ids[:2], "user_id": team.l1.user.id}))
    assert (body, set(ids[:2]) <= set(task_ids(team.l1, "mine"))) == ({"assigned": 2}, True)
    body = ok(dispatcher.post("/api/tasks/batch-assign", json={"task_ids": ids[2:], "group_code": "chest_group"}))
    assert (body, set(ids[2:]) <= set(task_ids(member, "group"))) == ({"assigned": 2}, True)
    assert not set(ids) & set(task_ids(team.l1, "pool") + task_ids(team.l1, "group"))
    assert audit_count(app, "task_assigned") == 4


# --- report lock and revisions (RPT-14, WF-04, TRACE-01/02) -------------------------------------------------


def _draft(sess: Session, report_id: int, token: int, **content: Any) -> Any:
    return sess.put(f"/api/reports/{report_id}/draft", json={"lock_token": token, **content})


def test_wf04_stale_fencing_token_is_refused_and_its_text_kept(app: Flask) -> None:
    team = Team(app)
    dispatcher = as_user(app, "dispatcher")
    b = as_user(app, "report_l1")
    case_id = new_case(team.req)["id"]
    task = the_task(app, case_id, "draft_report")
    ok(team.l1.post(f"/api/tasks/{task.id}/claim"))
    rid = report_row(app, case_id).id
    t1 = ok(team.l1.post(f"/api/reports/{rid}/lock"))["lock_token"]
    ok(_draft(team.l1, rid, t1, findings="A 的第一稿"))
    ok(dispatcher.post(f"/api/tasks/{task.id}/assign", json={"user_id": b.user.id}))  # A walked away
    busy = refused(b.post(f"/api/reports/{rid}/lock"), 409, "report_locked")
    assert busy["details"]["holder"] == f"测试{team.l1.user.username}"
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=16), tick=False):  # A's lease ran out
        t2 = ok(b.post(f"/api/reports/{rid}/lock"))["lock_token"]
        assert t2 == t1 + 1
        ok(_draft(b, rid, t2, findings="B 的内容", impression="B 的诊断"))
        ok(dispatcher.post(f"/api/tasks/{task.id}/assign", json={"user_id": team.l1.user.id}))
        refused(_draft(team.l1, rid, t1, findings="A 离线时写的内容"), 409, "lock_lost")
        kept = ok(team.l1.get(f"/api/reports/{rid}/revisions"))[-1]
        assert (kept["kind"], kept["findings"], kept["author"]["id"]) == ("kept", "A 离线时写的内容", team.l1.user.id)
        current = ok(team.l1.get(f"/api/tasks/{task.id}/form"))["data"]
        assert (current["findings"], current["impression"]) == ("B 的内容", "B 的诊断")  # B's text intact
        refused(complete(team.l1, task.id, REPORT, t1), 409, "lock_lost")
        refused(team.l1.post(f"/api/reports/{rid}/lock"), 409, "report_locked")  # B's lease is live
    assert the_task(app, case_id).task_name == "draft_report"
    assert [r[4] for r in revisions_db(app, rid)] == ["draft", "draft", "kept", "kept"]


def test_wf04_former_holders_autosave_after_reassignment_is_kept_not_lost(app: Flask) -> None:
    """A's task goes to B (改派) while A types: A's next autosave is a 409 lock_lost with A's text kept as a
    revision, never a 403 that drops it; a doctor who never touched the case gets 404 and leaves nothing."""
    team = Team(app)
    dispatcher = as_user(app, "dispatcher")
    b = as_user(app, "report_l1")
    stranger = as_user(app, "report_l1")
    case_id = new_case(team.req)["id"]
    task = the_task(app, case_id, "draft_report")
    ok(team.l1.post(f"/api/tasks/{task.id}/claim"))
    rid = report_row(app, case_id).id
    t1 = ok(team.l1.post(f"/api/reports/{rid}/lock"))["lock_token"]
    ok(_draft(team.l1, rid, t1, findings="A 的第一稿"))
    ok(dispatcher.post(f"/api/tasks/{task.id}/assign", json={"user_id": b.user.id}))
    body = refused(_draft(team.l1, rid, t1, findings="A 改派后仍在写"), 409, "lock_lost")
    assert "草稿" in body["message"]
    refused(_draft(stranger, rid, 1, findings="无关的人"), 404)  # not their case: invisible, nothing kept
    assert [r[4] for r in revisions_db(app, rid)] == ["draft", "kept"]
    kept = ok(b.get(f"/api/reports/{rid}/revisions"))
    assert [(k["kind"], k["findings"]) for k in kept] == [("draft", "A 的第一稿"), ("kept", "A 改派后仍在写")]
    assert {k["author"]["id"] for k in kept} == {team.l1.user.id}


def test_rpt14_saving_renews_the_lease_and_it_expires_after_15_idle_minutes(app: Flask) -> None:
    team = Team(app)
    case_id = new_case(team.req)["id"]
    task = the_task(app, case_id)
    ok(team.l1.post(f"/api/tasks/{task.id}/claim"))
    rid = report_row(app, case_id).id
    start = datetime.now(UTC)
    token = ok(team.l1.post(f"/api/reports/{rid}/lock"))["lock_token"]
    for minutes in (10, 20, 34):  # each save is a heartbeat: 34 minutes after locking the lease still holds
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            ok(_draft(team.l1, rid, token, findings=f"第 {minutes} 分钟"))
    with time_machine.travel(start + timedelta(minutes=50), tick=False):  # 16 idle minutes: the lease is gone
        refused(_draft(team.l1, rid, token, findings="超时后"), 409, "lock_lost")
        assert ok(team.l1.post(f"/api/reports/{rid}/lock"))["lock_token"] == token + 1
    assert [r[4] for r in revisions_db(app, rid)] == ["draft", "draft", "draft", "kept"]


def test_trace01_every_save_is_a_revision_and_signed_ones_never_change(app: Flask) -> None:
    team = Team(app)
    case_id = new_case(team.req)["id"]
    task = the_task(app, case_id)
    ok(team.l1.post(f"/api/tasks/{task.id}/claim"))
    rid = report_row(app, case_id).id
    token = ok(team.l1.post(f"/api/reports/{rid}/lock"))["lock_token"]
    ok(_draft(team.l1, rid, token, findings="第一稿"))
    ok(_draft(team.l1, rid, token, findings="第二稿", impression="待定"))
    ok(complete(team.l1, task.id, REPORT, token))
    after_l1 = revisions_db(app, rid)
    ok(complete(team.l2, the_task(app, case_id).id, {**APPROVE, "impression": "胸部未见异常；建议复查。"}))
    ok(complete(team.l3, the_task(app, case_id).id, {**APPROVE, "impression": "胸部未见异常；建议复查。"}))
    revs = ok(team.l3.get(f"/api/reports/{rid}/revisions"))
    assert [(r["kind"], r["level"], r["signed"]) for r in revs] == [
        ("draft", "l1", False),
        ("draft", "l1", False),
        ("submit", "l1", True),
        ("approve", "l2", True),
        ("approve", "l3", True),
    ]
    assert [r["author"]["id"] for r in revs] == [team.l1.user.id] * 3 + [team.l2.user.id, team.l3.user.id]
    assert [(r["seq"], bool(r["created_at"])) for r in revs] == [(n, True) for n in range(1, 6)]
    changed = [["findings"], ["findings", "impression"], ["findings", "impression", "positive"], ["impression"], []]
    assert [sorted(c["field"] for c in r["changes"]) for r in revs] == changed
    assert revs[3]["changes"] == [
        {"field": "impression", "before": REPORT["impression"], "after": "胸部未见异常；建议复查。"}
    ]
    assert revisions_db(app, rid)[: len(after_l1)] == after_l1  # nothing written earlier was modified


# --- 200 rollbacks stay flat (RPT-11) -----------------------------------------------------------------------


@contextmanager
def counting(s: Any) -> Iterator[list[int]]:
    """Count the SQL statements sent on the session's engine inside the block."""
    n = [0]
    engine = s.get_bind()

    def bump(*_a: Any) -> None:
        n[0] += 1

    event.listen(engine, "before_cursor_execute", bump)
    try:
        yield n
    finally:
        event.remove(engine, "before_cursor_execute", bump)


def test_rpt11_200_rollbacks_keep_state_size_and_task_rows_flat(app: Flask) -> None:
    from engine.cases import completion

    team = Team(app)
    case_id = new_case(team.req)["id"]
    with app.app_context():
        s = uow.session()
        l1, l2 = actor_of(team.l1.user.id), actor_of(team.l2.user.id)

        def step(actor: Actor, data: dict[str, Any]) -> None:
            with uow.unit_of_work():
                (task,) = s.execute(
                    select(HumanTask).where(HumanTask.case_id == case_id, HumanTask.completed_at.is_(None))
                ).scalars()
                completion.complete_task(actor, task.id, data)
            s.expire_all()

        def count(model: Any, *where: Any) -> int:
            return int(s.execute(select(func.count()).select_from(model).where(*where)).scalar_one())

        sizes, statements = [], []
        base_rows = count(HumanTask, HumanTask.case_id == case_id)
        for i in range(200):
            with counting(s) as n:
                step(l1, {**REPORT, "findings": f"第 {i} 稿"})
                step(l2, {"decision": "reject", "reject_reason": f"第 {i} 次驳回"})
            statements.append(n[0])
            case = s.get(Case, case_id)
            assert case is not None
            assert case.status == "open"
            sizes.append(len(json.dumps(case.process.state).encode()))
            assert count(HumanTask, HumanTask.case_id == case_id, HumanTask.completed_at.is_(None)) == 1
            assert count(HumanTask, HumanTask.case_id == case_id) == base_rows + 2 * (i + 1)
            of_case = WorkflowTimer.process_instance_id == case.process_instance_id
            assert count(WorkflowTimer, of_case, WorkflowTimer.fired_at.is_(None)) <= 1
        rid = s.execute(select(Report.id).where(Report.case_id == case_id)).scalar_one()
        assert count(ReportRevision, ReportRevision.report_id == rid) == 400  # no lost revision
        assert count(CaseEvent, CaseEvent.case_id == case_id, CaseEvent.event == "rejected_round") == 200
    assert max(sizes) - sizes[0] <= 256, (sizes[0], max(sizes))  # bytes, not time
    assert max(statements[-20:]) <= max(statements[1:21]), statements  # SQL statements per round, not time
