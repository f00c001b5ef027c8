"""A group-commit batch resolves its studies, series and instances together (engine/imaging/ingest_batch.py; issue
12 PostgreSQL figures; REQ: DSEC-05, DSEC-06, IMG-06): the outcomes, rows and outbox events are exactly those of
the per-instance path — new, identical resend, conflict, a study created by this batch for one receipt and used by
another — and under real concurrent associations every study, series and instance is indexed once."""

from __future__ import annotations

import copy
import threading
from io import BytesIO
from pathlib import Path

from flask import Flask
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from dicom import status
from dicom.groupcommit import GroupCommit
from dicom.scp import Running
from engine import config, uow
from engine.imaging import ingest_batch, receive
from engine.imaging.exam_models import IngestEvent
from engine.imaging.ingest import CONFLICT, DUPLICATE, STORED, IngestState
from engine.imaging.models import Instance, InstanceConflict, Series, Study
from engine.imaging.source import Source
from engine.imaging.storage import ObjectStore, StoredObject
from tests.dicom import synthetic
from tests.dicom.archive import _meta, ingest, node_info, small_series
from tests.dicom.conftest import add_node, count, rows, scalar, store


def _stored(store_: ObjectStore, ds: Dataset) -> StoredObject:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return store_.write_stream([buf.getvalue()])


def _copy_with(ds: Dataset, **tags: object) -> Dataset:
    out = copy.deepcopy(ds)
    for k, v in tags.items():
        setattr(out, k, v)
    return out


def test_dsec06_img06_batch_outcomes_equal_the_per_instance_path(app: Flask) -> None:
    node_a = add_node(app, "BATCHA")
    node_b = add_node(app, "BATCHB")
    known = small_series(2, Modality="CT")
    ingest(app, node_a, known)  # a study, series and two instances indexed before the batch
    s1 = small_series(2, Modality="DX")  # a new study that receipts A and B both send in this batch
    s1_b = _copy_with(
        s1[1], SeriesInstanceUID=generate_uid(), Modality="SR"
    )  # B adds a second series of another modality
    s1_b.SOPInstanceUID = generate_uid()
    s1_b.file_meta.MediaStorageSOPInstanceUID = s1_b.SOPInstanceUID
    s2 = small_series(1, Modality="CR")  # a new study of A only
    known_new = small_series(1, Modality="CT", StudyInstanceUID=known[0].StudyInstanceUID,
                             SeriesInstanceUID=known[0].SeriesInstanceUID)  # fmt: skip
    conflict = _copy_with(known[1], PatientID="ALTERED")  # same SOP Instance UID, other content
    with app.app_context():
        objects = ObjectStore(config.current().storage_dir / "dicom")
        a = IngestState(Source.device(node_info(app, node_a), "127.0.0.1", via="c-store"))
        b = IngestState(Source.device(node_info(app, node_b), "127.0.0.1", via="c-store"))
        plan = [
            (a, s1[0]),  # creates S1 for A
            (b, s1[1]),  # same study and series from B
            (b, s1_b),  # B's second series of S1
            (a, s2[0]),  # creates S2
            (a, known_new[0]),  # a new instance of a study indexed before
            (b, known[0]),  # an identical resend
            (a, conflict),  # a conflict
            (a, s2[0]),  # the same instance twice in one batch: the second is a resend
        ]
        entries = [(st, _stored(objects, ds), _meta(ds)) for st, ds in plan]
        hooks = ingest_batch.BatchIndexer()
        with uow.unit_of_work():
            hooks.prepare(entries)
            results = [receive.index(st, stored, meta) for st, stored, meta in entries]
            hooks.flush()
    assert [r.outcome for r in results] == [STORED, STORED, STORED, STORED, STORED, DUPLICATE, CONFLICT, DUPLICATE]
    s1_id = scalar(app, select(Study.id).where(Study.study_instance_uid == s1[0].StudyInstanceUID))
    s2_id = scalar(app, select(Study.id).where(Study.study_instance_uid == s2[0].StudyInstanceUID))
    # the study is "created" once, for the receipt that sent it first; the duplicate instance is not created twice
    assert [r.new_study_id for r in results] == [s1_id, None, None, s2_id, None, None, None, None]
    assert count(app, Study) == 3
    assert count(app, Series) == 4
    assert count(app, Instance) == 2 + 5
    assert count(app, InstanceConflict) == 1
    assert scalar(app, select(Study.modalities).where(Study.id == s1_id)) == "DX,SR"  # ModalitiesInStudy follows
    events = rows(app, select(IngestEvent.study_id, IngestEvent.new_study).order_by(IngestEvent.id))
    # one event per study and receipt (its audit), new_study on the creating receipt's only
    assert sorted((sid, bool(new)) for sid, new in events if sid in (s1_id, s2_id)) == sorted(
        [(s1_id, True), (s1_id, False), (s2_id, True)]
    )


def test_dsec05_concurrent_associations_index_each_study_once(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    """Four associations at once, each sending one-instance studies of its own and instances of one study that all
    four send: the group commit batches them (rows > transactions) and every row exists exactly once."""
    shared_study, shared_series = generate_uid(), generate_uid()
    per_thread, threads = 8, 4
    files: list[list[Path]] = []
    for t in range(threads):
        mine = []
        for i in range(per_thread):
            mine.append(synthetic.ct(tmp_path / f"{t}-{i}.dcm", PatientID=f"PB{t}{i}", AccessionNumber=f"ACB{t}{i}"))
            mine.append(synthetic.ct(tmp_path / f"{t}-{i}-s.dcm", StudyInstanceUID=shared_study,
                                     SeriesInstanceUID=shared_series, PatientID="PBSHARED"))  # fmt: skip
        files.append(mine)
    results: list[list[int | None]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def send(t: int) -> None:
        barrier.wait()
        results[t] = store(scp.port, modality, files[t])

    workers = [threading.Thread(target=send, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert all(r == [status.SUCCESS] * (2 * per_thread) for r in results)
    committer = scp.ctx.receiver.committer
    assert isinstance(committer, GroupCommit)
    assert committer.rows == threads * per_thread * 2
    assert committer.rows > committer.transactions  # batches of several rows did happen
    assert count(app, Study) == threads * per_thread + 1
    assert count(app, Series) == threads * per_thread + 1
    assert count(app, Instance) == threads * per_thread * 2
    shared_id = scalar(app, select(Study.id).where(Study.study_instance_uid == shared_study))
    created = scalar(
        app, select(func.count()).where(IngestEvent.study_id == shared_id, IngestEvent.new_study.is_(True))
    )
    assert created == 1  # one receipt created the shared study: matched once
    assert scalar(app, select(func.count()).where(IngestEvent.new_study.is_(True))) == threads * per_thread + 1
