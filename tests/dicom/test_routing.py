"""Routing rules (REQ: DCM-02, IMG-03, IMG-07): conditions on node, institution, modality, body part, SOP class and
descriptions; applied at ingest through the SCP (dcmtk storescu) → forward jobs and placements."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from dicom.scp import Running
from engine import uow
from engine.actor import Actor
from engine.errors import ValidationFailed
from engine.imaging import routing, targets
from engine.imaging.models import Instance
from engine.imaging.routing_models import ForwardJob, StoragePlacement
from tests.dicom import synthetic
from tests.dicom.archive import ingest, small_series
from tests.dicom.conftest import add_node, count, dcmtk, rows, scalar

ADMIN = Actor.system("test")


@pytest.fixture(autouse=True)
def _fresh_rule_cache() -> None:
    routing.CACHE.invalidate()


def rule(app: Flask, **fields: object) -> int:
    with app.app_context(), uow.unit_of_work():
        return routing.create_rule(ADMIN, **fields).id


def subject(**kw: object) -> routing.Subject:
    base: dict[str, object] = {"node_id": 1, "institution_id": 1}
    return routing.Subject(**{**base, **kw})  # type: ignore[arg-type]


def compiled(**kw: object) -> routing.CompiledRule:
    base: dict[str, object] = {
        "id": 1,
        "stop": False,
        "node_ids": frozenset(),
        "institution_ids": frozenset(),
        "modalities": frozenset(),
        "body_parts": frozenset(),
        "sop_classes": frozenset(),
        "study_contains": "",
        "series_contains": "",
        "storage_target_id": None,
        "storage_compression": "",
        "forward_node_ids": (),
        "forward_compression": "",
    }
    return routing.CompiledRule(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("conditions", "x", "hit"),
    [
        ({"modalities": frozenset({"CT"})}, {"modality": "ct"}, True),
        ({"modalities": frozenset({"CT"})}, {"modality": "MR"}, False),
        ({"body_parts": frozenset({"CHEST"})}, {"body_part": "chest"}, True),
        ({"body_parts": frozenset({"CHEST"})}, {"body_part": "HEAD"}, False),
        ({"node_ids": frozenset({7})}, {"node_id": 7}, True),
        ({"node_ids": frozenset({7})}, {"node_id": 8}, False),
        ({"institution_ids": frozenset({2})}, {"institution_id": 1}, False),
        ({"sop_classes": frozenset({synthetic.CT_IMAGE})}, {"sop_class_uid": synthetic.CT_IMAGE}, True),
        ({"study_contains": "胸部"}, {"study_description": "CT 胸部平扫"}, True),
        ({"series_contains": "axial"}, {"series_description": "AXIAL 5mm"}, True),
        ({"modalities": frozenset({"CT"}), "body_parts": frozenset({"CHEST"})}, {"modality": "CT"}, False),
        ({}, {}, True),
    ],
)
def test_dcm02_rule_conditions(conditions: dict[str, object], x: dict[str, object], hit: bool) -> None:
    assert compiled(**conditions).matches(subject(**x)) is hit


def test_img07_decide_priority_accumulates_forwards_and_stops() -> None:
    rules = [
        compiled(id=1, modalities=frozenset({"CT"}), storage_target_id=5, forward_node_ids=(10,)),
        compiled(id=2, storage_target_id=6, forward_node_ids=(10, 11), forward_compression="j2k"),
        compiled(id=3, stop=True, forward_node_ids=(12,)),
        compiled(id=4, forward_node_ids=(13,)),
    ]
    d = routing.decide(rules, subject(modality="CT"))
    assert d.storage_target_id == 5  # the first rule naming a target wins
    assert d.forwards == ((10, 1, ""), (11, 2, "j2k"), (12, 3, ""))  # once per node; rule 4 after the stop
    assert routing.decide(rules, subject(modality="MR")).storage_target_id == 6


def test_dcm02_rule_validation(app: Flask) -> None:
    with app.app_context(), uow.unit_of_work():
        with pytest.raises(ValidationFailed):
            routing.create_rule(ADMIN, name="x", forward_node_ids=[999])
        with pytest.raises(ValidationFailed):
            routing.create_rule(ADMIN, name="x", forward_compression="zip")
        with pytest.raises(ValidationFailed):
            routing.create_rule(ADMIN, name="")


def test_img03_rules_applied_at_ingest_through_the_scp(app: Flask, scp: Running, tmp_path: Path) -> None:
    """CT from MODALITY1 with body part CHEST → forwarded to the AI node and placed on the archive target;
    MR from the same node and CT from another device are not routed by those rules."""
    ct_node = add_node(app, "MODALITY1")
    other = add_node(app, "MODALITY2")
    ai = add_node(app, "AI", allow="echo")
    pacs = add_node(app, "PACS", allow="echo")
    with app.app_context(), uow.unit_of_work():
        archive = targets.create_target(ADMIN, code="archive", name="归档", root_path=str(tmp_path / "archive")).id
    rule(app, name="CT 胸部 → AI", modalities=["CT"], body_parts=["chest"], node_ids=[ct_node], forward_node_ids=[ai])
    rule(app, name="CT → 归档", priority=200, modalities=["CT"], storage_target_id=archive)
    rule(app, name="MR → PACS", priority=300, modalities=["MR"], forward_node_ids=[pacs], enabled=False)
    files = [
        synthetic.ct(tmp_path / "ct1.dcm", BodyPartExamined="CHEST"),
        synthetic.ct(tmp_path / "ct2.dcm", BodyPartExamined="HEAD"),
    ]
    mr = synthetic.image(synthetic.base("1.2.840.10008.5.1.4.1.1.4", modality="MR", BodyPartExamined="CHEST"))
    mr.save_as(tmp_path / "mr.dcm", enforce_file_format=True)
    for aet, paths in (
        ("MODALITY1", [*files, tmp_path / "mr.dcm"]),
        ("MODALITY2", [synthetic.ct(tmp_path / "ct3.dcm", BodyPartExamined="CHEST")]),
    ):
        res = dcmtk("storescu", "-aet", aet, "-aec", "TELERAD", "127.0.0.1", str(scp.port), *map(str, paths))
        assert res.returncode == 0, res.stderr
    forwarded = rows(
        app, select(ForwardJob.node_id, Instance.node_id).join(Instance, Instance.id == ForwardJob.instance_id)
    )
    assert [tuple(f) for f in forwarded] == [(ai, ct_node)]
    placed = rows(app, select(StoragePlacement.target_id, Instance.node_id).join(Instance))
    assert sorted((p.target_id, p.node_id) for p in placed) == sorted(
        [(archive, ct_node), (archive, ct_node), (archive, other)]
    )  # every CT, whatever the device; the MR stays where it is
    # The worker places them: rows switched, files on the archive target and no longer in the receive store.
    with app.app_context():
        assert targets.run_placements() == 3
    moved = rows(app, select(Instance.storage_key, Instance.sha256).where(Instance.storage_target_id == archive))
    assert len(moved) == 3
    for m in moved:
        assert targets.ObjectStore(tmp_path / "archive").verify(m.storage_key, m.sha256)
        assert not scp.ctx.store.exists(m.storage_key)
    assert count(app, StoragePlacement) == 0


def test_img07_rule_change_is_seen_without_restart(app: Flask) -> None:
    src = add_node(app, "MODALITY1")
    dest = add_node(app, "AI", allow="echo")
    ingest(app, src, small_series(1), route=True)
    assert count(app, ForwardJob) == 0
    rid = rule(app, name="all CT", modalities=["CT"], forward_node_ids=[dest])
    ingest(app, src, small_series(2), route=True)
    assert count(app, ForwardJob) == 2
    with app.app_context(), uow.unit_of_work():
        routing.update_rule(ADMIN, rid, enabled=False)
    ingest(app, src, small_series(2), route=True)
    assert count(app, ForwardJob) == 2
    assert scalar(app, select(ForwardJob.rule_id).limit(1)) == rid
