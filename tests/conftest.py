"""Test fixtures: a freshly migrated database per test, on SQLite or PostgreSQL (TELERAD_TEST_DB).

`make test` runs the suite once per database. PostgreSQL is mandatory when CI=true; elsewhere the
PostgreSQL run is skipped with a message if 127.0.0.1:5432 does not answer.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from engine import config

BACKEND = os.environ.get("TELERAD_TEST_DB", "sqlite")
PG_HOST = os.environ.get("TELERAD_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TELERAD_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TELERAD_TEST_PG_USER", "postgres")
PG_ADMIN_URL = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789abcdef"
_counter = itertools.count()


def pg_available() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


def pytest_report_header(config: pytest.Config) -> str:
    return f"telerad database backend: {BACKEND}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("TELERAD_LONG"):
        skip_slow = pytest.mark.skip(reason="长时间检查只在 make test-long 中运行")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip_slow)
    if BACKEND == "postgresql" and not pg_available():
        if os.environ.get("CI") == "true":
            raise pytest.UsageError("CI=true but PostgreSQL at 127.0.0.1:5432 does not answer")
        skip = pytest.mark.skip(reason="PostgreSQL 未运行（127.0.0.1:5432 无响应），跳过 PostgreSQL 测试")
        for item in items:
            item.add_marker(skip)


def _migrate(url: str) -> None:
    from alembic import command
    from telerad.cli import alembic_config

    command.upgrade(alembic_config(url), "head")


def _pg_admin_exec(sql: str) -> None:
    eng = create_engine(PG_ADMIN_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(sql))
    eng.dispose()


def terminate_backends(pids: list[int]) -> None:
    """PostgreSQL: end these server processes, as a database restart or an idle timeout would."""
    for pid in pids:
        _pg_admin_exec(f"SELECT pg_terminate_backend({int(pid)})")


def database_backends(app: Any) -> list[int]:
    """PostgreSQL: every server process connected to the app's database (its pooled connections, an SCP's too)."""
    from engine import uow

    with app.app_context(), uow.unit_of_work():
        pids = uow.session().execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))
        return [int(p) for p in pids.scalars()]


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, seeded database to copy for each test: a file (SQLite) or a template database (PG)."""
    if BACKEND == "postgresql":
        if not pg_available():
            pytest.skip("PostgreSQL 未运行")
        name = f"telerad_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _pg_admin_exec(f'CREATE DATABASE "{name}"')
        url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
        _migrate(url)
        _seed(url, tmp_path_factory.mktemp("tpl"))
        yield name
        _pg_admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        path = tmp_path_factory.mktemp("tpl") / "template.db"
        url = f"sqlite:///{path}"
        _migrate(url)
        _seed(url, path.parent)
        yield str(path)


def _seed(url: str, instance: Path) -> None:
    from api.app import create_app
    from engine import uow
    from engine.accounts.seed import ensure_institutions, sync_catalogue

    app = create_app(make_settings(url, instance))
    with app.app_context():
        with uow.unit_of_work():
            sync_catalogue()
            ensure_institutions()
            from engine.workflow import specs

            specs.deploy_from_files()
        from api.extensions import db

        db.session.remove()
        db.engine.dispose()


def make_settings(url: str, instance: Path, **overrides: object) -> config.Settings:
    env = {
        "TELERAD_MODE": "test",
        "TELERAD_INSTANCE_DIR": str(instance),
        "TELERAD_DATABASE_URL": url,
        "TELERAD_SECRET_KEY": TEST_SECRET,
        "TELERAD_ARGON2_TIME_COST": "1",
        "TELERAD_ARGON2_MEMORY_KIB": "1024",
        "TELERAD_LOGIN_IP_LIMIT": "100000 per minute",
    }
    s = config.load_settings(env)
    s.extra["api_rate_limit"] = "100000 per minute"
    for k, v in overrides.items():
        setattr(s, k, v)
    return s


@pytest.fixture
def database_url(template_db: str, tmp_path: Path) -> Iterator[str]:
    if BACKEND == "postgresql":
        name = f"telerad_t_{os.getpid()}_{next(_counter)}"
        _pg_admin_exec(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
        from api.extensions import db

        try:
            db.session.remove()
        except RuntimeError:
            pass
        _pg_admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        path = tmp_path / "telerad.db"
        shutil.copy(template_db, path)
        yield f"sqlite:///{path}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> config.Settings:
    return make_settings(database_url, tmp_path / "instance")


@pytest.fixture
def app(settings: config.Settings):  # type: ignore[no-untyped-def]
    from api.app import create_app
    from api.extensions import db

    application = create_app(settings)
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()
