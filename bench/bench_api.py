"""API benchmark: login and list latency through waitress + HTTP with 100,000 users; prints one JSON object.

Run with `make bench` (or `.venv/bin/python bench/bench_api.py [--users N] [--backends sqlite,postgresql]`).
Progress goes to stderr, the figures to stdout. PostgreSQL runs in a temporary database created through the
admin URL (TELERAD_BENCH_PG_ADMIN_URL, default postgres@127.0.0.1:5432) and dropped at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pyotp  # noqa: E402
from sqlalchemy import create_engine, event, insert, select, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402
from waitress.server import create_server  # noqa: E402

from alembic import command  # noqa: E402
from api.app import create_app  # noqa: E402
from api.extensions import db  # noqa: E402
from engine import config, uow  # noqa: E402
from engine.accounts import auth  # noqa: E402
from engine.accounts.models import Department, Institution, Role, User, user_role  # noqa: E402
from engine.accounts.seed import ensure_institutions, sync_catalogue  # noqa: E402
from engine.db import utcnow  # noqa: E402
from telerad.cli import alembic_config  # noqa: E402

PG_ADMIN_URL = os.environ.get("TELERAD_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-secret-key-0123456789abcdef-0123456789abcdef"
USER_PASSWORD = "Bench#Pass2026x"
ADMIN_PASSWORD = "Bench#Admin2026xyz"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国红玉春晓文斌宇浩凯鹏辉婷雪琳"
CLINICAL_ROLES = ("registrar", "requester", "report_l1", "report_l2", "report_l3", "dispatcher", "qc_expert")
SEARCH_TERMS = ("建国", "王丽", "张", "doc0123", "晓")  # name fragments of varied selectivity, and a username prefix


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], p: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[p - 1], 2)


# --- database lifecycle ---------------------------------------------------------------------------


@contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    name = f"telerad_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(app: Any, n_users: int, rng: random.Random) -> dict[str, Any]:
    """50 institutions, a few admins (ORM) and n_users doctors (Core bulk insert, one precomputed hash)."""
    t0 = time.perf_counter()
    with app.app_context():
        with uow.unit_of_work() as s:
            sync_catalogue()
            ensure_institutions()
            central = s.execute(select(Institution).where(Institution.code == "CENTRAL")).unique().scalar_one()
            for k in range(6, 50):  # CENTRAL + M01..M05 exist; 44 more member hospitals
                inst = Institution(code=f"M{k:02d}", name=f"第{k}成员医院", kind="member", parent_id=central.id)
                s.add(inst)
                s.flush()
                for code, name in (("RAD", "放射科"), ("OPD", "门诊部"), ("INFO", "信息科")):
                    s.add(Department(institution_id=inst.id, code=code, name=name))
        s = uow.session()
        insts = {i.code: i.id for i in s.execute(select(Institution)).unique().scalars()}
        deps: dict[int, list[int]] = {}
        for inst_id, dep_id in s.execute(select(Department.institution_id, Department.id)):
            deps.setdefault(inst_id, []).append(dep_id)
        roles = {r.code: r.id for r in s.execute(select(Role).where(Role.builtin.is_(True))).unique().scalars()}
        admins = {
            "central_sec": make_admin("bench_sec", "sec_admin", insts["CENTRAL"]),
            "central_sys": make_admin("bench_sys", "sys_admin", insts["CENTRAL"]),
            "member_sys": make_admin("bench_m01_sys", "sys_admin", insts["M01"]),
        }
        reviewers = [make_admin(f"bench_rev{k}", "sec_admin", insts["CENTRAL"])[0] for k in range(5)]
        pw_hash = auth.hash_password(USER_PASSWORD)  # the real cost, computed once and reused for every row
        inst_ids = sorted(insts.values())
        now = utcnow()
        users, grants, approved = [], [], []
        first_id = 1000
        for i in range(n_users):
            uid = first_id + i
            inst_id = inst_ids[i % len(inst_ids)]
            r = rng.random()
            status = "pending" if r < 0.30 else ("rejected" if r < 0.35 else "approved")
            created = now - timedelta(days=730) + timedelta(seconds=i * 600)  # newer users have larger ids
            given = "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
            users.append(
                {
                    "id": uid,
                    "username": f"doc{i:06d}",
                    "username_norm": f"doc{i:06d}",
                    "full_name": rng.choice(SURNAMES) + given,
                    "institution_id": inst_id,
                    "department_id": rng.choice(deps[inst_id]),
                    "title": "医师",
                    "phone_masked": f"13{i % 10}****{i % 10000:04d}",
                    "password_hash": pw_hash,
                    "password_changed_at": now,
                    "review_status": status,
                    "registration_source": "self",
                    "submitted_at": created,
                    "reviewed_at": None if status == "pending" else created + timedelta(hours=6),
                    "reviewed_by_id": None if status == "pending" else rng.choice(reviewers),
                    "reject_reason": "资料不全" if status == "rejected" else None,
                    "enabled": True,
                    "totp_enabled": False,
                    "failed_logins_since_last": 0,
                    "last_active_at": now,
                    "is_demo": False,
                    "created_at": created,
                }
            )
            if status == "approved":
                approved.append(uid)
                grants.append({"user_id": uid, "role_id": roles[CLINICAL_ROLES[i % len(CLINICAL_ROLES)]]})
        with db.engine.begin() as conn:
            for k in range(0, len(users), 5000):
                conn.execute(insert(User.__table__), users[k : k + 5000])
            for k in range(0, len(grants), 10000):
                conn.execute(insert(user_role), grants[k : k + 10000])
            if conn.dialect.name == "postgresql":  # explicit ids do not advance the sequence
                conn.execute(
                    text("SELECT setval(pg_get_serial_sequence('user_account', 'id'), max(id)) FROM user_account")
                )
        # Steady state: autovacuum runs after a bulk insert (statistics, and the visibility map that lets
        # count(*) use an index-only scan); SQLite only needs the statistics.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE" if conn.dialect.name == "postgresql" else "ANALYZE"))
    log(f"seeded {n_users} users in {len(insts)} institutions in {time.perf_counter() - t0:.1f}s")
    return {"admins": admins, "approved": approved, "institutions": len(insts)}


def make_admin(username: str, role: str, inst_id: int) -> tuple[int, str, str]:
    secret = pyotp.random_base32()
    with uow.unit_of_work() as s:
        user = User(
            username=username,
            username_norm=username,
            full_name=username,
            institution_id=inst_id,
            password_hash=auth.hash_password(ADMIN_PASSWORD),
            review_status="approved",
            registration_source="cli",
            reviewed_at=utcnow(),
            last_active_at=utcnow(),
            totp_secret_enc=auth.cipher().encrypt_str(secret),
            totp_enabled=True,
        )
        user.roles = [s.execute(select(Role).where(Role.code == role, Role.builtin.is_(True))).unique().scalar_one()]
        s.add(user)
        s.flush()
        return user.id, username, secret


# --- HTTP ------------------------------------------------------------------------------------------


class Client:
    """A keep-alive HTTP client with a cookie jar of one site and the session's CSRF token."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if method != "GET" and self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        t0 = time.perf_counter()
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        ms = (time.perf_counter() - t0) * 1000
        for cookie in resp.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if value and "1970" not in cookie:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        parsed = json.loads(raw) if raw and resp.getheader("Content-Type", "").startswith("application/json") else None
        return resp.status, parsed, ms

    def login(self, username: str, password: str, totp_secret: str | None = None) -> float:
        self.cookies.clear()
        self.csrf = ""
        status, body, ms = self.call("POST", "/api/auth/login", {"username": username, "password": password})
        assert status == 200, (status, body)
        self.csrf = body["csrf_token"]
        if body["state"] == "mfa_required":
            assert totp_secret
            status, body, _ = self.call("POST", "/api/auth/mfa", {"code": pyotp.TOTP(totp_secret).now()})
            assert status == 200, (status, body)
            self.csrf = body["csrf_token"]
        assert body["state"] == "active", body
        return ms

    def get(self, path: str, **query: Any) -> tuple[Any, float]:
        status, body, ms = self.call("GET", f"{path}?{urlencode(query)}" if query else path)
        assert status == 200, (status, path, query, body)
        return body, ms


@contextmanager
def serve(app: Any) -> Iterator[int]:
    server = create_server(app, host="127.0.0.1", port=0, threads=8, ident="telerad-bench")
    stopping = threading.Event()

    def run() -> None:
        try:
            server.run()
        except OSError:  # closing the listening socket under select() at shutdown
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield int(server.effective_port)
    finally:
        stopping.set()
        server.task_dispatcher.shutdown()  # let worker threads finish before their wake-up pipe closes
        server.close()
        thread.join(timeout=10)


# --- measurements ----------------------------------------------------------------------------------


def timed(n: int, fn: Any) -> list[float]:
    for _ in range(3):  # warm-up: first-use caches, the session's last_seen update
        fn()
    return [fn() for _ in range(n)]


def run_backend(backend: str, n_users: int, n_requests: int, n_logins: int) -> dict[str, Any]:
    rng = random.Random(20261128)
    with tempfile.TemporaryDirectory(prefix="telerad-bench-") as tmpdir, database(backend, Path(tmpdir)) as url:
        log(f"{backend}: migrating {url.split('@')[-1]}")
        command.upgrade(alembic_config(url), "head")
        env = {
            "TELERAD_MODE": "test",
            "TELERAD_DATABASE_URL": url,
            "TELERAD_SECRET_KEY": SECRET,
            "TELERAD_INSTANCE_DIR": str(Path(tmpdir) / "instance"),
            "TELERAD_LOGIN_IP_LIMIT": "1000000 per minute",
        }
        settings = config.load_settings(env)
        settings.extra["api_rate_limit"] = "1000000 per minute"
        app = create_app(settings)
        data = seed(app, n_users, rng)
        statements = [0]
        with app.app_context():
            engine = db.engine

        def count(*_a: Any) -> None:
            statements[0] += 1

        event.listen(engine, "before_cursor_execute", count)
        try:
            with serve(app) as port:
                out = measure(port, data, rng, n_requests, n_logins, statements)
        finally:
            event.remove(engine, "before_cursor_execute", count)
            with app.app_context():
                db.session.remove()
                engine.dispose()
        out = {"users": n_users, "institutions": data["institutions"], **out}
        log(f"{backend}: {json.dumps(out, ensure_ascii=False)}")
        return out


def measure(
    port: int, data: dict[str, Any], rng: random.Random, n: int, n_logins: int, statements: list[int]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    c = Client(port)
    logins = [c.login(f"doc{uid - 1000:06d}", USER_PASSWORD) for uid in rng.sample(data["approved"], n_logins)]
    out["login_p50_ms"], out["login_p95_ms"] = pct(logins, 50), pct(logins, 95)
    log(f"login p50 {out['login_p50_ms']} ms, p95 {out['login_p95_ms']} ms ({n_logins} logins)")

    clients = {}
    for key, (_uid, username, secret) in data["admins"].items():
        clients[key] = Client(port)
        clients[key].login(username, ADMIN_PASSWORD, secret)

    def review() -> float:
        q = rng.choice(SEARCH_TERMS)
        return clients["central_sec"].get("/api/accounts/reviews", status="pending", q=q)[1]

    def user_list(who: str, search: bool) -> float:
        if search:
            return clients[who].get("/api/users", page=1, q=rng.choice(SEARCH_TERMS))[1]
        return clients[who].get("/api/users", page=rng.randint(1, 50), q="")[1]

    review_ms = timed(n, review)
    browse = timed(n, lambda: user_list("central_sys", False))
    search = timed(n, lambda: user_list("central_sys", True))
    m_browse = timed(n, lambda: user_list("member_sys", False))
    m_search = timed(n, lambda: user_list("member_sys", True))
    out["review_search_p50_ms"], out["review_search_p95_ms"] = pct(review_ms, 50), pct(review_ms, 95)
    out["user_list_p50_ms"], out["user_list_p95_ms"] = pct(browse + search, 50), pct(browse + search, 95)
    out["member_user_list_p95_ms"] = pct(m_browse + m_search, 95)
    out["detail_p95_ms"] = {
        "user_browse": pct(browse, 95),
        "user_search": pct(search, 95),
        "member_browse": pct(m_browse, 95),
        "member_search": pct(m_search, 95),
    }
    out["sql_statements_per_list"] = count_statements(clients, statements)
    return out


def count_statements(clients: dict[str, Client], statements: list[int]) -> dict[str, dict[str, int]]:
    """SQL statements of one list request by page size: a constant count means no N+1 query."""
    probes = {
        # Page 2: on page 1 the newest rows include the reviewers themselves, which hides a lazy load.
        "user_list": ("central_sys", "/api/users", {"page": 2, "q": ""}),
        "member_user_list": ("member_sys", "/api/users", {"page": 2, "q": ""}),
        "review_pending": ("central_sec", "/api/accounts/reviews", {"status": "pending", "page": 2, "q": ""}),
        "review_approved": ("central_sec", "/api/accounts/reviews", {"status": "approved", "page": 2, "q": ""}),
    }
    result: dict[str, dict[str, int]] = {}
    for name, (who, path, query) in probes.items():
        result[name] = {}
        for size in (5, 20, 100):
            clients[who].get(path, **query, page_size=size)  # warm
            before = statements[0]
            body, _ = clients[who].get(path, **query, page_size=size)
            assert len(body["items"]) == size, (name, size, len(body["items"]))  # needs >= 200 matching rows
            result[name][str(size)] = statements[0] - before
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per list scenario")
    parser.add_argument("--logins", type=int, default=40)
    args = parser.parse_args()
    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    result: dict[str, Any] = {}
    for backend in args.backends.split(","):
        result[backend] = run_backend(backend, args.users, args.requests, args.logins)
    s = config.Settings()
    result["argon2"] = {"time_cost": s.argon2_time_cost, "memory_kib": s.argon2_memory_kib}
    # Latency on a shared machine depends on what else runs: record it with the figures.
    result["host"] = {"cpus": os.cpu_count(), "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    log(f"done in {time.perf_counter() - t0:.0f}s")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
