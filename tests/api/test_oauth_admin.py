"""/api/oauth-clients: the central 系统管理员 registers, lists and revokes OAuth clients (issue 15; REQ: DSEC-11,
AC-01, AUD-01)."""

from __future__ import annotations

from sqlalchemy import select

from engine import uow
from engine.audit import AuditEvent
from tests.api.oauth_support import client_token
from tests.factories import as_user, audit_count


def test_dsec11_admin_creates_lists_and_revokes_a_client_audited(app, client):  # type: ignore[no-untyped-def]
    admin = as_user(app, "sys_admin")
    r = admin.post(
        "/api/oauth-clients",
        json={"name": "AI 肺结节", "institution_code": "M01", "scopes": ["dicomweb.read", "ai.write"]},
    )
    assert r.status_code == 201, r.get_json()
    made = r.get_json()
    client_id, secret = made["client_id"], made["client_secret"]
    assert secret
    assert made["institution_name"] == "第一成员医院"
    assert made["public"] is False
    assert [s["label"] for s in made["scopes"]] == ["读取影像（QIDO-RS / WADO-RS）", "写入AI分析结果"]
    assert client_token(client, client_id, secret).status_code == 200
    listed = admin.get("/api/oauth-clients")
    assert listed.status_code == 200
    rows = listed.get_json()
    assert [c["client_id"] for c in rows] == [client_id]
    assert "client_secret" not in rows[0]
    assert secret not in listed.get_data(as_text=True)
    r = admin.post(f"/api/oauth-clients/{client_id}/revoke")
    assert r.status_code == 200
    assert r.get_json()["revoked_at"]
    assert r.get_json()["revoked_by"] == admin.user.username
    r = admin.post(f"/api/oauth-clients/{client_id}/revoke")
    assert r.status_code == 409
    assert r.get_json()["code"] == "oauth_client_revoked"
    assert admin.post("/api/oauth-clients/nosuchclient0000/revoke").status_code == 404
    with app.app_context():
        events = (
            uow.session()
            .execute(
                select(AuditEvent.event_type, AuditEvent.username, AuditEvent.object_id).where(
                    AuditEvent.event_type.in_(("oauth_client_created", "oauth_client_revoked"))
                )
            )
            .all()
        )
    assert sorted(events) == sorted(
        [
            ("oauth_client_created", admin.user.username, client_id),
            ("oauth_client_revoked", admin.user.username, client_id),
        ]
    )


def test_dsec11_public_viewer_client_needs_https_redirect_uris(app):  # type: ignore[no-untyped-def]
    admin = as_user(app, "sys_admin")
    base = {"name": "OHIF", "institution_code": "CENTRAL", "scopes": ["dicomweb.read"], "public": True}
    r = admin.post("/api/oauth-clients", json=base)
    assert r.status_code == 400
    assert r.get_json()["code"] == "public_client_needs_redirect"
    r = admin.post("/api/oauth-clients", json={**base, "redirect_uris": ["http://viewer.example.org/cb"]})
    assert r.status_code == 400
    assert r.get_json()["code"] == "invalid_redirect_uri"
    cb = "https://viewer.example.org/cb"
    r = admin.post("/api/oauth-clients", json={**base, "redirect_uris": [cb]})
    assert r.status_code == 201
    assert r.get_json()["client_secret"] is None
    assert r.get_json()["public"] is True
    r = admin.post("/api/oauth-clients", json={**base, "scopes": ["dicomweb.admin"]})
    assert r.status_code == 400
    assert "scopes.0" in r.get_json()["details"]["fields"]
    r = admin.post("/api/oauth-clients", json={**base, "institution_code": "NOPE", "redirect_uris": [cb]})
    assert r.status_code == 404
    assert r.get_json()["code"] == "institution_not_found"


def test_ac01_only_the_central_sys_admin_manages_clients(app):  # type: ignore[no-untyped-def]
    for roles, inst, code in (
        (("requester",), "M01", "forbidden"),
        (("report_l1",), "CENTRAL", "forbidden"),
        (("sec_admin",), "CENTRAL", "forbidden"),
        (("sys_admin",), "M01", "central_only"),
    ):
        s = as_user(app, *roles, institution_code=inst)
        r = s.get("/api/oauth-clients")
        assert r.status_code == 403, roles
        assert r.get_json()["code"] == code, roles
        body = {"name": "x", "institution_code": "M01", "scopes": ["dicomweb.read"]}
        assert s.post("/api/oauth-clients", json=body).status_code == 403
    assert audit_count(app, "oauth_client_created") == 0
