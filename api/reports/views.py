"""/api/reports: the report editor's lock, drafts, revision history and printing, and the correction of a released
report (/api/cases/<id>/correct). The URLs are those the web app has always called; the work is engine/reports."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select

from api.cases.presenters import report_out, revision_out
from api.cases.schemas import ReportSchema, RevisionSchema
from api.reports import schemas as sch
from api.security import current_actor, requires
from engine import audit, uow
from engine.errors import Forbidden, NotFound
from engine.reports import review
from engine.reports import services as reports
from engine.reports.models import ReportRevision

blp = Blueprint("reports", __name__, url_prefix="/api", description="诊断报告：编辑锁、草稿、修改痕迹、打印与更正")


@blp.route("/reports/<int:report_id>/lock", methods=["POST"])
@blp.response(200, sch.LockResultSchema)
@requires("report.write")
def lock_report(report_id: int) -> Any:
    """锁定报告进行编辑（到期自动释放，RPT-14）。"""
    actor = current_actor()
    report = review.get_report(actor, report_id)
    review.level_of(actor, report, take=True)
    token, expires = reports.acquire_lock(actor, report)
    audit.record(actor, "report_locked", object_type="report", object_id=report.id)
    return {"lock_token": token, "expires_at": expires}


@blp.route("/reports/<int:report_id>/unlock", methods=["POST"])
@blp.arguments(sch.LockTokenSchema)
@blp.response(204)
@requires("report.write")
def unlock_report(body: dict[str, Any], report_id: int) -> Any:
    """释放报告编辑锁。"""
    actor = current_actor()
    reports.release_lock(actor, review.get_report(actor, report_id), body["lock_token"])


@blp.route("/reports/<int:report_id>/draft", methods=["PUT"])
@blp.arguments(sch.DraftSchema)
@blp.response(200, RevisionSchema)
@requires("report.write")
def save_draft(body: dict[str, Any], report_id: int) -> Any:
    """保存报告草稿（每次保存都是一个修订）；锁失效时返回 409，内容仍保留为草稿修订。"""
    actor = current_actor()
    report = review.get_report(actor, report_id)
    token = body.pop("lock_token")
    try:
        level = review.level_of(actor, report)
    except Forbidden:
        reports.keep_former_holders_draft(actor, report, body)  # 409 lock_lost with the text kept (WF-04)
        raise
    rev = reports.save_draft(actor, report, token, body, level)
    return revision_out(rev)


@blp.route("/reports/<int:report_id>/revisions", methods=["GET"])
@blp.response(200, RevisionSchema(many=True))
@requires("case.read")
def revisions(report_id: int) -> Any:
    """报告修改痕迹：每次保存的作者、级别、时间与改动（TRACE-01/02）。"""
    actor = current_actor()
    report = review.get_report(actor, report_id)
    if not actor.is_central:  # drafts and 驳回 notes are the central hospital's working (UX.md R25)
        raise NotFound()
    revs = list(
        uow.session()
        .execute(select(ReportRevision).where(ReportRevision.report_id == report.id).order_by(ReportRevision.seq))
        .unique()
        .scalars()
    )
    return [revision_out(x["revision"], x["changes"]) for x in reports.revision_changes(revs)]


@blp.route("/reports/<int:report_id>/print", methods=["POST"])
@blp.response(200, ReportSchema)
@requires("report.print")
def print_report(report_id: int) -> Any:
    """打印已发布的报告（记录打印时间与次数，状态变为已打印）。"""
    actor = current_actor()
    return report_out(review.print_report(actor, review.get_report(actor, report_id).case_id))


@blp.route("/cases/<int:case_id>/correct", methods=["POST"])
@blp.arguments(sch.CorrectSchema)
@blp.response(201, ReportSchema)
@requires("report.write")
def correct(body: dict[str, Any], case_id: int) -> Any:
    """更正已发布的报告：生成新版本重新三级审核，发布后旧版本作废（报告已更正）。"""
    return report_out(review.correct_report(current_actor(), case_id, body["reason"]))
