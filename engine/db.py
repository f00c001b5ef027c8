"""SQLAlchemy 2.x declarative base, naming convention and engine tuning (no Flask import)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator, event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Primary and foreign keys are `integer` on PostgreSQL (32-bit), so an id beyond this names no row on either
# database — and would raise in the driver if it reached a query (issue 11 §3; api.schemas.Id, api.schemas.IdConverter).
ID_MAX = 2**31 - 1


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


# A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out (see ping_when_idle).
IDLE_PING_SECONDS = 1.0


def ping_when_idle(engine: Engine, idle_seconds: float = IDLE_PING_SECONDS) -> None:
    """Check a pooled connection with a ping when it was idle for `idle_seconds` or more; a dead one is replaced.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: one more round trip and ~0.1 ms of CPU in every
    transaction, measured as ~8 % of a C-STORE on PostgreSQL (py-spy, bench/bench_dicom.py small_1). A connection
    goes stale while it sits in the pool (server restart, idle timeout of a firewall or a pooler); one checked in
    moments ago by a busy receiver or API worker is alive. Raising DisconnectionError from a checkout listener
    makes the pool discard the connection and check out another (SQLAlchemy PoolEvents.checkout).
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["telerad_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("telerad_idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return  # new (just connected), or back in the pool moments ago
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as err:
            raise exc.DisconnectionError(f"pooled connection failed its ping: {err}") from err
        if not alive:
            raise exc.DisconnectionError("pooled connection failed its ping")


def tune_engine(engine: Engine) -> None:
    """PostgreSQL: ping connections that sat idle in the pool (`ping_when_idle`). SQLite: WAL, foreign keys and
    BEGIN IMMEDIATE.

    SQLite cannot upgrade a stale read snapshot to a write (SQLITE_BUSY_SNAPSHOT), and the audit hash
    chain reads the last row before inserting. Starting every transaction with BEGIN IMMEDIATE makes
    writers queue on busy_timeout instead of failing; the embedded default serves a few dozen users,
    so serialised transactions are the right trade. PostgreSQL needs none of this.
    """
    if engine.dialect.name != "sqlite":
        ping_when_idle(engine)
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


# -- durable SQLite commits ------------------------------------------------------------------------------------------
DEFER_WAL_SYNC = "telerad_defer_wal_sync"  # Session.info key: the caller syncs the WAL itself (durable_wal_commits)
_written = threading.local()  # .sync: the WAL sync owed by this thread's last commit, set between commit and after


def durable_wal_commits(engine: Engine) -> Callable[[], None] | None:
    """SQLite: a write transaction on `engine` committed through a Session is durable when its commit returns — by
    one fdatasync of the `-wal` file after COMMIT, not during it (`synchronous=FULL`). Returns that sync function;
    None for PostgreSQL (its commit is durable, synchronous_commit on), and for a database given as a URI or in
    memory, whose connections get `synchronous=FULL` instead.

    `synchronous=FULL` syncs the WAL inside COMMIT, while SQLite's write lock (and the DICOM write gate around it,
    dicom/writegate.py) is held: receivers in several processes then wait for each other's flushes one after the
    other (measured: the gate held 1.3–1.6 ms per instance, 0.5 ms of it the sync). Here the connection stays at
    NORMAL — COMMIT writes the transaction's frames to the WAL and releases the lock — and the committing thread then
    fdatasyncs the WAL; several processes' syncs overlap, and one journal flush can carry them all. Equally durable:
    a transaction is in the WAL before the sync starts; a checkpoint that copies it into the database file first syncs
    the WAL, then the database file (SQLite's WAL + NORMAL), and a WAL that was reset or removed meanwhile was
    checkpointed that way. Read-only transactions sync nothing (the connection's total_changes did not move).

    A caller that commits under its own lock sets `Session.info[DEFER_WAL_SYNC]` and calls the returned function
    after releasing it (dicom/groupcommit.py).
    """
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        # No file path to sync (in memory, or a URI whose file this cannot tell): COMMIT syncs, as before.
        @event.listens_for(engine, "connect")
        def _full(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        engine.dispose()
        return None
    wal = os.path.abspath(database) + "-wal"

    def sync_wal() -> None:
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:
            return  # removed by the last connection's close, after a checkpoint that synced the database file
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    @event.listens_for(engine, "connect")
    def _normal(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _count(conn: Any) -> None:
        conn.info["telerad_changes"] = conn.connection.dbapi_connection.total_changes

    @event.listens_for(engine, "commit")
    def _owe(conn: Any) -> None:
        if conn.connection.dbapi_connection.total_changes != conn.info.get("telerad_changes"):
            _written.sync = sync_wal

    if not event.contains(Session, "after_commit", _sync_after_commit):
        event.listen(Session, "after_commit", _sync_after_commit)
    engine.dispose()  # pooled connections opened before the listeners reconnect with them
    return sync_wal


def _sync_after_commit(session: Session) -> None:
    deferred = session.info.pop(DEFER_WAL_SYNC, False)
    sync = getattr(_written, "sync", None)
    _written.sync = None
    if sync is not None and not deferred:
        sync()
