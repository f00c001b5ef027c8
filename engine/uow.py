"""Unit of work: one commit per request, job or DICOM event; the session comes from the composition root."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

_provider: Callable[[], Session] | None = None


@dataclass
class _Pending:
    """Work that must survive a rollback: failure audit events, login-failure counters."""

    after_rollback: list[Callable[[Session], object]] = field(default_factory=list)


_pending_key = "telerad_pending"


def configure(provider: Callable[[], Session]) -> None:
    """Install the session provider (Flask-SQLAlchemy's scoped session, bound by api/app.py)."""
    global _provider
    _provider = provider


def session() -> Session:
    """The current unit of work's session.

    Raises:
        RuntimeError: no provider configured (create_app() was not called).
    """
    if _provider is None:
        raise RuntimeError("engine.uow is not configured; build the app with create_app() first")
    return _provider()


def _pending(s: Session) -> _Pending:
    p = s.info.get(_pending_key)
    if p is None:
        p = s.info[_pending_key] = _Pending()
    return p


def after_rollback(fn: Callable[[Session], object]) -> None:
    """Run `fn` in a fresh transaction if the current one rolls back (e.g. a security alert, AC-02)."""
    _pending(session()).after_rollback.append(fn)


def commit() -> None:
    """Commit the boundary's transaction; drops any rollback replays."""
    s = session()
    s.commit()
    s.info.pop(_pending_key, None)


def rollback() -> None:
    """Roll back, then replay the work registered with `after_rollback` and commit it."""
    s = session()
    s.rollback()
    pending = s.info.pop(_pending_key, None)
    if pending and pending.after_rollback:
        try:
            for fn in pending.after_rollback:
                fn(s)
            s.commit()
        except Exception:
            s.rollback()
            raise


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """Boundary for jobs, CLI commands and DICOM events: commit once, or roll back on any error."""
    s = session()
    try:
        yield s
        commit()
    except BaseException:
        rollback()
        raise
