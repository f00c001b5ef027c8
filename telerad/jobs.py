"""Scheduled jobs run by `telerad worker` (one unit of work + one service call each)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import delete, select, update

from dicom.forward_transport import StoreTransport
from dicom.scu import Options
from engine import audit, config, uow
from engine.accounts import integrity
from engine.accounts.models import User, UserSession
from engine.actor import Actor
from engine.db import utcnow
from engine.imaging import events, forwarding, targets

log = logging.getLogger("telerad.worker")


def sweep_sessions() -> int:
    """Delete sessions past the absolute timeout or idle for longer than the longest idle timeout."""
    s = config.current()
    now = utcnow()
    res = uow.session().execute(
        delete(UserSession).where(
            (UserSession.created_at < now - timedelta(hours=s.absolute_timeout_hours))
            | (UserSession.last_seen_at < now - timedelta(minutes=max(s.idle_timeout_min, s.admin_idle_timeout_min)))
        )
    )
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


def disable_inactive() -> int:
    """AC-07: accounts unused for the configured days are disabled (not deleted) — except the central hospital's
    last holders of role.manage, user.manage or audit.read, which raise a security alert instead (issue 11)."""
    s = config.current()
    cutoff = utcnow() - timedelta(days=s.inactive_disable_days)
    stale = (User.enabled.is_(True), User.review_status == "approved", User.last_active_at < cutoff)
    candidates = set(uow.session().execute(select(User.id).where(*stale)).scalars())
    if not candidates:
        return 0
    spared = integrity.spare_inactive(candidates, s.inactive_disable_days)
    res = uow.session().execute(
        update(User).where(*stale, User.id.not_in(spared)).values(enabled=False, disabled_reason="inactive")
    )
    n = int(res.rowcount or 0)  # type: ignore[attr-defined]
    if n:
        audit.record(Actor.system("worker"), "account_disabled", details={"inactive_accounts": n})
    return n


def purge_audit() -> int:
    return audit.purge(Actor.system("worker"), config.current().audit_retention_days)


def fire_timers() -> int:
    """WF-06: due BPMN timers of any process fire after any restart; each instance in its own unit of work."""
    from engine.cases import clinical_queries as _queries  # noqa: F401 — registers the 临床资料补充 kind
    from engine.cases import services as _cases  # noqa: F401 — registers the remote-diagnosis process kind
    from engine.workflow import instances

    now = utcnow()
    with uow.unit_of_work():
        due = instances.due_timer_instances(now)
    fired = 0
    for pi_id in due:
        try:
            with uow.unit_of_work():
                fired += instances.fire_instance_timers(pi_id, now)
        except Exception:
            log.exception("timer of process instance %s failed", pi_id)
    return fired


def forward_queue() -> int:
    """IMG-08: send due forward jobs, one association per destination batch (state in forward_job)."""
    transport = StoreTransport(Options(calling_aet=config.current().dicom_aet))
    return forwarding.run_forward_queue(transport).sent


def ingest_events() -> int:
    """Issue 12/14: apply the receive service's outbox — the audit event of each received study and the exam match
    of each new one (REQ: IMG-06, DSEC-10) — a unit of work per batch."""
    return events.drain()


def storage_tasks() -> int:
    """IMG-09: advance compare / sync / migrate tasks; then placements chosen by routing rules."""
    return targets.run_storage_tasks() + targets.run_placements()


# name → (function, interval in seconds, manages its own units of work?); fire_timers' interval is the setting
# TELERAD_TIMER_POLL_SECONDS (engine/config.py), this value its default.
JOBS = {
    "sweep_sessions": (sweep_sessions, 300, False),
    "disable_inactive": (disable_inactive, 3600, False),
    "purge_audit": (purge_audit, 86400, False),
    "fire_timers": (fire_timers, 15, True),
    "forward_queue": (forward_queue, 5, True),
    "storage_tasks": (storage_tasks, 10, True),
    "ingest_events": (ingest_events, 2, True),
}


def _runner(app: Any, fn: Any, own_transactions: bool) -> Any:
    def run() -> None:
        with app.app_context():
            try:
                if own_transactions:
                    fn()
                else:
                    with uow.unit_of_work():
                        fn()
            except Exception:
                log.exception("job %s failed", fn.__name__)

    return run


def run_worker(app: Any, block: bool = True) -> Any:
    sched = BlockingScheduler() if block else BackgroundScheduler()
    intervals = {"fire_timers": config.current().timer_poll_seconds}
    for name, (fn, default_seconds, own) in JOBS.items():
        seconds = intervals.get(name, default_seconds)
        sched.add_job(_runner(app, fn, own), "interval", seconds=seconds, id=name, max_instances=1, coalesce=True)
    sched.start()
    return sched
