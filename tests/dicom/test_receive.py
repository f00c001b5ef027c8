"""One receive path (issue 12 §2; REQ: DCM-02, DCM-04, IMG-03, IMG-07, DSEC-03/04/05): instances telerad retrieves
itself, by C-GET or C-MOVE from a hospital PACS, go through the same receive service as a C-STORE — validated,
durable, indexed under the node's institution, and routed (forward jobs, storage placement); a refused one is a
failed sub-operation and leaves no file. The service takes any source: a device, a user or an OAuth client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select

from dicom import receiving
from dicom import scp as scp_mod
from engine import config, uow
from engine.actor import Actor
from engine.imaging import ingest, routing, services, targets
from engine.imaging.models import Instance
from engine.imaging.routing_models import ForwardJob, StoragePlacement
from engine.imaging.source import Source
from engine.imaging.storage import ObjectStore
from tests.api.test_imaging_api import HospitalPacs
from tests.conftest import TEST_SECRET
from tests.dicom import synthetic
from tests.dicom.conftest import add_node, audit_events, count, rows, worker_applies_ingest_events
from tests.factories import as_user, institution, make_user

ADMIN = Actor.system("test")
PACS_AET = "PACS_M02"
TELERAD = Path(sys.executable).with_name("telerad")


@pytest.fixture(autouse=True)
def _fresh_rule_cache() -> None:
    routing.CACHE.invalidate()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Pacs = HospitalPacs  # the hospital PACS of the imaging API tests: answers C-MOVE to TELERAD and C-GET


@pytest.fixture
def study() -> list[Dataset]:
    """Three chest CT instances of one study (synthetic)."""
    study_uid, series_uid = generate_uid(), generate_uid()
    out = []
    for i in range(3):
        ds = synthetic.image(synthetic.base(synthetic.CT_IMAGE, modality="CT", BodyPartExamined="CHEST"))
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study_uid, series_uid, i + 1
        ds.PatientID = "PACS-1"
        out.append(ds)
    return out


@pytest.fixture
def pacs(scp: scp_mod.Running, study: list[Dataset]) -> Iterator[Pacs]:
    peer = Pacs(study, scp.port)
    yield peer
    peer.stop()


def _pacs_node(app: Flask, port: int) -> int:
    node_id = add_node(app, PACS_AET, institution="M02", allow="echo,store")
    with app.app_context(), uow.unit_of_work():
        services.update_node(ADMIN, node_id, port=port)
    return node_id


def _routes(app: Flask, tmp_path: Path, pacs_port: int) -> tuple[int, int, int]:
    """The PACS of M02 (it may store: C-MOVE sub-operations arrive as its C-STOREs), an AI node and an archive
    target; one rule for the PACS's instances: forward to the AI node and place on the archive."""
    pacs_node = _pacs_node(app, pacs_port)
    ai = add_node(app, "AI", allow="echo")
    with app.app_context(), uow.unit_of_work():
        archive = targets.create_target(ADMIN, code="archive", name="归档", root_path=str(tmp_path / "archive")).id
        routing.create_rule(
            ADMIN, name="PACS → AI + 归档", node_ids=[pacs_node], forward_node_ids=[ai], storage_target_id=archive
        )
    return pacs_node, ai, archive


def _assert_routed(app: Flask, tmp_path: Path, uids: set[str], pacs_node: int, ai: int, archive: int) -> None:
    m02 = institution(app, "M02").id
    stored = rows(app, select(Instance.id, Instance.sop_instance_uid, Instance.node_id, Instance.institution_id))
    assert {r.sop_instance_uid for r in stored} == uids
    assert {(r.node_id, r.institution_id) for r in stored} == {(pacs_node, m02)}  # DSEC-03: the node's institution
    ids = {r.id for r in stored}
    forwarded = rows(app, select(ForwardJob.instance_id, ForwardJob.node_id))
    assert sorted(forwarded) == sorted((i, ai) for i in ids)  # IMG-08: forward jobs, one per instance
    placed = rows(app, select(StoragePlacement.instance_id, StoragePlacement.target_id))
    assert sorted(placed) == sorted((i, archive) for i in ids)  # IMG-07: storage placement
    with app.app_context():
        assert targets.run_placements() == 3
    moved = rows(app, select(Instance.storage_key, Instance.sha256).where(Instance.storage_target_id == archive))
    assert len(moved) == 3
    for m in moved:
        assert targets.ObjectStore(tmp_path / "archive").verify(m.storage_key, m.sha256)


@pytest.mark.parametrize("method", ["get", "move"])
def test_dcm04_img07_retrieved_instances_are_routed_and_placed_like_c_store(
    app: Flask, pacs: Pacs, study: list[Dataset], tmp_path: Path, method: str
) -> None:
    """Before issue 12, C-GET'd instances were indexed apart from the receive path: no forward job, no placement."""
    pacs_node, ai, archive = _routes(app, tmp_path, pacs.port)
    admin = as_user(app, "sys_admin", institution_code="M02")
    r = admin.post(
        f"/api/imaging/nodes/{pacs_node}/retrieve",
        json={"study_instance_uid": str(study[0].StudyInstanceUID), "method": method},
    )
    result = r.get_json()
    assert (r.status_code, result["ok"], result["completed"], result["failed"]) == (200, True, 3, 0), result
    _assert_routed(app, tmp_path, {str(d.SOPInstanceUID) for d in study}, pacs_node, ai, archive)
    assert worker_applies_ingest_events(app) == 1
    (stored,) = audit_events(app, "dicom_instances_stored")  # one per study, naming the node as the actor
    assert stored.username == f"dicom:{PACS_AET}"
    assert stored.details["via"] == ("c-get" if method == "get" else "c-store")


def test_dcm04_cli_c_get_is_routed(
    app: Flask, settings: config.Settings, pacs: Pacs, study: list[Dataset], tmp_path: Path
) -> None:
    """`telerad dicom retrieve --method get` (another process) goes through the same receive service."""
    pacs_node, ai, archive = _routes(app, tmp_path, pacs.port)
    env = {
        **os.environ,
        "TELERAD_MODE": "test",
        "TELERAD_INSTANCE_DIR": str(settings.instance_dir),
        "TELERAD_STORAGE_DIR": str(settings.storage_dir),
        "TELERAD_DATABASE_URL": settings.database_url,
        "TELERAD_SECRET_KEY": TEST_SECRET,
    }
    peer = ["--aet", PACS_AET, "--host", "127.0.0.1", "--port", str(pacs.port)]
    args = [str(TELERAD), "dicom", "retrieve", *peer, "--study", str(study[0].StudyInstanceUID), "--method", "get"]
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "已入库 3 个实例" in res.stdout
    _assert_routed(app, tmp_path, {str(d.SOPInstanceUID) for d in study}, pacs_node, ai, archive)


def test_dsec04_a_refused_c_get_instance_is_a_failed_sub_operation_and_leaves_no_file(
    app: Flask, scp: scp_mod.Running, pacs: Pacs, study: list[Dataset]
) -> None:
    """A retrieved instance the receive service refuses (here a non-conformant UID) is answered with a failure
    status, so the peer counts it as failed; it is audited, gets no row and leaves no file behind (before issue 12
    it was answered with success and its file stayed in the store as an orphan until the sweep)."""
    pacs.datasets[1].SeriesInstanceUID = "1.2.03"  # leading zero in a component: PS3.5 §9.1
    pacs_node = _pacs_node(app, pacs.port)
    admin = as_user(app, "sys_admin", institution_code="M02")
    r = admin.post(
        f"/api/imaging/nodes/{pacs_node}/retrieve",
        json={"study_instance_uid": str(study[0].StudyInstanceUID), "method": "get"},
    )
    result = r.get_json()
    assert (result["ok"], result["completed"], result["failed"]) == (False, 2, 1), result
    assert count(app, Instance) == 2
    (refused,) = audit_events(app, "dicom_store_failed")
    assert (refused.details["code"], refused.details["via"]) == ("invalid_uid", "c-get")
    keys = {r.storage_key for r in rows(app, select(Instance.storage_key))}
    assert {k for k, _ in scp.ctx.store.iter_keys()} == keys  # no orphan: nothing was placed for the refused one
    assert list(scp.ctx.store.tmp_dir.iterdir()) == []


def _file(settings: config.Settings, ds: Dataset) -> Path:
    """A received Part-10 file in the store's tmp/ (where every entry point writes what it receives)."""
    tmp = settings.storage_dir / "dicom" / "tmp" / f"in-{ds.SOPInstanceUID}.dcm"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(tmp, enforce_file_format=True)
    return tmp


@pytest.mark.parametrize("kind", ["user", "client"])
def test_dsec03_img07_any_source_gets_the_same_rules(
    app: Flask, settings: config.Settings, study: list[Dataset], kind: str
) -> None:
    """The receive service takes a user (browser upload) or an OAuth client (STOW-RS) as the source as well as a
    device: rows stamped with the source's institution and no device, audited under the source, routed by the
    institution's rules, an identical resend idempotent, a broken data set refused by the validator and audited
    against the source, with nothing left in the store (REQ: DSEC-03/05/06/08, IMG-07)."""
    m01 = institution(app, "M01")
    user = make_user(app, "registrar", institution_code="M01")
    if kind == "user":
        who = Actor(user_id=user.id, username=user.username, institution_id=m01.id, institution_code="M01")
        source = Source.user(who, via="upload")
    else:
        source = Source.client("pacs-gateway", m01.id, "M01", "10.0.0.9", via="stow-rs")
    ai = add_node(app, "AI", allow="echo")
    with app.app_context(), uow.unit_of_work():
        routing.create_rule(ADMIN, name="M01 → AI", institution_ids=[m01.id], forward_node_ids=[ai])
    rx = receiving.receiver(app, settings)
    try:
        state = ingest.IngestState(source)
        results = [rx.receive(state, _file(settings, ds)) for ds in study]
        again = rx.receive(ingest.IngestState(source), _file(settings, study[0]))  # identical resend (DSEC-06)
        broken = study[1].copy()
        broken.SOPInstanceUID = generate_uid()
        cut = _file(settings, broken)
        cut.write_bytes(cut.read_bytes()[:-10])  # native Pixel Data 10 bytes short (DSEC-08)
        with pytest.raises(ingest.InvalidInstance):
            rx.receive(state, cut)
    finally:
        receiving.close(rx)
    assert [r.outcome for r in results] == [ingest.STORED] * 3
    assert (again.outcome, again.instance_id) == (ingest.DUPLICATE, results[0].instance_id)
    stored = rows(app, select(Instance.institution_id, Instance.node_id, Instance.calling_aet))
    assert sorted(stored) == [(m01.id, None, "")] * 3
    assert sorted(rows(app, select(ForwardJob.instance_id, ForwardJob.node_id))) == sorted(
        (r.instance_id, ai) for r in results
    )
    assert worker_applies_ingest_events(app) == 2
    audited = audit_events(app, "dicom_instances_stored")  # one per receipt and study: the upload, the resend
    assert [(e.username, e.details["via"]) for e in audited] == [
        (user.username if kind == "user" else "oauth:pacs-gateway", source.via)
    ] * 2
    (refused,) = audit_events(app, "dicom_store_failed")
    assert refused.object_type == ("user" if kind == "user" else "oauth_client")
    assert refused.details["code"].startswith("dataset_")  # the validator's refusal, for every source
    keys = {r.storage_key for r in rows(app, select(Instance.storage_key))}
    store = ObjectStore(settings.storage_dir / "dicom")
    assert {k for k, _ in store.iter_keys()} == keys
    assert list(store.tmp_dir.iterdir()) == []
