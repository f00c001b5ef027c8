"""Alembic migrations: an empty database migrates to exactly the models' schema, downgrades to base and back."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from alembic import command
from engine.models import metadata
from telerad.cli import alembic_config
from tests.conftest import BACKEND, PG_HOST, PG_PORT, PG_USER, _pg_admin_exec

VERSIONS = Path(__file__).resolve().parents[2] / "alembic" / "versions"
FILE_NAME = re.compile(r"^(\d{8})_(\d{4})_([0-9a-z]+)_([a-z0-9]+(?:_[a-z0-9]+)*)\.py$")


@pytest.fixture
def empty_url(tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all, on the backend under test."""
    if BACKEND == "postgresql":
        name = f"telerad_mig_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _pg_admin_exec(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
        _pg_admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        yield f"sqlite:///{tmp_path / 'empty.db'}"


def schema_diff(url: str) -> list[object]:
    eng = create_engine(url, poolclass=NullPool)
    try:
        with eng.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            return list(compare_metadata(ctx, metadata))
    finally:
        eng.dispose()


def tables(url: str) -> set[str]:
    eng = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(eng).get_table_names())
    finally:
        eng.dispose()


def audit_triggers(url: str) -> set[str]:
    eng = create_engine(url, poolclass=NullPool)
    sql = (
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_event'::regclass AND NOT tgisinternal"
        if BACKEND == "postgresql"
        else "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_event'"
    )
    try:
        with eng.connect() as conn:
            return set(conn.execute(text(sql)).scalars())
    finally:
        eng.dispose()


EXPECTED_TRIGGERS = {
    "postgresql": {"audit_event_guard", "audit_event_no_truncate"},
    "sqlite": {"audit_event_no_update", "audit_event_no_delete"},
}


def test_migrations_upgrade_head_matches_models(empty_url: str) -> None:
    assert tables(empty_url) == set()
    command.upgrade(alembic_config(empty_url), "head")
    assert tables(empty_url) == set(metadata.tables) | {"alembic_version"}
    # Nothing is ignored: the models (types, nullability, indexes, unique and foreign keys) and the migrated
    # schema must agree exactly. Triggers are not part of the models, so they are checked separately below.
    assert schema_diff(empty_url) == []
    assert audit_triggers(empty_url) == EXPECTED_TRIGGERS[BACKEND]


def test_migrations_downgrade_to_base_and_upgrade_again(empty_url: str) -> None:
    cfg = alembic_config(empty_url)
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "base")
    assert tables(empty_url) == {"alembic_version"}
    if BACKEND == "postgresql":
        eng = create_engine(empty_url, poolclass=NullPool)
        with eng.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM pg_proc WHERE proname = 'audit_event_guard'")).scalar() == 0
        eng.dispose()
    command.upgrade(cfg, "head")
    assert schema_diff(empty_url) == []
    assert audit_triggers(empty_url) == EXPECTED_TRIGGERS[BACKEND]


def test_migrations_latest_step_downgrades_and_reapplies(empty_url: str) -> None:
    cfg = alembic_config(empty_url)
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    assert head is not None
    down = script.get_revision(head).down_revision
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "-1")
    eng = create_engine(empty_url, poolclass=NullPool)
    with eng.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    eng.dispose()
    assert current == down
    command.upgrade(cfg, "head")
    assert schema_diff(empty_url) == []


def test_migrations_file_names_and_linear_history() -> None:
    files = sorted(p.name for p in VERSIONS.glob("*.py"))
    assert files, "no migrations found"
    script = ScriptDirectory.from_config(alembic_config())
    revisions = {r.revision: r for r in script.walk_revisions()}
    assert len(script.get_heads()) == 1  # no branches
    seen = set()
    for name in files:
        m = FILE_NAME.match(name)
        assert m, f"{name} does not match YYYYMMDD_HHMM_<rev>_<slug>.py"
        date, hhmm, rev, _slug = m.groups()
        datetime.strptime(date + hhmm + "+0000", "%Y%m%d%H%M%z")  # a real date and time, or ValueError
        assert rev in revisions, f"{name}: revision {rev} is not the file's revision id"
        assert Path(revisions[rev].path).name == name
        seen.add(rev)
    assert seen == set(revisions)
    assert sorted(files) == [Path(revisions[r].path).name for r in reversed(list(revisions))]  # dates follow history
