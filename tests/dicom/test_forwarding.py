"""Forwarding from the persistent queue to real destinations: a pynetdicom peer process that stops mid-forward, and
dcmtk's storescp (REQ: IMG-08, IMG-04, DCM-04)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from pydicom import dcmread
from sqlalchemy import select, update

from dicom.forward_transport import StoreTransport
from dicom.scu import Options
from engine import uow
from engine.actor import Actor
from engine.db import utcnow
from engine.imaging import forwarding
from engine.imaging.models import Instance, Study
from engine.imaging.routing_models import ForwardAck, ForwardJob
from tests.dicom.archive import Peer, free_port, from_file, ingest, small_series
from tests.dicom.conftest import DCMTK_ENV, add_node, count, rows, sample_file, scalar

FAST = forwarding.Settings(batch=200, backoff_base_s=0.2, backoff_max_s=1.0, time_budget_s=20.0, max_attempts=1000)
ADMIN = Actor.system("test")


def transport() -> StoreTransport:
    return StoreTransport(Options(calling_aet="TELERAD", timeout=10))


def dest_node(app: Flask, peer_aet: str, port: int) -> int:
    node_id = add_node(app, peer_aet, allow="echo", institution="M01")
    with app.app_context(), uow.unit_of_work() as s:
        s.execute(update(forwarding.DicomNode).where(forwarding.DicomNode.id == node_id).values(port=port))
    return node_id


def study_of(app: Flask, instance_id: int) -> int:
    return int(scalar(app, select(Instance.study_id).where(Instance.id == instance_id)))


def forward(app: Flask, study_id: int, node_id: int, policy: str = "") -> dict[str, int]:
    with app.app_context(), uow.unit_of_work():
        return forwarding.forward_study(ADMIN, study_id, node_id, policy)


def drain(app: Flask, peer: Peer | None = None, deadline_s: float = 60.0, restarts: list[int] | None = None) -> int:
    """Run the worker job in a loop until no job is pending/sending; restart the peer when it died."""
    end = time.monotonic() + deadline_s
    runs = 0
    while time.monotonic() < end:
        if peer is not None and not peer.alive:
            peer.start(die_at=restarts.pop(0) if restarts else 0)
        with app.app_context():
            forwarding.run_forward_queue(transport(), FAST)
        runs += 1
        open_jobs = count(app, ForwardJob, ForwardJob.state.in_(("pending", "sending")))
        if open_jobs == 0:
            return runs
        time.sleep(0.1)
    raise AssertionError("forward queue did not drain in time")


def _source(app: Flask) -> int:
    return add_node(app, "MODALITY1")


def test_img08_destination_stops_three_times_during_1000_instance_forward(app: Flask, tmp_path: Path) -> None:
    n = 1000
    src = _source(app)
    ids = ingest(app, src, small_series(n))
    peer = Peer(tmp_path)
    # The destination dies on its 150th instance (mid-association, no response), and again twice after restarts.
    peer.start(die_at=150)
    node_id = dest_node(app, peer.aet, peer.port)
    try:
        assert forward(app, study_of(app, ids[0]), node_id) == {"instances": n, "queued": n, "already_sent": 0}
        drain(app, peer, restarts=[330, 270, 0])
    finally:
        peer.stop()
    received = Counter(uid for uid, _ts in peer.received())
    expected = set(rows_uids(app))
    assert set(received) == expected  # all arrive
    assert max(received.values()) == 1  # none twice
    assert len(received) == n
    assert count(app, ForwardJob, ForwardJob.state == "done") == n
    assert count(app, ForwardAck, ForwardAck.node_id == node_id) == n
    # It did stop: some jobs needed more than one attempt.
    assert scalar(app, select(forwarding.func.max(ForwardJob.attempts))) > 1


def rows_uids(app: Flask) -> list[str]:
    return [r.sop_instance_uid for r in rows(app, select(Instance.sop_instance_uid))]


@pytest.mark.slow
def test_img08_destination_stops_three_times_during_5000_instance_forward(app: Flask, tmp_path: Path) -> None:
    src = _source(app)
    ids = ingest(app, src, small_series(5000))
    peer = Peer(tmp_path)
    peer.start(die_at=700)
    node_id = dest_node(app, peer.aet, peer.port)
    try:
        forward(app, study_of(app, ids[0]), node_id)
        drain(app, peer, deadline_s=300, restarts=[1500, 1100, 0])
    finally:
        peer.stop()
    received = Counter(uid for uid, _ts in peer.received())
    assert len(received) == 5000
    assert max(received.values()) == 1


def test_img08_incremental_resend_sends_nothing_new(app: Flask, tmp_path: Path) -> None:
    src = _source(app)
    ids = ingest(app, src, small_series(20))
    study_id = study_of(app, ids[0])
    peer = Peer(tmp_path)
    peer.start()
    node_id = dest_node(app, peer.aet, peer.port)
    try:
        forward(app, study_id, node_id)
        drain(app)
        assert len(peer.received()) == 20
        # Re-forward the same study: nothing is queued, nothing is sent.
        assert forward(app, study_id, node_id) == {"instances": 20, "queued": 0, "already_sent": 20}
        drain(app)
        assert len(peer.received()) == 20
        # Five more instances arrive in the study: only those go.
        more = small_series(5, StudyInstanceUID=scalar(app, select(Study.study_instance_uid)))
        ingest(app, src, more)
        assert forward(app, study_id, node_id) == {"instances": 25, "queued": 5, "already_sent": 20}
        drain(app)
        got = Counter(uid for uid, _ts in peer.received())
        assert len(got) == 25
        assert max(got.values()) == 1
        # A job re-armed by hand (e.g. a row reset to pending) still does not re-send what was acknowledged.
        with app.app_context(), uow.unit_of_work() as s:
            s.execute(update(ForwardJob).values(state="pending", next_attempt_at=utcnow()))
        with app.app_context():
            result = forwarding.run_forward_queue(transport(), FAST)
        assert result.sent == 0
        assert result.skipped_acked == 25
        assert len(peer.received()) == 25
    finally:
        peer.stop()


def test_img08_expired_lease_goes_back_to_pending_and_is_sent(app: Flask, tmp_path: Path) -> None:
    src = _source(app)
    ids = ingest(app, src, small_series(3))
    peer = Peer(tmp_path)
    peer.start()
    node_id = dest_node(app, peer.aet, peer.port)
    try:
        forward(app, study_of(app, ids[0]), node_id)
        # A worker claimed them and died: `sending` with a lease in the past (and one still leased).
        with app.app_context(), uow.unit_of_work() as s:
            past, future = utcnow() - timedelta(seconds=1), utcnow() + timedelta(hours=1)
            s.execute(update(ForwardJob).values(state="sending", leased_until=past))
            s.execute(update(ForwardJob).where(ForwardJob.instance_id == ids[2]).values(leased_until=future))
        with app.app_context():
            result = forwarding.run_forward_queue(transport(), FAST)
        assert result.sent == 2
        assert count(app, ForwardJob, ForwardJob.state == "sending") == 1
    finally:
        peer.stop()


def test_img08_unreachable_destination_backs_off_then_delivers(app: Flask, tmp_path: Path) -> None:
    src = _source(app)
    ids = ingest(app, src, small_series(4))
    peer = Peer(tmp_path)
    node_id = dest_node(app, peer.aet, peer.port)  # nothing listens yet
    forward(app, study_of(app, ids[0]), node_id)
    with app.app_context():
        result = forwarding.run_forward_queue(transport(), FAST)
    assert result.sent == 0
    assert result.retried == 4
    jobs = rows(app, select(ForwardJob.state, ForwardJob.attempts, ForwardJob.next_attempt_at, ForwardJob.last_error))
    assert {j.state for j in jobs} == {"pending"}
    assert all(j.attempts == 1 and j.next_attempt_at > utcnow() and j.last_error for j in jobs)
    peer.start()
    try:
        drain(app)
    finally:
        peer.stop()
    assert len(peer.received()) == 4


def test_img04_forward_policy_transcodes_and_storescp_gets_uncompressed_fallback(app: Flask, tmp_path: Path) -> None:
    """dcmtk's storescp accepts only uncompressed syntaxes by default: a JPEG-LS instance is decompressed for it;
    the pynetdicom peer accepts JPEG-LS, so the policy's transcode is what it receives."""
    import subprocess

    src = _source(app)
    ct = from_file(sample_file("CT_small.dcm"))
    jls = from_file(sample_file("MR_small_jpeg_ls_lossless.dcm"), StudyInstanceUID=ct.StudyInstanceUID)
    ids = ingest(app, src, [ct, jls])
    study_id = study_of(app, ids[0])
    port = free_port()
    out_dir = tmp_path / "storescp"
    out_dir.mkdir()
    proc = subprocess.Popen(  # noqa: S603
        ["/usr/bin/storescp", "-aet", "STORESCP", "-od", str(out_dir), "--fork", str(port)], env=DCMTK_ENV
    )
    peer = Peer(tmp_path, aet="JLSPEER")
    peer.start()
    try:
        time.sleep(0.3)
        scp_node = dest_node(app, "STORESCP", port)
        peer_node = dest_node(app, peer.aet, peer.port)
        forward(app, study_id, scp_node)
        forward(app, study_id, peer_node, policy="jpegls")
        drain(app)
    finally:
        proc.terminate()
        proc.wait(10)
        peer.stop()
    files = sorted(out_dir.iterdir())
    assert len(files) == 2
    got = {str(dcmread(f).SOPInstanceUID): dcmread(f) for f in files}
    assert {str(ds.file_meta.TransferSyntaxUID) for ds in got.values()} <= {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2"}
    original = dcmread(sample_file("MR_small_jpeg_ls_lossless.dcm")).pixel_array
    assert set(got) == {str(ct.SOPInstanceUID), str(jls.SOPInstanceUID)}  # lossless: the UIDs are kept
    assert (got[str(jls.SOPInstanceUID)].pixel_array == original).all()  # decompressed, identical pixels
    assert sorted(ts for _uid, ts in peer.received()) == ["1.2.840.10008.1.2.4.80"] * 2  # both sent as JPEG-LS
