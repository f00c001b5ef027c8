"""Account workflow: self-registration with photos, the review queue, approve, reject and resubmit, admin-created
accounts, review filters and literal search (REQ: ACCT-03, ACCT-04, PII-02, PII-04, WEB-03)."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from engine import uow
from engine.audit import AuditEvent
from tests import factories
from tests.factories import (
    VALID_ID_NUMBERS,
    Session,
    anon_csrf,
    as_user,
    image_bytes,
    institution,
    make_user,
    registration_form,
    role_id,
)

PASSWORD = "Reg#Strong2026"
ID_RE = re.compile(r"\b\d{17}[\dXx]\b")
PHONE_RE = re.compile(r"\b1[3-9]\d{9}\b")


@pytest.fixture(autouse=True)
def _no_pii_in_json(app):  # type: ignore[no-untyped-def]
    """PII-02: no full ID number or mobile number in any JSON body this module produces."""
    bodies: list[str] = []

    @app.after_request
    def _keep(resp):  # type: ignore[no-untyped-def]
        if resp.mimetype == "application/json":
            bodies.append(resp.get_data(as_text=True))
        return resp

    yield
    assert bodies
    leaks = [b[:200] for b in bodies if ID_RE.search(b) or PHONE_RE.search(b)]
    assert leaks == []


def _register(client: Any, username: str, inst_id: int, **over: Any) -> dict[str, Any]:
    csrf = anon_csrf(client)
    form = registration_form(username, inst_id, **over)
    r = client.post("/api/registrations", data=form, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.get_json()
    body: dict[str, Any] = r.get_json()
    assert body["review_status"] == "pending"
    return body


def _login(client: Any, username: str, password: str = PASSWORD) -> Any:
    return client.post("/api/auth/login", json={"username": username, "password": password})


def _queue(sec: Session, **params: Any) -> list[dict[str, Any]]:
    r = sec.get("/api/accounts/reviews", query_string=params)
    assert r.status_code == 200, r.get_json()
    return list(r.get_json()["items"])


def _audit(app: Any, event_type: str, object_id: str) -> list[AuditEvent]:
    with app.app_context():
        stmt = select(AuditEvent).where(AuditEvent.event_type == event_type, AuditEvent.object_id == object_id)
        rows = list(uow.session().execute(stmt).scalars())
        for row in rows:
            uow.session().expunge(row)
    return rows


def test_acct04_self_registration_review_and_approval_with_two_roles(app, client):  # type: ignore[no-untyped-def]
    inst = institution(app, "M01")
    uploaded = image_bytes("JPEG", size=(320, 200), color="blue", quality=95)
    reg = _register(client, "wangyi", inst.id, full_name="王一", id_card_photo=(io.BytesIO(uploaded), "id.jpg"))
    assert reg["id_number_masked"] == "110105********002X"
    assert reg["phone_masked"] == "139****5678"

    r = _login(client, "wangyi")
    assert r.status_code == 403
    assert r.get_json()["code"] == "account_pending"

    sec = as_user(app, "sec_admin")
    assert reg["id"] in [i["id"] for i in _queue(sec, status="pending")]
    by_name = _queue(sec, status="pending", q="王一")
    assert [(i["id"], i["source"]) for i in by_name] == [(reg["id"], "self")]
    assert _queue(sec, status="pending", q="王二") == []
    assert _queue(sec, status="approved", q="王一") == []

    detail = sec.get(f"/api/accounts/reviews/{reg['id']}").get_json()
    assert detail["id_number_masked"] == "110105********002X"
    assert VALID_ID_NUMBERS[0] not in str(detail)
    assert sorted(p["kind"] for p in detail["photos"]) == ["id_card", "qualification"]
    assert [h["action"] for h in detail["history"]] == ["账号注册"]

    photo = next(p for p in detail["photos"] if p["kind"] == "id_card")
    resp = sec.get(photo["url"])
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "image/jpeg"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.data != uploaded
    served = Image.open(io.BytesIO(resp.data)).convert("RGB")
    original = Image.open(io.BytesIO(uploaded)).convert("RGB")
    assert served.size == original.size
    # The red "仅用于资质审核" watermark: the plain blue original has no red at all; the served copy does.
    red_served = sum(served.getchannel("R").histogram()[60:])
    red_original = sum(original.getchannel("R").histogram()[60:])
    assert red_original == 0
    assert red_served > served.size[0] * served.size[1] // 50
    viewed = _audit(app, "attachment_viewed", photo["id"])
    assert [(e.user_id, e.outcome) for e in viewed] == [(sec.user.id, "success")]

    roles = [role_id(app, "registrar"), role_id(app, "requester")]  # two roles a member hospital may hold
    r = sec.post(f"/api/accounts/reviews/{reg['id']}/approve", json={"role_ids": roles})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["review_status"] == "approved"
    assert reg["id"] in [i["id"] for i in _queue(sec, status="approved", q="王一")]

    applicant = Session(app.test_client(), factories.TestUser(reg["id"], "wangyi", PASSWORD, "M01", ()))
    me = applicant.get("/api/auth/me").get_json()
    assert sorted(r["code"] for r in me["roles"]) == ["registrar", "requester"]
    assert me["institution"]["code"] == "M01"


def test_acct03_reject_with_reason_then_resubmit_and_approve(app, client):  # type: ignore[no-untyped-def]
    inst = institution(app, "M02")
    reg = _register(client, "liuer", inst.id, full_name="刘二")
    sec = as_user(app, "sec_admin")
    for reason in ("", "   "):
        r = sec.post(f"/api/accounts/reviews/{reg['id']}/reject", json={"reason": reason})
        assert r.status_code == 400
        assert r.get_json()["code"] == "validation_error"
    assert reg["id"] in [i["id"] for i in _queue(sec, status="pending")]
    r = sec.post(f"/api/accounts/reviews/{reg['id']}/reject", json={"reason": "资格证照片模糊"})
    assert r.status_code == 200
    assert r.get_json()["reject_reason"] == "资格证照片模糊"
    assert [i["id"] for i in _queue(sec, status="rejected")] == [reg["id"]]
    assert _queue(sec, status="pending") == []

    r = _login(client, "liuer")
    assert r.status_code == 403
    assert r.get_json()["code"] == "account_rejected"
    assert r.get_json()["details"]["reject_reason"] == "资格证照片模糊"
    status = client.post("/api/registrations/status", json={"username": "liuer", "password": PASSWORD})
    assert status.status_code == 200
    assert status.get_json()["review_status"] == "rejected"
    assert status.get_json()["reject_reason"] == "资格证照片模糊"
    wrong = client.post("/api/registrations/status", json={"username": "liuer", "password": "Wrong#Pass2026"})
    assert wrong.status_code == 401

    old = {p["kind"]: p["id"] for p in sec.get(f"/api/accounts/reviews/{reg['id']}").get_json()["photos"]}
    new_photo = (io.BytesIO(image_bytes("PNG", color="green")), "qual-clear.png")
    form = {"username": "liuer", "password": PASSWORD, "full_name": "刘二", "title": "副主任医师"}
    r = client.post(
        "/api/registrations/resubmit",
        data=dict(form, qualification_photo=new_photo),
        headers={"X-CSRF-Token": anon_csrf(client)},
    )
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["review_status"] == "pending"
    assert r.get_json()["title"] == "副主任医师"

    detail = sec.get(f"/api/accounts/reviews/{reg['id']}").get_json()
    photos = {p["kind"]: p["id"] for p in detail["photos"]}
    assert photos["id_card"] == old["id_card"]
    assert photos["qualification"] != old["qualification"]
    assert sec.get(f"/api/attachments/{old['qualification']}").status_code == 404
    assert [h["action"] for h in detail["history"]] == ["账号注册", "审核拒绝", "重新提交注册"]
    assert detail["history"][1]["reason"] == "资格证照片模糊"

    r = sec.post(f"/api/accounts/reviews/{reg['id']}/approve", json={"role_ids": [role_id(app, "requester")]})
    assert r.status_code == 200
    r = _login(app.test_client(), "liuer")
    assert r.status_code == 200
    assert r.get_json()["state"] == "active"


def test_acct03_admin_created_account_is_reviewed_and_must_change_password(app, client):  # type: ignore[no-untyped-def]
    inst = institution(app, "M01")
    sysadmin = as_user(app, "sys_admin")
    r = sysadmin.post("/api/users", json={"username": "zhaoliu", "full_name": "赵六", "institution_id": inst.id})
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    initial = created["initial_password"]
    assert len(initial) >= 12

    r = _login(client, "zhaoliu", initial)
    assert r.status_code == 403
    assert r.get_json()["code"] == "account_pending"

    sec = as_user(app, "sec_admin")
    item = next(i for i in _queue(sec, status="pending") if i["id"] == created["id"])
    assert item["source"] == "admin"
    r = sec.post(f"/api/accounts/reviews/{created['id']}/approve", json={"role_ids": [role_id(app, "registrar")]})
    assert r.status_code == 200

    r = _login(client, "zhaoliu", initial)
    assert r.status_code == 200
    body = r.get_json()
    assert (body["state"], body["reason"]) == ("password_change_required", "first_login")
    assert client.get("/api/users").status_code == 403  # nothing else until the password is changed
    r = client.post(
        "/api/auth/password",
        json={"old_password": initial, "new_password": "New#Radiology2026"},
        headers={"X-CSRF-Token": body["csrf_token"]},
    )
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["state"] == "active"


def test_acct05_review_filters_and_web03_literal_wildcards(app):  # type: ignore[no-untyped-def]
    for name in ("lit_under", "litxunder", "pct%name", "pctxname", "back\\slash"):
        make_user(app, username=name, review_status="pending", institution_code="M01")
    approved = make_user(app, "report_l1", username="appr_one", institution_code="M01")
    rejected = make_user(app, username="rej_one", review_status="rejected", institution_code="M01")
    sec = as_user(app, "sec_admin")

    def names(**params: Any) -> list[str]:
        return sorted(i["username"] for i in _queue(sec, **params))

    assert names(status="approved", q="appr") == [approved.username]
    assert names(status="rejected") == [rejected.username]
    assert names(status="pending", q="_") == ["lit_under"]
    assert names(status="pending", q="t_u") == ["lit_under"]
    assert names(status="pending", q="%") == ["pct%name"]
    assert names(status="pending", q="t%n") == ["pct%name"]
    assert names(status="pending", q="\\") == ["back\\slash"]
    assert names(status="pending", q="lit") == ["lit_under", "litxunder"]
    r = sec.get("/api/accounts/reviews", query_string={"status": "deleted"})
    assert r.status_code == 400
    assert r.get_json()["code"] == "validation_error"
