"""`telerad oauth client add|list|revoke` as a real process against a real database (issue 15; REQ: DSEC-11)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from sqlalchemy import func, select

from api.app import create_app
from api.extensions import db
from engine import config, uow
from engine.audit import AuditEvent
from tests.api.oauth_support import add_probe, bearer, client_token

ROOT = Path(__file__).resolve().parents[2]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TELERAD_")} | env
    return subprocess.run(
        [str(ROOT / ".venv/bin/telerad"), *args], env=full, capture_output=True, text=True, timeout=120, check=False
    )


def test_dsec11_cli_adds_lists_and_revokes_a_client(file_database: str, tmp_path: Path) -> None:
    env = {"TELERAD_MODE": "demo", "TELERAD_INSTANCE_DIR": str(tmp_path), "TELERAD_DATABASE_URL": file_database}
    assert run(env, "db", "upgrade").returncode == 0
    added = run(
        env,
        "oauth",
        "client",
        "add",
        "--name",
        "AI 肺结节",
        "--institution",
        "M01",
        "--scopes",
        "dicomweb.read ai.write",
    )
    assert added.returncode == 0, added.stderr
    lines = added.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("client_id=")
    assert lines[1].startswith("client_secret=")
    client_id, secret = lines[0].split("=", 1)[1], lines[1].split("=", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{24}", client_id)
    assert len(secret) >= 43
    listed = run(env, "oauth", "client", "list")
    assert listed.returncode == 0
    assert listed.stdout.split("\t")[:5] == [client_id, "有效", "机密", "M01", "dicomweb.read ai.write"]
    assert secret not in listed.stdout

    bad = run(env, "oauth", "client", "add", "--name", "x", "--institution", "M01", "--scopes", "dicomweb.admin")
    assert bad.returncode == 1
    assert "invalid_scope" in bad.stderr
    assert "client_id=" not in bad.stdout

    app = create_app(config.load_settings(env))
    try:
        add_probe(app)
        web = app.test_client()
        r = client_token(web, client_id, secret)
        assert r.status_code == 200, r.get_json()
        token = r.get_json()["access_token"]
        assert web.get("/dicomweb/probe/read", headers=bearer(token)).status_code == 200
        revoked = run(env, "oauth", "client", "revoke", client_id)
        assert revoked.returncode == 0, revoked.stderr
        r = web.get("/dicomweb/probe/read", headers=bearer(token))
        assert r.status_code == 401
        assert r.get_json()["code"] == "invalid_token"
        assert client_token(web, client_id, secret).status_code == 401
        assert run(env, "oauth", "client", "revoke", client_id).returncode == 1  # already revoked
        assert "已吊销" in run(env, "oauth", "client", "list").stdout
        with app.app_context():
            n = uow.session().execute(
                select(func.count()).where(
                    AuditEvent.event_type.in_(("oauth_client_created", "oauth_client_revoked")),
                    AuditEvent.username == "cli",
                    AuditEvent.object_id == client_id,
                )
            )
            assert n.scalar_one() == 2
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
