"""/api/imaging routing rules (DCM-02, IMG-03, IMG-07), the forward queue (IMG-08), storage targets and
compare / sync / migrate tasks (IMG-09), compression policies (IMG-04): CRUD with validation, audit, access
control, and a rule created through the API applied to the next C-STORE through telerad's SCP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from dicom import scp as scp_mod
from dicom.forward_transport import StoreTransport
from dicom.scu import Options
from engine import uow
from engine.actor import Actor
from engine.imaging import forwarding, routing, targets
from engine.imaging.models import Instance
from engine.imaging.routing_models import ForwardJob
from tests.dicom import synthetic
from tests.dicom.archive import Peer, ingest, small_series
from tests.dicom.conftest import add_node, audit_events, count, dcmtk, rows, scalar, scp  # noqa: F401
from tests.factories import as_user, institution

FAST = forwarding.Settings(batch=50, backoff_base_s=0.2, backoff_max_s=1.0, time_budget_s=20.0, max_attempts=1000)


@pytest.fixture(autouse=True)
def _fresh_rule_cache() -> None:
    routing.CACHE.invalidate()


def _set_port(app: Flask, node_id: int, port: int) -> None:
    with app.app_context(), uow.unit_of_work() as s:
        s.execute(update(forwarding.DicomNode).where(forwarding.DicomNode.id == node_id).values(port=port))


def _jobs(app: Flask) -> list[Any]:
    return rows(app, select(ForwardJob.id, ForwardJob.state, ForwardJob.instance_id).order_by(ForwardJob.id))


# --- routing rules CRUD (DCM-02, IMG-03, IMG-07) ---------------------------------------------------------------
def test_dcm02_img03_rules_crud_in_priority_order_enable_disable_and_audit(app: Flask, tmp_path: Path) -> None:
    admin = as_user(app, "sys_admin")
    src = add_node(app, "MODALITY1")
    dest = add_node(app, "AI", allow="echo")
    _set_port(app, dest, 11999)
    m01 = institution(app, "M01")
    with app.app_context(), uow.unit_of_work():
        archive = targets.create_target(
            Actor.system("test"), code="archive", name="归档", root_path=str(tmp_path / "a")
        ).id
    r = admin.post(
        "/api/imaging/routing/rules",
        json={
            "name": "CT 胸部 → AI",
            "priority": 50,
            "node_ids": [src],
            "institution_ids": [m01.id],
            "modalities": ["ct"],
            "body_parts": ["chest"],
            "sop_classes": [synthetic.CT_IMAGE],
            "study_description_contains": "胸部",
            "storage_target_id": archive,
            "storage_compression": "jpegls",
            "forward_node_ids": [dest],
            "forward_compression": "j2k",
        },
    )
    assert r.status_code == 201, r.get_json()
    first = r.get_json()
    assert (first["modalities"], first["body_parts"], first["enabled"]) == (["CT"], ["CHEST"], True)
    assert (first["storage_target_id"], first["forward_node_ids"], first["forward_compression"]) == (
        archive,
        [dest],
        "j2k",
    )
    second = admin.post("/api/imaging/routing/rules", json={"name": "全部 → 归档", "priority": 10}).get_json()
    listed = admin.get("/api/imaging/routing/rules").get_json()
    assert [x["id"] for x in listed] == [second["id"], first["id"]]  # lower priority number first

    r = admin.patch(f"/api/imaging/routing/rules/{first['id']}", json={"enabled": False, "priority": 5})
    assert (r.status_code, r.get_json()["enabled"]) == (200, False)
    assert [x["id"] for x in admin.get("/api/imaging/routing/rules").get_json()] == [first["id"], second["id"]]
    assert admin.get(f"/api/imaging/routing/rules/{first['id']}").get_json()["priority"] == 5

    assert admin.delete(f"/api/imaging/routing/rules/{second['id']}").status_code == 204
    assert admin.get(f"/api/imaging/routing/rules/{second['id']}").status_code == 404
    events = audit_events(app, "routing_rule_changed")
    assert len(events) == 4
    assert events[-1].details == {"deleted": True}

    policies = admin.get("/api/imaging/compression-policies").get_json()
    assert {"code": "j2k", "name": "JPEG 2000 无损", "lossy": False} in policies
    assert any(p["lossy"] for p in policies)


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"name": ""}, 400, "validation_error", "name"),
        ({"name": "x", "modalities": ["C T"]}, 400, "validation_error", "modalities.0"),
        ({"name": "x", "sop_classes": ["1.2.abc"]}, 400, "validation_error", "sop_classes.0"),
        ({"name": "x", "forward_compression": "zip"}, 400, "validation_error", "forward_compression"),
        ({"name": "x", "forward_node_ids": [999999]}, 400, "invalid_node", "forward_node_ids"),
        ({"name": "x", "node_ids": [999999]}, 400, "invalid_node", "node_ids"),
        ({"name": "x", "forward_node_ids": ["NOPORT"]}, 400, "node_no_port", "forward_node_ids"),
        ({"name": "x", "institution_ids": [999999]}, 400, "invalid_institution", "institution_ids"),
        ({"name": "x", "storage_target_id": 999999}, 400, "invalid_target", "storage_target_id"),
        ({"name": "x", "id": 5}, 400, "validation_error", "id"),
    ],
)
def test_dcm02_rule_validation_answers_chinese_with_machine_codes(
    app: Flask, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    admin = as_user(app, "sys_admin")
    noport = add_node(app, "NOPORT", allow="echo")
    body = {k: ([noport] if v == ["NOPORT"] else v) for k, v in body.items()}
    r = admin.post("/api/imaging/routing/rules", json=body)
    err = r.get_json()
    assert (r.status_code, err["code"]) == (status, code), err
    assert field in err["details"]["fields"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in err["message"] + str(err["details"]["fields"][field]))
    assert count(app, routing.RoutingRule) == 0


def test_ac03_doctors_and_member_admins_cannot_touch_routing_or_storage(app: Flask) -> None:
    doctor = as_user(app, "report_l2")
    for method, url in (
        ("get", "/api/imaging/routing/rules"),
        ("post", "/api/imaging/routing/rules"),
        ("get", "/api/imaging/forward/jobs"),
        ("post", "/api/imaging/forward/jobs/1/retry"),
        ("get", "/api/imaging/storage/targets"),
        ("post", "/api/imaging/storage/tasks"),
    ):
        r = getattr(doctor, method)(url, json={} if method == "post" else None)
        assert (r.status_code, r.get_json()["code"]) == (403, "forbidden"), url
    m01_admin = as_user(app, "sys_admin", institution_code="M01")
    for method, url, body in (
        ("get", "/api/imaging/routing/rules", None),
        ("post", "/api/imaging/routing/rules", {"name": "越权规则"}),
        ("get", "/api/imaging/storage/targets", None),
        ("get", "/api/imaging/storage/tasks", None),
    ):
        r = getattr(m01_admin, method)(url, json=body)
        assert (r.status_code, r.get_json()["code"]) == (403, "central_only"), url
        assert "中心医院" in r.get_json()["message"]
    # ... so their sidebar does not offer those pages; the central administrator's does
    member_menus = m01_admin.get("/api/auth/me").get_json()["menus"]
    assert "menu.dicom_nodes" in member_menus
    assert not {"menu.dicom_routing", "menu.dicom_storage"} & set(member_menus)
    central_menus = as_user(app, "sys_admin").get("/api/auth/me").get_json()["menus"]
    assert {"menu.dicom_routing", "menu.dicom_storage"} <= set(central_menus)
    assert count(app, routing.RoutingRule) == 0


# --- forward queue (IMG-08) ------------------------------------------------------------------------------------
def test_img08_queue_lists_manual_forward_retries_a_failed_job_and_is_scoped_per_hospital(app: Flask) -> None:
    admin = as_user(app, "sys_admin")
    m01_src, m02_src = add_node(app, "MODALITY1"), add_node(app, "MODALITY2", institution="M02")
    dest = add_node(app, "PACS", allow="echo", institution="CENTRAL")
    _set_port(app, dest, 11998)
    m01_ids = ingest(app, m01_src, small_series(3))
    m02_ids = ingest(app, m02_src, small_series(2))
    m01_study = int(scalar(app, select(Instance.study_id).where(Instance.id == m01_ids[0])))
    m02_study = int(scalar(app, select(Instance.study_id).where(Instance.id == m02_ids[0])))
    for study in (m01_study, m02_study):
        r = admin.post(f"/api/imaging/studies/{study}/forward", json={"node_id": dest})
        assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"instances": 2, "queued": 2, "already_sent": 0}
    assert len(audit_events(app, "dicom_forward_requested")) == 2

    page = admin.get("/api/imaging/forward/jobs", query_string={"node_id": dest}).get_json()
    assert (page["total"], page["counts"]) == (5, {"pending": 5, "sending": 0, "done": 0, "failed": 0})
    job = page["items"][0]
    assert (job["state"], job["attempts"], job["node"]["aet"], job["last_error"]) == ("pending", 0, "PACS", "")
    assert all(job[k] for k in ("next_attempt_at", "sop_instance_uid", "study_instance_uid"))

    # AC-02: a member hospital's administrator sees only its own instances' jobs; another's job id is 404.
    m01_admin = as_user(app, "sys_admin", institution_code="M01")
    mine = m01_admin.get("/api/imaging/forward/jobs").get_json()
    assert {j["instance_id"] for j in mine["items"]} == set(m01_ids)
    assert mine["counts"]["pending"] == 3
    m02_job = next(j for j in page["items"] if j["instance_id"] == m02_ids[0])
    with app.app_context(), uow.unit_of_work() as s:
        s.execute(update(ForwardJob).values(state="failed", attempts=30, last_error="目标节点返回状态 0xA700"))
    assert m01_admin.post(f"/api/imaging/forward/jobs/{m02_job['id']}/retry").status_code == 404
    assert len(audit_events(app, "security_alert")) == 1

    failed = admin.get("/api/imaging/forward/jobs", query_string={"state": "failed"}).get_json()
    assert failed["total"] == 5
    assert failed["items"][0]["last_error"] == "目标节点返回状态 0xA700"
    assert failed["items"][0]["next_attempt_at"] is None
    r = admin.post(f"/api/imaging/forward/jobs/{m02_job['id']}/retry")
    assert r.status_code == 200, r.get_json()
    assert (r.get_json()["state"], r.get_json()["attempts"]) == ("pending", 0)
    again = admin.post(f"/api/imaging/forward/jobs/{m02_job['id']}/retry")
    assert (again.status_code, again.get_json()["code"]) == (400, "job_not_failed")
    assert admin.post("/api/imaging/forward/jobs/999999/retry").status_code == 404
    counts = admin.get("/api/imaging/forward/jobs").get_json()["counts"]
    assert (counts["pending"], counts["failed"]) == (1, 4)

    bad = admin.post(f"/api/imaging/studies/{m01_study}/forward", json={"node_id": m01_src})
    assert (bad.status_code, bad.get_json()["code"]) == (400, "node_unavailable")  # no port: not a destination


def test_dcm02_img07_img08_rule_from_the_api_applies_to_the_next_cstore_and_its_job_is_sent(
    app: Flask,
    scp: scp_mod.Running,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A rule saved through the API is seen by the SCP's next C-STORE (RuleCache version check), queues a forward
    job visible in the queue API, and the worker sends it; disabling the rule stops new jobs."""
    admin = as_user(app, "sys_admin")
    src = add_node(app, "MODALITY1")
    peer = Peer(tmp_path, aet="AI_NODE")
    dest = add_node(app, "AI_NODE", allow="echo", institution="CENTRAL")
    assert admin.patch(f"/api/imaging/nodes/{dest}", json={"port": peer.port}).status_code == 200

    def send(name: str, **tags: Any) -> str:
        path = synthetic.ct(tmp_path / name, **tags)
        res = dcmtk("storescu", "-aet", "MODALITY1", "-aec", "TELERAD", "127.0.0.1", str(scp.port), str(path))
        assert res.returncode == 0, res.stderr
        return str(scalar(app, select(Instance.sop_instance_uid).order_by(Instance.id.desc()).limit(1)))

    send("before.dcm", BodyPartExamined="CHEST")  # no rule yet: the cache holds the empty rule set
    assert _jobs(app) == []
    r = admin.post(
        "/api/imaging/routing/rules",
        json={"name": "CT 胸部 → AI", "node_ids": [src], "modalities": ["CT"], "forward_node_ids": [dest]},
    )
    assert r.status_code == 201, r.get_json()
    rule_id = r.get_json()["id"]
    uid = send("after.dcm", BodyPartExamined="CHEST")
    page = admin.get("/api/imaging/forward/jobs").get_json()
    assert page["total"] == 1
    job = page["items"][0]
    assert (job["state"], job["node"]["aet"], job["sop_instance_uid"], job["rule_id"]) == (
        "pending",
        "AI_NODE",
        uid,
        rule_id,
    )
    peer.start()
    try:
        with app.app_context():
            result = forwarding.run_forward_queue(StoreTransport(Options(calling_aet="TELERAD", timeout=10)), FAST)
        assert result.sent == 1
    finally:
        peer.stop()
    assert [u for u, _ts in peer.received()] == [uid]
    done = admin.get("/api/imaging/forward/jobs", query_string={"state": "done"}).get_json()
    assert [(j["id"], j["attempts"]) for j in done["items"]] == [(job["id"], 1)]

    assert admin.patch(f"/api/imaging/routing/rules/{rule_id}", json={"enabled": False}).status_code == 200
    send("disabled.dcm", BodyPartExamined="CHEST")
    assert len(_jobs(app)) == 1


# --- storage targets and tasks (IMG-09) ------------------------------------------------------------------------
def test_img09_targets_create_default_and_sync_task_with_progress(app: Flask, tmp_path: Path) -> None:
    admin = as_user(app, "sys_admin")
    src = add_node(app, "MODALITY1")
    ingest(app, src, small_series(3))
    listed = admin.get("/api/imaging/storage/targets").get_json()
    local = next(t for t in listed if t["builtin"])
    assert (local["code"], local["instance_count"]) == ("local", 3)

    r = admin.post("/api/imaging/storage/targets", json={"code": "nas", "name": "NAS 归档", "root_path": "rel/path"})
    assert (r.status_code, r.get_json()["code"]) == (400, "invalid_root")
    assert "root_path" in r.get_json()["details"]["fields"]
    r = admin.post(
        "/api/imaging/storage/targets", json={"code": "nas", "name": "NAS 归档", "root_path": str(tmp_path / "nas")}
    )
    assert r.status_code == 201, r.get_json()
    nas = r.get_json()
    assert (nas["is_default"], nas["instance_count"], nas["builtin"]) == (False, 0, False)
    dup = admin.post("/api/imaging/storage/targets", json={"code": "nas", "root_path": str(tmp_path / "x")})
    assert (dup.status_code, dup.get_json()["code"]) == (400, "target_exists")
    r = admin.post(f"/api/imaging/storage/targets/{nas['id']}/default")
    assert (r.status_code, r.get_json()["is_default"]) == (200, True)
    assert [t["code"] for t in admin.get("/api/imaging/storage/targets").get_json() if t["is_default"]] == ["nas"]
    assert len(audit_events(app, "storage_target_changed")) == 2

    same = admin.post(
        "/api/imaging/storage/tasks", json={"kind": "sync", "source_id": local["id"], "target_id": local["id"]}
    )
    assert (same.status_code, same.get_json()["code"]) == (400, "same_target")
    bad = admin.post("/api/imaging/storage/tasks", json={"kind": "copy", "source_id": 1, "target_id": 2})
    assert (bad.status_code, bad.get_json()["code"]) == (400, "validation_error")
    r = admin.post(
        "/api/imaging/storage/tasks",
        json={"kind": "sync", "source_id": local["id"], "target_id": nas["id"], "filter": {"modality": "CT"}},
    )
    assert r.status_code == 201, r.get_json()
    task = r.get_json()
    assert (task["state"], task["total"], task["done"], task["percent"]) == ("pending", 3, 0, 0)
    assert (task["source"]["code"], task["target"]["code"]) == ("local", "nas")
    compare = admin.post(
        "/api/imaging/storage/tasks", json={"kind": "compare", "source_id": local["id"], "target_id": nas["id"]}
    ).get_json()
    with app.app_context():
        targets.run_storage_tasks(time_budget_s=20)
    tasks = {t["id"]: t for t in admin.get("/api/imaging/storage/tasks").get_json()}
    assert (tasks[task["id"]]["state"], tasks[task["id"]]["done"], tasks[task["id"]]["copied"]) == ("done", 3, 3)
    assert tasks[task["id"]]["percent"] == 100
    assert (tasks[compare["id"]]["state"], tasks[compare["id"]]["missing"]) == ("done", 0)
    assert len(audit_events(app, "storage_task_created")) == 2
