"""Reporting benchmark (issue 17): template search over HTTP with 5,000 templates; prints one JSON object
`{"sqlite": {...}, "postgresql": {...}}`.

Run with `.venv/bin/python bench/bench_reporting.py [--backends sqlite,postgresql] [--templates N] [--requests N]`.
Progress goes to stderr, the figures to stdout. PostgreSQL runs in a temporary database created through the admin
URL (TELERAD_BENCH_PG_ADMIN_URL, default postgres@127.0.0.1:5432) and dropped at the end (see bench/bench_api.py).

`template_search_p95_ms`: one search as the editor's template panel makes it when the doctor types — the tree
(`GET /api/templates/tree?q=`) and the first page of the list (`GET /api/templates?q=`) with the same term, timed
together on the client through waitress + HTTP, p95 over the searches. The terms mix pinyin initials from the start
and from inside names, full pinyin and Chinese text. The 5,000 templates are the starter library plus generated
public, institution and private ones, inserted in bulk with their search keys (engine/templates/search.py).
Target (issue 17): ≤ 20 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_api import SECRET, Client, database, log, pct, serve  # noqa: E402
from sqlalchemy import insert, select, text  # noqa: E402

from alembic import command  # noqa: E402
from api.app import create_app  # noqa: E402
from api.extensions import db  # noqa: E402
from engine import config, uow  # noqa: E402
from engine.accounts import auth  # noqa: E402
from engine.accounts.models import Institution, Role, User  # noqa: E402
from engine.accounts.seed import ensure_institutions, sync_catalogue  # noqa: E402
from engine.db import utcnow  # noqa: E402
from engine.templates import search  # noqa: E402
from engine.templates.library import seed_library  # noqa: E402
from engine.templates.models import ReportTemplate, ReportTemplateKey  # noqa: E402
from telerad.cli import alembic_config  # noqa: E402

PASSWORD = "Bench#Pass2026x"
PARTS = {
    "CT": ("头颅", "胸部", "上腹部", "盆腔", "颈椎", "腰椎", "鼻窦", "泌尿系", "眼眶", "颞骨", "肾上腺", "胸腹部"),
    "MR": ("头颅", "腰椎", "颈椎", "膝关节", "肩关节", "上腹部", "垂体", "髋关节", "胸椎", "前列腺"),
    "DR": ("胸部", "膝关节", "腰椎", "颈椎", "腕关节", "腹部", "踝关节", "骨盆", "肩关节"),
    "US": ("肝胆脾胰", "甲状腺", "乳腺", "泌尿系", "子宫附件", "颈部血管", "心脏", "阴囊"),
}
FINDINGS = (
    "正常", "炎症", "结节", "囊肿", "占位", "结石", "积液", "骨折", "退行性变", "术后复查", "增强扫描", "肿瘤",
    "出血", "梗死", "钙化", "血管瘤", "脂肪浸润", "椎间盘突出", "韧带损伤", "淋巴结肿大",
)  # fmt: skip
TERMS = ("tl", "xb", "yz", "jzx", "toulu", "xiongbu", "jiejie", "ct", "mrx", "nz", "头颅", "结节", "甲状腺", "gz", "zc")


def _doctor(inst_id: int) -> str:
    with uow.unit_of_work() as s:
        user = User(
            username="benchdoc",
            username_norm="benchdoc",
            full_name="基准医生",
            institution_id=inst_id,
            password_hash=auth.hash_password(PASSWORD),
            review_status="approved",
            registration_source="cli",
            reviewed_at=utcnow(),
            last_active_at=utcnow(),
        )
        user.roles = [
            s.execute(select(Role).where(Role.code == "report_l3", Role.builtin.is_(True))).unique().scalar_one()
        ]
        s.add(user)
        s.flush()
        return str(user.id)


def seed(app: Any, n_templates: int, rng: random.Random) -> None:
    with app.app_context():
        with uow.unit_of_work():
            sync_catalogue()
            ensure_institutions()
            seed_library()
        with uow.unit_of_work() as s:
            central = s.execute(select(Institution.id).where(Institution.kind == "central")).scalars().first()
        doctor_id = int(_doctor(central))
        with uow.unit_of_work() as s:
            have = int(len(s.execute(select(ReportTemplate.id)).all()))
            rows = []
            now = utcnow()
            for i in range(n_templates - have):
                modality = rng.choice(tuple(PARTS))
                part = rng.choice(PARTS[modality])
                finding = rng.choice(FINDINGS)
                scope = rng.choices(("public", "institution", "private"), (6, 3, 1))[0]
                rows.append(
                    {
                        "name": f"{modality}{part}{finding}（{i:04d}）",
                        "name_pinyin": "",
                        "kind": "single",
                        "scope": scope,
                        "category": "normal" if finding == "正常" else "abnormal",
                        "modality": modality,
                        "body_part": part,
                        "exam_method": f"{part}{modality}检查。",
                        "findings": f"{part}见{finding}相关表现，大小约___cm。",
                        "impression": f"{part}{finding}。",
                        "recommendation": "",
                        "positive": "阴性" if finding == "正常" else "阳性",
                        "owner_id": doctor_id if scope == "private" else None,
                        "institution_id": central,
                        "version": 1,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            for row in rows:
                row["name_pinyin"] = search.initials(row["name"])
            s.execute(insert(ReportTemplate), rows)
            keys = []
            for tid, name in s.execute(
                select(ReportTemplate.id, ReportTemplate.name).where(ReportTemplate.library_key.is_(None))
            ):
                keys += [{"key": k, "template_id": tid} for k in search.keys(name)]
            for start in range(0, len(keys), 5000):
                s.execute(insert(ReportTemplateKey), keys[start : start + 5000])
            total = len(s.execute(select(ReportTemplate.id)).all())
        # Steady state: autovacuum analyzes after a bulk insert (without statistics PostgreSQL takes the 5,000
        # templates for one row and nests the loops the wrong way round); SQLite needs the statistics too.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE" if conn.dialect.name == "postgresql" else "ANALYZE"))
        log(f"seeded {total} templates, {len(keys)} generated search keys")


def run_backend(backend: str, n_templates: int, n_requests: int) -> dict[str, Any]:
    rng = random.Random(20261213)
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
        seed(app, n_templates, rng)
        try:
            with serve(app) as port:
                c = Client(port)
                c.login("benchdoc", PASSWORD)

                def one() -> float:
                    q = rng.choice(TERMS)
                    tree, ms_tree = c.get("/api/templates/tree", q=q)
                    page, ms_list = c.get("/api/templates", q=q, page_size=20)
                    assert tree["tree"], q
                    assert page["items"], q
                    return ms_tree + ms_list

                for _ in range(10):  # warm-up
                    one()
                times = [one() for _ in range(n_requests)]
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        out = {"template_search_p95_ms": pct(times, 95)}
        log(f"{backend}: {json.dumps(out)} (p50 {pct(times, 50)} ms over {n_requests} searches)")
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--templates", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=300, help="measured searches (tree + list) per backend")
    args = parser.parse_args()
    result = {b: run_backend(b, args.templates, args.requests) for b in args.backends.split(",")}
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
