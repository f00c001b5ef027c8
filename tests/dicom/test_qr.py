"""C-MOVE and C-GET SCP with dcmtk's movescu (to a storescp the test starts) and getscu, and pynetdicom for the
statuses and counts: registered destinations of the caller's institution only, files sent as stored
(REQ: DCM-04, AC-08, DSEC-10)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from sqlalchemy import select

from dicom import status
from dicom.scp import Running
from engine import uow
from engine.actor import Actor
from engine.imaging import services
from engine.imaging.models import Instance
from tests.dicom import synthetic
from tests.dicom.conftest import DCMTK, DCMTK_ENV, associate, audit_events, dataset_bytes, dcmtk, rows, store

STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
STUDY_A = "1.2.826.0.1.3680043.8.498.71"
STUDY_B = "1.2.826.0.1.3680043.8.498.72"
SERIES_A1 = "1.2.826.0.1.3680043.8.498.73"
SERIES_A2 = "1.2.826.0.1.3680043.8.498.74"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node(app: Flask, aet: str, institution: str, port: int | None, allow: str) -> None:
    with app.app_context(), uow.unit_of_work():
        services.create_node(Actor.system("test"), aet=aet, host="127.0.0.1", port=port,
                             institution_code=institution, allow=allow)  # fmt: skip


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """dcmtk's storescp, bit-preserving, on a free port: the C-MOVE destination."""
    port, out = _free_port(), tmp_path / "dest"
    out.mkdir()
    proc = subprocess.Popen([str(DCMTK / "storescp"), "-aet", "DEST1", "+xa", "-B", "-od", str(out), str(port)],
                            env=DCMTK_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port, out
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def archive(app: Flask, scp: Running, modality: str, storescp: tuple[int, Path], tmp_path: Path) -> dict[str, bytes]:
    """Study A (2 CT + 1 MR instance in two series) and study B from M01; one M02 study; the destinations."""
    _node(app, "RETRIEVER", "M01", None, "find,move,get")
    _node(app, "DEST1", "M01", storescp[0], "store")
    _node(app, "FINDONLY", "M01", None, "find")
    _node(app, "M02PACS", "M02", None, "find,move,get,store")
    _node(app, "DEST2", "M02", _free_port(), "store")
    src = tmp_path / "src"
    src.mkdir()
    a1 = {"StudyInstanceUID": STUDY_A, "SeriesInstanceUID": SERIES_A1, "PatientID": "P1"}
    files = [
        synthetic.ct(src / "a1.dcm", **a1, InstanceNumber=1),
        synthetic.ct(src / "a2.dcm", **a1, InstanceNumber=2),
        synthetic.ct(src / "a3.dcm", StudyInstanceUID=STUDY_A, SeriesInstanceUID=SERIES_A2, PatientID="P1",
                     Modality="MR", SeriesNumber=2),
        synthetic.ct(src / "b1.dcm", StudyInstanceUID=STUDY_B, PatientID="P1"),
    ]  # fmt: skip
    assert store(scp.port, modality, files) == [status.SUCCESS] * 4
    foreign = synthetic.ct(src / "f.dcm", PatientID="P1")
    assert store(scp.port, "M02PACS", [foreign]) == [status.SUCCESS]
    stored = rows(app, select(Instance.sop_instance_uid, Instance.storage_key))
    return {uid: dataset_bytes(scp.ctx.store.path(key)) for uid, key in stored}


def _uid_of(path: Path) -> str:
    from pydicom import dcmread

    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def _move(scp: Running, aet: str, dest: str, model: str, ident: Dataset) -> list[tuple[int, Dataset]]:
    assoc = associate(scp.port, aet, [(model, [ExplicitVRLittleEndian])])
    assert assoc.is_established
    try:
        return [(int(st.Status), st) for st, _ in assoc.send_c_move(ident, dest, model)]
    finally:
        assoc.release()


def _ident(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


def test_dcm04_movescu_study_to_registered_destination_byte_for_byte(
    app: Flask, scp: Running, archive: dict[str, bytes], storescp: tuple[int, Path]
) -> None:
    res = dcmtk("movescu", "-v", "-S", "-aet", "RETRIEVER", "-aec", "TELERAD", "-aem", "DEST1",
                "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={STUDY_A}",
                "127.0.0.1", str(scp.port))  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    received = sorted(storescp[1].iterdir())
    assert len(received) == 3
    for path in received:  # the data set arrives exactly as stored
        assert dataset_bytes(path) == archive[_uid_of(path)]
    (ev,) = audit_events(app, "dicom_instances_retrieved")
    assert ev.details["destination"] == "DEST1"
    assert ev.details["studies"] == [STUDY_A]
    assert ev.details["instances"] == 3


def test_dcm04_move_levels_pending_and_final_counts(
    scp: Running, archive: dict[str, bytes], storescp: tuple[int, Path]
) -> None:
    series = _move(scp, "RETRIEVER", "DEST1", STUDY_ROOT_MOVE, _ident("SERIES", StudyInstanceUID=STUDY_A,
                   SeriesInstanceUID=SERIES_A1))  # fmt: skip
    assert [st for st, _ in series] == [status.PENDING, status.PENDING, status.SUCCESS]
    assert [int(r.NumberOfRemainingSuboperations) for _, r in series[:2]] == [1, 0]
    final = series[-1][1]
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (2, 0)
    image_uid = next(iter(sorted(storescp[1].iterdir())))
    image = _move(scp, "RETRIEVER", "DEST1", STUDY_ROOT_MOVE, _ident("IMAGE", StudyInstanceUID=STUDY_A,
                  SeriesInstanceUID=SERIES_A1, SOPInstanceUID=_uid_of(image_uid)))  # fmt: skip
    assert image[-1][0] == status.SUCCESS
    assert image[-1][1].NumberOfCompletedSuboperations == 1
    patient = _move(scp, "RETRIEVER", "DEST1", PATIENT_ROOT_MOVE, _ident("PATIENT", PatientID="P1"))
    assert patient[-1][0] == status.SUCCESS
    assert patient[-1][1].NumberOfCompletedSuboperations == 4  # M01's four, never M02's P1 (AC-08)
    sent = {_uid_of(p) for p in storescp[1].iterdir()}
    assert len(sent) == 4
    assert sent < set(archive)  # archive also holds M02's instance, which was not sent


def test_ac08_move_unknown_or_foreign_destination_a801(
    app: Flask, scp: Running, archive: dict[str, bytes], storescp: tuple[int, Path]
) -> None:
    ident = _ident("STUDY", StudyInstanceUID=STUDY_A)
    assert [st for st, _ in _move(scp, "RETRIEVER", "NOWHERE", STUDY_ROOT_MOVE, ident)] == [
        status.MOVE_DESTINATION_UNKNOWN
    ]
    # DEST2 is registered, with a port — but M02's
    assert [st for st, _ in _move(scp, "RETRIEVER", "DEST2", STUDY_ROOT_MOVE, ident)] == [
        status.MOVE_DESTINATION_UNKNOWN
    ]
    # M02 asks for M01's study to M01's destination: refused, and M01's study is invisible to M02 anyway
    assert [st for st, _ in _move(scp, "M02PACS", "DEST1", STUDY_ROOT_MOVE, ident)] == [status.MOVE_DESTINATION_UNKNOWN]
    codes = sorted(e.details.get("code") for e in audit_events(app, "security_alert") if e.details.get("op") == "move")
    assert codes == ["foreign_destination", "foreign_destination", "unknown_destination"]
    # … and to its own destination: nothing of M01's matches, nothing is sent
    own = _move(scp, "M02PACS", "DEST2", STUDY_ROOT_MOVE, ident)
    assert [st for st, _ in own] == [status.SUCCESS]
    assert own[0][1].NumberOfCompletedSuboperations == 0
    assert list(storescp[1].iterdir()) == []


def test_dsec01_move_and_get_not_allowed(
    app: Flask, scp: Running, archive: dict[str, bytes], storescp: tuple[int, Path]
) -> None:
    moved = _move(scp, "FINDONLY", "DEST1", STUDY_ROOT_MOVE, _ident("STUDY", StudyInstanceUID=STUDY_A))
    assert len(moved) == 1
    assert 0xC000 <= moved[0][0] <= 0xCFFF  # failure: unable to process (refused before any sub-operation)
    assoc = associate(scp.port, "FINDONLY", [(STUDY_ROOT_GET, [ExplicitVRLittleEndian])])
    try:
        got = [int(st.Status) for st, _ in assoc.send_c_get(_ident("STUDY", StudyInstanceUID=STUDY_A), STUDY_ROOT_GET)]
    finally:
        assoc.release()
    assert got == [status.REFUSED_NOT_AUTHORIZED]
    assert list(storescp[1].iterdir()) == []
    ops = sorted(e.details.get("op") for e in audit_events(app, "security_alert") if e.details.get("code") == "op")
    assert ops == ["get", "move"]


def test_dcm04_getscu_series_byte_for_byte_and_ac08(
    app: Flask, scp: Running, archive: dict[str, bytes], tmp_path: Path
) -> None:
    out = tmp_path / "got"
    out.mkdir()
    res = dcmtk("getscu", "-v", "-S", "-aet", "RETRIEVER", "-aec", "TELERAD", "-od", str(out),
                "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={STUDY_A}",
                "-k", f"SeriesInstanceUID={SERIES_A1}", "127.0.0.1", str(scp.port))  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    got = sorted(out.iterdir())
    assert len(got) == 2
    for path in got:
        assert dataset_bytes(path) == archive[_uid_of(path)]
    other = tmp_path / "other"
    other.mkdir()
    res = dcmtk("getscu", "-S", "-aet", "M02PACS", "-aec", "TELERAD", "-od", str(other),
                "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={STUDY_A}",
                "127.0.0.1", str(scp.port))  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert list(other.iterdir()) == []  # AC-08: M01's study does not exist for M02
    events = audit_events(app, "dicom_instances_retrieved")
    assert sorted((e.details["op"], e.details["instances"]) for e in events) == [("get", 0), ("get", 2)]


def test_img09_dcm04_get_after_migration_reads_from_the_new_storage_target(
    app: Flask, scp: Running, archive: dict[str, bytes], tmp_path: Path
) -> None:
    """An instance migrated to another storage target (IMG-09) is still retrieved byte for byte: C-GET reads the
    file on whichever target holds it, not the default store's path."""
    from engine.imaging import targets

    with app.app_context(), uow.unit_of_work():
        targets.create_target(Actor.system("test"), code="cold", name="近线存储", root_path=str(tmp_path / "cold"))
        targets.create_storage_task(Actor.system("test"), kind="migrate", source="local", target="cold", filter={})
    with app.app_context():
        targets.run_storage_tasks()
    assert not any(scp.ctx.store.exists(key) for _uid, key in rows(app, select(Instance.sop_instance_uid,
                                                                                   Instance.storage_key)))  # fmt: skip
    out = tmp_path / "got"
    out.mkdir()
    res = dcmtk("getscu", "-S", "-aet", "RETRIEVER", "-aec", "TELERAD", "-od", str(out),
                "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={STUDY_A}",
                "127.0.0.1", str(scp.port))  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    got = sorted(out.iterdir())
    assert len(got) == 3
    for path in got:
        assert dataset_bytes(path) == archive[_uid_of(path)]
