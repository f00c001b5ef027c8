"""Test fixtures: a freshly migrated database per test, on SQLite or PostgreSQL (TELERAD_TEST_DB).

`make test` runs every test on SQLite and, on PostgreSQL, the tests under POSTGRESQL_PATHS (marked `postgresql`
here); `make test-all-db` and `make test-long` run every test on both. PostgreSQL is mandatory when CI=true;
elsewhere the PostgreSQL run is skipped with a message if 127.0.0.1:5432 does not answer.

`make` runs pytest with two xdist workers (`-n 2 --dist loadgroup`): the tests under SERIAL_TESTS (or marked
`serial`) share the xdist group "serial", so they run one at a time on one worker; the browser tests share the
group "e2e" (one Chromium). Each worker makes its own template database.

Two kinds of isolation (issue 13; CONTRIBUTING.md "Tests"). The tests under SAVEPOINT_PATHS (marked `savepoint` here)
share one app and one copy of the template per xdist worker, and each runs inside a transaction on one connection that
is rolled back at its end: every session the app opens joins it with a savepoint (join_transaction_mode
"create_savepoint"), so a unit of work's commit releases a savepoint and nothing reaches the database. Every other
test, and those under COPIED_DB_TESTS or marked `copied_db`, gets its own copy of the template and its own app: it may
commit, use threads or a second connection, and start processes.
"""

from __future__ import annotations

import copy
import itertools
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import NullPool

from engine import config

BACKEND = os.environ.get("TELERAD_TEST_DB", "sqlite")
PG_HOST = os.environ.get("TELERAD_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TELERAD_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TELERAD_TEST_PG_USER", "postgres")
PG_ADMIN_URL = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789abcdef"
_counter = itertools.count()
TESTS = Path(__file__).resolve().parent

# Where the SQL dialect or locking matters (issue 13): `make test` runs these on PostgreSQL as well as on SQLite,
# everything else on SQLite only. Paths relative to tests/, a directory ending in "/". The one place to change.
POSTGRESQL_PATHS = (
    "integration/",  # migrations, audit chain (advisory lock), pool liveness, restart/timer recovery
    "processes/",  # the whole BPMN flow: case row locks (FOR UPDATE), timer upserts
    "dicom/test_store.py",  # ingest INSERT … ON CONFLICT … RETURNING, a dropped server connection
    "dicom/test_find.py",  # lower()/LIKE matching, PN wildcards, date ranges
    "dicom/test_qr.py",
    "dicom/test_worklist_mpps.py",
    "dicom/test_matching.py",
    "dicom/test_ingest_events.py",  # the outbox under concurrent workers: FOR UPDATE SKIP LOCKED, conditional UPDATE
    "dicom/test_ingest_correlation.py",  # images_received delivered once by racing workers (process instance locks)
    "dicom/test_forwarding.py",  # forward-job upsert and RETURNING
    "dicom/test_routing.py",
    "api/test_tasks_concurrency.py",  # claims and completions under real threads (row locks)
    "api/test_cases_flow.py",  # report lock with fencing token, rollbacks
    "api/test_access_control.py",  # visibility SQL
    "api/test_cases_access.py",
    "api/test_case_chips.py",  # the chip counts' GROUP BY and FILTER, day windows on timestamptz
    "api/test_roles_users.py",  # username prefix range under COLLATE "C"
    "api/test_id_bounds.py",  # 32-bit integer keys on PostgreSQL
    "api/test_login_throttle.py",  # concurrent attempts against one ceiling
    "api/test_imaging_routing.py",  # forward jobs and rules
    "api/test_settings.py",  # JSON values and defaults resolution by role and institution
    "api/test_notifications.py",  # savepoints around audit subscribers, conditional UPDATE of the acknowledgement
    "api/test_pinyin_search.py",  # 拼音首字母 prefix as an index range under PostgreSQL's collation; migration 0012
    "api/test_oauth_token.py",  # client lockout rows written after the rollback; tokens stored hashed (migration 0014)
    "api/test_oauth_pkce.py",  # authorization codes single-use through a conditional UPDATE (migration 0016)
    "api/test_oauth_code_reuse_cors.py",  # two exchanges of one code at once; revocation after the rollback
    "viewer/",  # viewer documents: conditional UPDATE on the version, JSON columns, the receive path (migration 0017)
    "templates/",  # report templates: key ranges under the "C" collation, upserts, conditional UPDATE (migration 0019)
    "api/test_turnaround.py",  # overdue-first ORDER BY over a correlated EXISTS, timezone-aware due times (0020)
)

# Tests that start telerad (or redis, strace) as another process, kill processes (PostgreSQL server processes too)
# or assert on wall-clock time run one at a time, in the xdist group "serial" (a module path, or a test's node id
# without parameters). Running dcmtk or a storage peer as a client process is not on this list: each test has
# its own ports and files.
SERIAL_TESTS = (
    "dicom/test_crash.py",  # `telerad dicom` killed at each fault point, then restarted
    "dicom/test_cli.py",  # `telerad dicom --processes N` forks receivers; one is killed
    "integration/test_restart_safety.py",  # worker processes killed mid-flow; timers fire on the clock
    "integration/test_process_timer_restart.py",  # the server killed, two workers fire a query's timer on the clock
    "integration/test_durable_commits.py",  # strace attached to the receiver
    "integration/test_pool_liveness.py",  # PostgreSQL server processes terminated under the pool; idle-time pings
    "dicom/test_store.py::test_dsec05_store_survives_the_server_dropping_the_receivers_connection",  # same, mid-series
    "api/test_tasks_concurrency.py::test_wf01_claims_through_two_server_processes_one_winner",
    "api/test_login_throttle.py::test_auth04_ceilings_are_shared_by_web_processes_through_redis",
    "api/test_web_hygiene.py::test_web03_injection_payloads_in_every_list_parameter",  # slowest response bound
    "dicom/test_bad_input.py::test_c1_pdu_length_larger_than_sent_times_out",
    "dicom/test_bad_input.py::test_c1_dsec07_slowloris_trickle_dropped_while_legitimate_association_succeeds",
    "dicom/test_security.py::test_dsec07_idle_connections_dropped_after_acse_timeout",
    "dicom/test_tls.py::test_cry02_silent_peer_on_tls_port_does_not_block_other_hospitals",
    "dicom/test_association_drop.py::test_bench_store_keeps_parallel_storescu_running_past_a_full_stderr_pipe",
    "unit/test_ratelimit_storage.py::test_memory_storage_survives_simultaneous_hits_as_its_timer_ends",
)


# One app and database per xdist worker, a rolled-back transaction per test (see the module docstring). Same form
# as the lists above. A test here that needs data committed for another connection, thread or process keeps its
# own database copy: list it in COPIED_DB_TESTS or mark it `@pytest.mark.copied_db`. Done without a list: a test
# that asks for `database_url` itself (or through a fixture of its module), whose module redefines `settings`
# (the app would be built from it), or that uses a fixture in COPIED_DB_FIXTURES.
SAVEPOINT_PATHS = (
    "api/",
    "unit/",
    "processes/",
    "templates/",
)
COPIED_DB_TESTS = (
    "api/test_tasks_concurrency.py",  # claims by real threads and two server processes, each on its own connection
    "api/test_login_throttle.py::test_auth04_ceilings_are_shared_by_web_processes_through_redis",  # web processes
    "api/test_upload_containment.py",  # image workers (sandbox processes), threads, the process's memory
    "api/test_schemathesis.py",  # thousands of generated requests; the copy keeps each run's data to itself
    "api/test_imaging_cli.py",  # `telerad dicom …` as processes against the SCP: read committed rows
    "api/test_role_integrity.py::test_ac02_cli_refuses_central_only_roles_for_a_member_account",  # the CLI process
    "api/test_role_integrity.py::test_ac05_two_admins_disabling_the_last_two_holders_at_once_leave_one",  # threads
    "api/test_access_control.py::test_ac01_a_route_without_a_declaration_is_refused",  # adds a route to its app
    # SQL echo is decided when a connection opens (SQLAlchemy); the shared one opened before caplog raised the levels
    "api/test_sessions.py::test_sess06_session_token_never_in_urls_bodies_or_logs",
)
COPIED_DB_FIXTURES = ("scp",)  # the DICOM SCP serves from its own threads and connections
# TELERAD_TEST_SAVEPOINTS=0: every test gets its own copy (to compare times, or to tell whether a failure is the
# shared app's doing).
SAVEPOINTS = os.environ.get("TELERAD_TEST_SAVEPOINTS", "1") != "0"


def pg_available() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


def pytest_report_header(config: pytest.Config) -> str:
    return f"telerad database backend: {BACKEND}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "savepoint: runs in a rolled-back transaction on the worker's shared app")
    config.addinivalue_line("markers", "copied_db: keeps its own database copy and app (under SAVEPOINT_PATHS)")
    lists = POSTGRESQL_PATHS + SERIAL_TESTS + SAVEPOINT_PATHS + COPIED_DB_TESTS
    missing = [p for p in lists if not (TESTS / p.split("::")[0]).exists()]
    if missing:
        raise pytest.UsageError(f"tests/conftest.py names test paths that do not exist: {missing}")


def _relative(item: pytest.Item) -> str:
    """The item's node id relative to tests/ ("api/test_x.py::test_y[param]")."""
    path = Path(str(item.path)).resolve()
    try:
        rel = path.relative_to(TESTS).as_posix()
    except ValueError:
        return item.nodeid
    return rel + item.nodeid[item.nodeid.index("::") :] if "::" in item.nodeid else rel


def _group(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker("xdist_group")
    return str(mark.args[0]) if mark and mark.args else None


def _matches(rel: str, entry: str) -> bool:
    if entry.endswith("/"):
        return rel.startswith(entry)
    if "::" not in entry:
        return rel == entry or rel.startswith(entry + "::")
    return rel == entry or rel.startswith(entry + "[") or rel.startswith(entry + "::")


@pytest.hookimpl(tryfirst=True)  # before -m selects by these markers and xdist groups by xdist_group
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    modules: dict[str, Any] = {}
    for item in items:
        rel = _relative(item)
        modules.setdefault(rel.split("::")[0], getattr(item, "module", None))
        if any(_matches(rel, p) for p in POSTGRESQL_PATHS):
            item.add_marker(pytest.mark.postgresql)
        if rel.startswith("e2e/"):
            item.add_marker(pytest.mark.xdist_group("e2e"))  # one worker, one Chromium
        if item.get_closest_marker("serial") or any(_matches(rel, e) for e in SERIAL_TESTS):
            item.add_marker(pytest.mark.xdist_group("serial"))
        if SAVEPOINTS and any(_matches(rel, p) for p in SAVEPOINT_PATHS) and not _needs_copy(item, rel):
            item.add_marker(pytest.mark.savepoint)
    # The longest xdist groups first (loadgroup hands out work in collection order): the serial group starts at once
    # on one worker and the browser group on the other, instead of either being the tail of the run.
    first = {"serial": 0, "e2e": 1}
    items.sort(key=lambda item: first.get(_group(item), 2))  # stable: the order within each part is kept
    stale = [
        e
        for e in SERIAL_TESTS + COPIED_DB_TESTS
        if "::" in e
        and modules.get(e.split("::")[0]) is not None
        and not hasattr(modules[e.split("::")[0]], e.split("::")[-1])
    ]
    if stale:
        raise pytest.UsageError(f"tests/conftest.py names tests that do not exist: {stale}")
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


def _needs_copy(item: pytest.Item, rel: str) -> bool:
    """Whether a test under SAVEPOINT_PATHS keeps its own database copy (see SAVEPOINT_PATHS)."""
    if item.get_closest_marker("copied_db") or any(_matches(rel, e) for e in COPIED_DB_TESTS):
        return True
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    if "database_url" in info.argnames or any(f in item.fixturenames for f in COPIED_DB_FIXTURES):  # type: ignore[attr-defined]
        return True
    for name, defs in info.name2fixturedefs.items():
        for fixturedef in defs:
            if getattr(fixturedef.func, "__module__", None) == __name__:
                continue  # this file's chain: database_url → settings → app
            if name == "settings" or "database_url" in fixturedef.argnames:
                return True
    return False


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
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> config.Settings:
    if request.node.get_closest_marker("savepoint"):
        return request.getfixturevalue("_savepoint").settings  # type: ignore[no-any-return]
    return make_settings(request.getfixturevalue("database_url"), tmp_path / "instance")


@pytest.fixture
def app(request: pytest.FixtureRequest, settings: config.Settings):  # type: ignore[no-untyped-def]
    from engine.dicomweb import prebuild

    prebuild.forget()  # the studies a worker watches are this process's: none of another test's database
    if request.node.get_closest_marker("savepoint"):
        yield request.getfixturevalue("_savepoint").app
        return
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


# -- the savepoint isolation (SAVEPOINT_PATHS) ------------------------------------------------------------------------
class _Shared:
    """The worker's app for the tests marked `savepoint`, its database URL and its one Settings object."""

    def __init__(self, app: Any, url: str) -> None:
        self.app = app
        self.url = url
        self.settings: config.Settings = app.extensions["telerad_settings"]


# What an app keeps between requests that a test may change (a hook it registers, a config value): put back after
# each test. Flask refuses new hooks once an app served a request, so that flag is cleared for each test too.
_APP_HOOKS = (
    "before_request_funcs",
    "after_request_funcs",
    "teardown_request_funcs",
    "teardown_appcontext_funcs",
    "url_value_preprocessors",
    "url_default_functions",
    "template_context_processors",
)


def _keep_functions(application: Any, name: str) -> dict[int, Any]:
    """A deepcopy memo that copies the containers of an app's hook registry (dicts, lists) but not the functions."""
    memo: dict[int, Any] = {}
    registry = getattr(application, name)
    for value in registry.values() if isinstance(registry, dict) else [registry]:
        for fn in value:
            memo[id(fn)] = fn
    return memo


def _audit_rows(application: Any) -> int:
    from sqlalchemy import func, select

    from engine import uow
    from engine.audit import AuditEvent

    with application.app_context(), uow.unit_of_work() as s:
        return int(s.execute(select(func.count()).select_from(AuditEvent)).scalar_one())


@pytest.fixture(scope="session")
def _savepoint_app(template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Shared]:
    """One copy of the template and one app for this worker's `savepoint` tests."""
    from api.app import create_app
    from api.extensions import db

    base = tmp_path_factory.mktemp("savepoint")
    if BACKEND == "postgresql":
        name = f"telerad_s_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _pg_admin_exec(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    else:
        shutil.copy(template_db, base / "telerad.db")
        url = f"sqlite:///{base / 'telerad.db'}"
    application = create_app(make_settings(url, base / "instance"))
    factory = db.session.session_factory
    # Acts only on a bind that is a Connection already in a transaction (the copied-db apps bind their engine).
    factory.kw["join_transaction_mode"] = "create_savepoint"
    audited = _audit_rows(application)
    yield _Shared(application, url)
    factory.kw.pop("join_transaction_mode", None)
    leaked = _audit_rows(application) - audited  # every state change is audited: a commit that escaped shows here
    with application.app_context():
        db.session.remove()
        db.engine.dispose()
    if leaked:
        pytest.fail(f"{leaked} audit events reached the savepoint tests' shared database: a test committed for real")
    if BACKEND == "postgresql":
        _pg_admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def _savepoint(_savepoint_app: _Shared, tmp_path: Path) -> Iterator[_Shared]:
    """One test on the worker's app: its own transaction (rolled back), settings, instance directory, rate limits."""
    from api.extensions import db, limiter
    from engine.imaging import routing

    shared = _savepoint_app
    application = shared.app
    # Settings: the app's one object (the request guard holds it) set back to fresh ones, with this test's instance.
    fresh = make_settings(shared.url, tmp_path / "instance")
    vars(shared.settings).clear()
    vars(shared.settings).update(vars(fresh))
    shared.settings.instance_dir.mkdir(parents=True, exist_ok=True)
    shared.settings.storage_dir.mkdir(parents=True, exist_ok=True)
    config.set_current(shared.settings)  # another app built on this worker since (a copied-db test) installed its own
    # Rate limits: a fresh in-process storage and this app's limits (init_app adds no hooks a second time).
    limiter.init_app(application)
    routing.CACHE.__init__(routing.CACHE.ttl_s)  # type: ignore[misc]  # routing rules cached per database URL
    hooks = {name: copy.deepcopy(getattr(application, name), _keep_functions(application, name)) for name in _APP_HOOKS}
    app_config = dict(application.config)
    routes = len(application.view_functions)
    application._got_first_request = False

    with application.app_context():
        engines = db._app_engines[application]  # Flask-SQLAlchemy's engines of this app; db.engines reads these
        engine = engines[None]
        conn = engine.connect()
        outer = conn.begin()  # SQLite: BEGIN IMMEDIATE (engine.db.tune_engine); the sessions' SAVEPOINTs nest in it
        engines[None] = conn
    owner = threading.get_ident()

    def _one_thread(*_args: Any) -> None:
        if threading.get_ident() != owner:  # a second thread on one connection: interleaved, not concurrent, SQL
            raise RuntimeError("a savepoint test reached the database from a thread: list it in COPIED_DB_TESTS")

    event.listen(conn, "before_cursor_execute", _one_thread)
    try:
        yield shared
    finally:
        with application.app_context():
            db.session.remove()
        engines[None] = engine
        ended = not outer.is_active  # committed (or rolled back) the outer transaction: its writes may have stayed
        if outer.is_active:
            outer.rollback()
        conn.close()
        for name, saved in hooks.items():
            setattr(application, name, saved)
        application.config.clear()
        application.config.update(app_config)
    if ended:
        pytest.fail("this test ended the shared connection's transaction: list it in COPIED_DB_TESTS")
    if len(application.view_functions) != routes:  # werkzeug cannot take a rule back out of a Map
        pytest.fail("this test added a route to the shared app: list it in COPIED_DB_TESTS (tests/conftest.py)")
