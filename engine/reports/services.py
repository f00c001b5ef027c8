"""Report lock (lease with fencing token), revisions and signing (REQ: RPT-08/14, TRACE-01/02, WF-04, DAT-05)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from engine import audit, uow
from engine.actor import Actor
from engine.db import utcnow
from engine.errors import Conflict, ValidationFailed
from engine.reports.models import REPORT_FIELDS, Report, ReportRevision

LOCK_MINUTES = 15  # RPT-14: auto-release after this many minutes without a heartbeat (save or lock renew)
MAX_TEXT = 20_000


def clean_content(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in REPORT_FIELDS:
        v = data.get(k)
        if k == "positive":
            out[k] = v if v in ("阴性", "阳性") else None
        else:
            text = (v or "").replace("\r\n", "\n")
            if len(text) > MAX_TEXT:
                raise ValidationFailed("report_too_long", f"报告内容过长（每栏不超过 {MAX_TEXT} 字）")
            out[k] = text
    return out


def _hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def add_revision(
    report: Report,
    actor: Actor,
    level: str,
    content: dict[str, Any],
    *,
    signed: bool,
    kind: str,
    note: str | None = None,
) -> ReportRevision:
    """Append one revision (never updates an existing one). Signed revisions become the current text."""
    s = uow.session()
    seq = (
        s.execute(select(func.max(ReportRevision.seq)).where(ReportRevision.report_id == report.id)).scalar() or 0
    ) + 1
    rev = ReportRevision(
        report_id=report.id,
        seq=seq,
        level=level,
        author_id=actor.user_id,
        signed=signed,
        kind=kind,
        note=note,
        content_hash=_hash(content),
        **content,
    )
    s.add(rev)
    s.flush()
    if signed or kind == "draft":
        report.current_revision_id = rev.id
    return rev


def current_content(report: Report) -> dict[str, Any]:
    cur = report.current
    if cur is None:
        return {k: ("" if k != "positive" else None) for k in REPORT_FIELDS}
    return {k: getattr(cur, k) for k in REPORT_FIELDS}


def acquire_lock(actor: Actor, report: Report) -> tuple[int, Any]:
    """Take (or renew) the edit lock: one conditional UPDATE, so two editors never both hold it.

    Raises:
        Conflict: ``report_locked`` while another user's lease is live.
    """
    now = utcnow()
    expires = now + timedelta(minutes=LOCK_MINUTES)
    s = uow.session()
    res = s.execute(
        update(Report)
        .where(
            Report.id == report.id,
            (Report.lock_holder_id.is_(None))
            | (Report.lock_expires_at < now)
            | (Report.lock_holder_id == actor.user_id),
        )
        .values(lock_holder_id=actor.user_id, lock_token=Report.lock_token + 1, lock_expires_at=expires)
        .execution_options(synchronize_session=False)
    )
    s.refresh(report)
    if res.rowcount != 1:  # type: ignore[attr-defined]
        holder = report.lock_holder.full_name if report.lock_holder else None
        raise Conflict(
            "report_locked",
            f"报告正在被 {holder} 编辑，请稍后再试",
            {"holder": holder, "expires_at": report.lock_expires_at.isoformat() if report.lock_expires_at else None},
        )
    return report.lock_token, report.lock_expires_at


def release_lock(actor: Actor, report: Report, token: int | None = None) -> None:
    s = uow.session()
    stmt = update(Report).where(Report.id == report.id, Report.lock_holder_id == actor.user_id)
    if token is not None:
        stmt = stmt.where(Report.lock_token == token)
    s.execute(stmt.values(lock_holder_id=None, lock_expires_at=None).execution_options(synchronize_session=False))
    s.refresh(report)


def check_lock(actor: Actor, report: Report, token: int | None, content: dict[str, Any] | None, level: str) -> None:
    """The caller must hold a live lease with the current fencing token, or nobody may hold it.

    Raises:
        Conflict: ``report_locked`` (someone else holds it) or ``lock_lost`` (our lease expired or was taken;
            the text is kept as a ``kept`` revision so nothing typed is lost — WF-04).
    """
    now = utcnow()
    live = report.lock_holder_id is not None and report.lock_expires_at is not None and report.lock_expires_at > now
    if token is None:
        if live and report.lock_holder_id != actor.user_id:
            raise Conflict("report_locked", "报告正在被他人编辑，请稍后再试")
        return
    if live and report.lock_holder_id == actor.user_id and report.lock_token == token:
        return
    if content is not None:
        rid = report.id

        def keep(_s: Any) -> None:
            r = uow.session().get(Report, rid)
            assert r is not None
            add_revision(r, actor, level, content, signed=False, kind="kept", note="锁已失效，保留的草稿")

        uow.after_rollback(keep)
    raise Conflict("lock_lost", "编辑锁已失效（超时或被他人接管），您的内容已保存为草稿修订，请刷新后继续")


def keep_former_holders_draft(actor: Actor, report: Report, data: dict[str, Any]) -> None:
    """The task moved to someone else (会诊, 改派) while this doctor was typing: their autosave is refused, but if
    they held this report's lock — or wrote a revision of it — the text is kept as a ``kept`` revision and the
    answer is the same 409 ``lock_lost`` as for an expired lease (WF-04); anyone else gets no revision.

    Raises:
        Conflict: ``lock_lost`` when the text was kept.
    """
    wrote = (
        uow.session()
        .execute(
            select(ReportRevision.level)
            .where(ReportRevision.report_id == report.id, ReportRevision.author_id == actor.user_id)
            .order_by(ReportRevision.seq.desc())
            .limit(1)
        )
        .scalar()
    )
    if wrote is None and report.lock_holder_id != actor.user_id:
        return
    check_lock(actor, report, -1, clean_content(data), wrote or "l1")  # -1 never matches a token: keep and 409


def save_draft(actor: Actor, report: Report, token: int, data: dict[str, Any], level: str) -> ReportRevision:
    """Autosave (Ctrl+S): an unsigned revision under a live lease; renews the lease."""
    content = clean_content(data)
    check_lock(actor, report, token, content, level)
    report.lock_expires_at = utcnow() + timedelta(minutes=LOCK_MINUTES)
    rev = add_revision(report, actor, level, content, signed=False, kind="draft")
    audit.record(actor, "report_saved", object_type="report", object_id=report.id, details={"revision": rev.seq})
    return rev


def revision_changes(revs: list[ReportRevision]) -> list[dict[str, Any]]:
    """Each revision with what changed against the one before (TRACE-02 data; the UI colours it)."""
    out = []
    prev: dict[str, Any] = {k: ("" if k != "positive" else None) for k in REPORT_FIELDS}
    for r in revs:
        now = {k: getattr(r, k) for k in REPORT_FIELDS}
        changes = [{"field": k, "before": prev[k], "after": now[k]} for k in REPORT_FIELDS if prev[k] != now[k]]
        out.append({"revision": r, "changes": changes})
        prev = now
    return out
