"""DICOM test fixtures: the SCP on a free loopback port against the per-test database, real dcmtk and pynetdicom
peers (STYLE.md §8: real associations, only synthetic or anonymized files)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from dicom import scp as scp_mod
from dicom.scu import nodelay
from engine import config, uow
from engine.actor import Actor
from engine.audit import AuditEvent
from engine.imaging import services

DCMTK = Path("/usr/bin")  # Debian's dcmtk; .venv/bin holds pynetdicom's apps of the same names
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def dcmtk(tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a dcmtk tool (echoscu, storescu, findscu, …) with TCP_NODELAY, capturing its output."""
    return subprocess.run(
        [str(DCMTK / tool), *args], env=DCMTK_ENV, capture_output=True, text=True, timeout=timeout, check=False
    )


def sample_file(name: str) -> Path:
    """A file bundled with pydicom (never downloaded)."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not bundled")
    return Path(str(path))


def fresh_copy(src: Path, dest: Path, **tags: Any) -> Path:
    """A copy of `src` with new Study/Series/SOP Instance UIDs (or the given tag values), transfer syntax kept."""
    ds = dcmread(src)
    ds.StudyInstanceUID = tags.pop("StudyInstanceUID", generate_uid())
    ds.SeriesInstanceUID = tags.pop("SeriesInstanceUID", generate_uid())
    ds.SOPInstanceUID = tags.pop("SOPInstanceUID", generate_uid())
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(dest, enforce_file_format=True)
    return dest


def add_node(
    app: Flask,
    aet: str,
    *,
    institution: str = "M01",
    host: str = "127.0.0.1",
    allow: str = "echo,store,find",
    **kw: Any,
) -> int:
    with app.app_context(), uow.unit_of_work():
        node = services.create_node(
            Actor.system("test"), aet=aet, host=host, port=None, institution_code=institution, allow=allow, **kw
        )
        return node.id


def scalar(app: Flask, stmt: Any) -> Any:
    with app.app_context():
        try:
            return uow.session().execute(stmt).scalar()
        finally:
            uow.session().rollback()


def rows(app: Flask, stmt: Any) -> list[Any]:
    with app.app_context():
        try:
            return list(uow.session().execute(stmt).all())
        finally:
            uow.session().rollback()


def audit_events(app: Flask, event_type: str) -> list[AuditEvent]:
    with app.app_context():
        s = uow.session()
        found = list(s.execute(select(AuditEvent).where(AuditEvent.event_type == event_type)).scalars())
        s.expunge_all()
        s.rollback()
        return found


def worker_applies_ingest_events(app: Flask) -> int:
    """Run the worker's `ingest_events` job now (telerad/jobs.py): the outbox rows the receive service wrote become
    their audit events and exam matches (engine/imaging/events.py). Returns how many were applied."""
    from engine.imaging import events

    with app.app_context():
        return events.drain()


def count(app: Flask, model: Any, *where: Any) -> int:
    return int(scalar(app, select(func.count()).select_from(model).where(*where)) or 0)


@pytest.fixture
def scp(app: Flask, settings: config.Settings) -> Iterator[scp_mod.Running]:
    """The SCP of this test, on 127.0.0.1 and a free port, sharing the test's app and database."""
    running = scp_mod.start(app, settings, host="127.0.0.1", port=0)
    yield running
    running.stop()


@pytest.fixture
def modality(app: Flask) -> str:
    """A registered device of member hospital M01 that may echo, store and find."""
    add_node(app, "MODALITY1")
    return "MODALITY1"


def associate(port: int, aet: str, contexts: list[tuple[str, list[str]]], called: str = "TELERAD") -> Any:
    """A pynetdicom SCU association to the SCP (the caller releases it)."""
    from pynetdicom import AE

    ae = AE(ae_title=aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 15
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, syntaxes)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    # TCP_NODELAY, as telerad's own SCU: with Nagle on, each C-STORE's data PDU waits ~40 ms for the SCP's delayed
    # ACK (issue 13: the crash test's 750 sends per case took 64 s)
    nodelay(assoc)
    return assoc


def store(port: int, aet: str, items: list[Any], called: str = "TELERAD") -> list[int | None]:
    """C-STORE files or datasets over one pynetdicom association; the status of each (None: no response)."""
    from pynetdicom import _config

    raw = _config.STORE_SEND_CHUNKED_DATASET  # then files are sent as their bytes, not re-encoded
    datasets = [dcmread(i, stop_before_pixels=raw) if isinstance(i, str | Path) else i for i in items]
    pairs = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets})
    assoc = associate(port, aet, [(c, [t]) for c, t in pairs], called)
    assert assoc.is_established, "association was not accepted"
    out: list[int | None] = []
    try:
        for item, ds in zip(items, datasets, strict=True):
            rsp = assoc.send_c_store(str(item) if raw and isinstance(item, str | Path) else ds)
            out.append(int(rsp.Status) if "Status" in rsp else None)
    finally:
        assoc.release()
    return out


def echo_ok(port: int, aet: str) -> bool:
    """C-ECHO with dcmtk's echoscu: the SCP is alive and answering (after every bad input)."""
    res = dcmtk("echoscu", "-v", "-aet", aet, "-aec", "TELERAD", "127.0.0.1", str(port))
    return res.returncode == 0 and "(Success)" in res.stdout + res.stderr


def dataset_bytes(path: Path) -> bytes:
    """The data set of a Part-10 file, after its File Meta Information (group 0002, explicit VR LE)."""
    raw = Path(path).read_bytes()
    assert raw[128:132] == b"DICM"
    assert raw[132:136] == b"\x02\x00\x00\x00"  # (0002,0000) group length
    group_len = int.from_bytes(raw[140:144], "little")
    return raw[144 + group_len :]
