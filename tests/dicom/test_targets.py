"""Storage targets: compare, sync and migrate between two filesystem targets with digests verified, progress in
storage_task, the source deleted only after the switch (REQ: IMG-09, DCM-02)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, update

from engine import uow
from engine.actor import Actor
from engine.errors import ValidationFailed
from engine.imaging import targets
from engine.imaging.models import Instance
from engine.imaging.routing_models import StorageTask
from engine.imaging.storage import ObjectStore
from tests.dicom.archive import builtin_store, ingest, small_series
from tests.dicom.conftest import add_node, audit_events, rows, scalar

ADMIN = Actor.system("test")


def make_target(app: Flask, code: str, root: Path) -> int:
    with app.app_context(), uow.unit_of_work():
        return targets.create_target(ADMIN, code=code, name=code, root_path=str(root)).id


def task(app: Flask, kind: str, source: str, target: str, **flt: object) -> int:
    with app.app_context(), uow.unit_of_work():
        return targets.create_storage_task(ADMIN, kind=kind, source=source, target=target, filter=dict(flt)).id


def run(app: Flask) -> None:
    with app.app_context():
        targets.run_storage_tasks()


def progress(app: Flask, task_id: int) -> StorageTask:
    with app.app_context():
        s = uow.session()
        t = s.get(StorageTask, task_id)
        assert t is not None
        s.expunge(t)
        s.rollback()
        return t


def test_img09_compare_sync_migrate_between_two_filesystem_targets(app: Flask, tmp_path: Path) -> None:
    src_node = add_node(app, "MODALITY1")
    ids = ingest(app, src_node, small_series(250))  # more than one batch (TASK_BATCH = 200)
    other = ingest(app, src_node, small_series(5, Modality="MR"))
    a = make_target(app, "a", tmp_path / "a")
    make_target(app, "b", tmp_path / "b")
    # local → a: migrate everything; then a → b by compare, sync, migrate with a filter
    t0 = task(app, "migrate", "local", "a")
    run(app)
    assert progress(app, t0).state == "done"
    assert progress(app, t0).done == progress(app, t0).total == 255
    assert scalar(app, select(Instance.id).where(Instance.storage_target_id.is_(None))) is None
    assert not any(True for _ in builtin_store(app).iter_keys())  # the receive store is empty now

    ct_study = int(scalar(app, select(Instance.study_id).where(Instance.id == ids[0])))
    t1 = task(app, "compare", "a", "b", study_ids=[ct_study])
    run(app)
    p1 = progress(app, t1)
    assert (p1.state, p1.total, p1.done, p1.missing, p1.mismatched) == ("done", 250, 250, 250, 0)

    t2 = task(app, "sync", "a", "b", modality="CT")
    run(app)
    p2 = progress(app, t2)
    assert (p2.state, p2.done, p2.copied, p2.errors) == ("done", 250, 250, 0)
    b_store, a_store = ObjectStore(tmp_path / "b"), ObjectStore(tmp_path / "a")
    for r in rows(app, select(Instance.storage_key, Instance.sha256).where(Instance.id.in_(ids))):
        assert b_store.verify(r.storage_key, r.sha256)
        assert a_store.verify(r.storage_key, r.sha256)  # sync keeps the source

    t3 = task(app, "compare", "a", "b", study_ids=[ct_study])
    run(app)
    assert (progress(app, t3).missing, progress(app, t3).mismatched) == (0, 0)

    t4 = task(app, "migrate", "a", "b", modality="CT")
    run(app)
    p4 = progress(app, t4)
    assert (p4.state, p4.done, p4.errors) == ("done", 250, 0)
    moved = rows(
        app, select(Instance.storage_target_id, Instance.storage_key, Instance.sha256).where(Instance.id.in_(ids))
    )
    b_id = int(scalar(app, select(targets.StorageTarget.id).where(targets.StorageTarget.code == "b")))
    assert {m.storage_target_id for m in moved} == {b_id}
    for m in moved:
        assert b_store.verify(m.storage_key, m.sha256)
        assert not a_store.exists(m.storage_key)  # deleted from the source after the switch
    for r in rows(app, select(Instance.storage_target_id, Instance.storage_key).where(Instance.id.in_(other))):
        assert r.storage_target_id == a  # the MR instances were not in the filter
        assert a_store.exists(r.storage_key)
    with app.app_context():
        assert targets.instance_path(uow.session().get(Instance, ids[0])).parent.parent == tmp_path / "b"
        uow.session().rollback()
    assert len(audit_events(app, "storage_task_finished")) == 5


def test_img09_compare_reports_a_corrupt_copy_and_migrate_keeps_the_row(app: Flask, tmp_path: Path) -> None:
    ids = ingest(app, add_node(app, "MODALITY1"), small_series(3))
    make_target(app, "b", tmp_path / "b")
    t1 = task(app, "sync", "local", "b")
    run(app)
    key = str(scalar(app, select(Instance.storage_key).where(Instance.id == ids[0])))
    ObjectStore(tmp_path / "b").path(key).write_bytes(b"corrupt")
    t2 = task(app, "compare", "local", "b")
    run(app)
    assert (progress(app, t1).copied, progress(app, t2).mismatched, progress(app, t2).missing) == (3, 1, 0)
    # The source itself corrupt: migrate refuses that instance (row stays, error counted), moves the others.
    builtin_store(app).path(key).write_bytes(b"also corrupt")
    t3 = task(app, "migrate", "local", "b")
    run(app)
    p3 = progress(app, t3)
    assert (p3.state, p3.errors, p3.done) == ("done", 1, 3)
    assert "instance" in p3.last_error
    assert scalar(app, select(Instance.storage_target_id).where(Instance.id == ids[0])) is None
    assert builtin_store(app).exists(key)


def test_img09_shared_content_key_is_not_deleted_while_another_row_uses_it(app: Flask, tmp_path: Path) -> None:
    ids = ingest(app, add_node(app, "MODALITY1"), small_series(2))
    make_target(app, "b", tmp_path / "b")
    with app.app_context(), uow.unit_of_work() as s:  # two rows naming the same content (content-addressed store)
        key, digest = s.execute(select(Instance.storage_key, Instance.sha256).where(Instance.id == ids[0])).one()
        s.execute(update(Instance).where(Instance.id == ids[1]).values(storage_key=key, sha256=digest))
        b = targets.get_target("b").id
    with app.app_context():
        assert targets.relocate_instance(ids[0], b)
    assert builtin_store(app).exists(key)  # ids[1] still lives there
    with app.app_context():
        assert targets.relocate_instance(ids[1], b)
    assert not builtin_store(app).exists(key)


def test_img09_validation(app: Flask, tmp_path: Path) -> None:
    with app.app_context(), uow.unit_of_work():
        with pytest.raises(ValidationFailed):
            targets.create_target(ADMIN, code="rel", name="x", root_path="relative/path")
        with pytest.raises(ValidationFailed):
            targets.create_storage_task(ADMIN, kind="migrate", source="local", target="local")
        with pytest.raises(ValidationFailed):
            targets.create_storage_task(ADMIN, kind="delete", source="local", target="local")
