"""SQLAlchemy 2.x declarative base, naming convention and engine tuning (no Flask import)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Aware UTC now. Every timestamp stored by telerad is UTC (REQ: DAT-06)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC and returns aware UTC (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """The one declarative base; Flask-SQLAlchemy binds it with SQLAlchemy(model_class=Base)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def upsert_insert(dialect_name: str) -> Any:
    """The `insert()` with ON CONFLICT clauses of a dialect: PostgreSQL's, else SQLite's (the two telerad runs on)."""
    return postgresql.insert if dialect_name == "postgresql" else sqlite.insert


def tune_engine(engine: Engine) -> None:
    """SQLite: WAL, foreign keys and BEGIN IMMEDIATE.

    SQLite cannot upgrade a stale read snapshot to a write (SQLITE_BUSY_SNAPSHOT), and the audit hash
    chain reads the last row before inserting. Starting every transaction with BEGIN IMMEDIATE makes
    writers queue on busy_timeout instead of failing; the embedded default serves a few dozen users,
    so serialised transactions are the right trade. PostgreSQL needs none of this.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let us emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
