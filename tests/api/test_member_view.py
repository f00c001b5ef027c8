"""What the requesting hospital sees of its case (UX.md R25; issue 17): the public milestones named by UX R2's
statuses, the central doctors' display names, the released report — never 驳回 reasons, drafts, task ids, BPMN ids,
usernames or process errors. The central hospital keeps its full history."""

from __future__ import annotations

import json

from flask import Flask

from tests.api.test_cases_flow import APPROVE, REPORT, Team, case_of, complete, new_case, ok, report_row, the_task

INTERNAL_REASON = "内部意见：影像所见描述不全"


def test_r25_member_sees_public_milestones_and_display_names_only(app: Flask) -> None:
    team = Team(app)
    case_id = new_case(team.req)["id"]
    draft = team.to_level(case_id, "report_level2")
    ok(complete(team.l2, draft.id, {"decision": "reject", "reject_reason": INTERNAL_REASON}))
    ok(complete(team.l1, the_task(app, case_id, "draft_report").id, {**REPORT, "findings": "补充：双肺门不大。"}))
    ok(complete(team.l2, the_task(app, case_id, "report_level2").id, APPROVE))

    # While the report is in review the hospital sees where it stands, not who holds which task.
    seen = case_of(team.req, case_id)
    assert [h["event"] for h in seen["history"]] == [
        "status_awaiting",
        "status_preliminary",
        "status_preliminary",
        "status_pending_review",
    ]
    assert seen["current_tasks"] == []
    assert seen["report"] is None  # nothing released yet
    ok(complete(team.l3, the_task(app, case_id, "review_level3").id, APPROVE))
    report_id = report_row(app, case_id).id
    ok(team.req.post(f"/api/reports/{report_id}/print"))

    seen = case_of(team.req, case_id)
    history = seen["history"]
    assert [(h["event"], h["event_name"]) for h in history] == [
        ("status_awaiting", "待诊断"),
        ("status_preliminary", "初步报告"),
        ("status_preliminary", "初步报告"),
        ("status_pending_review", "待审核"),
        ("status_reviewed", "已审核"),
        ("status_released", "已发布"),
        ("status_printed", "已打印"),
    ]
    names = {h["actor"] for h in history} - {None}
    assert names == {_full_name(app, s.user.id) for s in (team.req, team.l1, team.l2, team.l3)}
    text = json.dumps(seen, ensure_ascii=False)
    assert INTERNAL_REASON not in text
    for sess in (team.l1, team.l2, team.l3):
        assert f'"{sess.user.username}"' not in text  # display names only
    assert all(h["task_title"] is None for h in history)  # no BPMN element ids
    assert seen["incident"] is None
    assert seen["report"]["status"] == "released"
    # Drafts and 驳回 revisions are the central hospital's: the hospital cannot list them.
    assert team.req.get(f"/api/reports/{report_id}/revisions").status_code == 404

    # The central hospital keeps its working history, 驳回 reason included.
    central = case_of(team.l3, case_id)
    (rnd,) = [h for h in central["history"] if h["event"] == "rejected_round"]
    assert rnd["details"]["reason"] == INTERNAL_REASON


def _full_name(app: Flask, user_id: int) -> str:
    from engine import uow
    from engine.accounts.models import User

    with app.app_context():
        user = uow.session().get(User, user_id)
        assert user is not None
        return user.full_name
