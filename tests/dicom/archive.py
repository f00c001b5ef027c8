"""Test helpers for routing, forwarding and storage targets: index instances straight into the archive (the receive
service's own indexing step, engine/imaging/receive.py `index`), start a forward destination process, run the worker
in-process (REQ: IMG-08, IMG-09)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path
from typing import Any

from flask import Flask
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from engine import config, uow
from engine.imaging import ingest as imaging_ingest
from engine.imaging import receive, services, targets
from engine.imaging.source import Source
from engine.imaging.storage import ObjectStore
from tests.dicom import synthetic

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_info(app: Flask, node_id: int) -> services.NodeInfo:
    with app.app_context(), uow.unit_of_work():
        for node, code in services.list_nodes():
            if node.id == node_id:
                return services._info(node, code)
    raise LookupError(node_id)


def _meta(ds: Dataset) -> imaging_ingest.InstanceMeta:
    return imaging_ingest.InstanceMeta(
        sop_class_uid=str(ds.SOPClassUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        study_instance_uid=str(ds.StudyInstanceUID),
        series_instance_uid=str(ds.SeriesInstanceUID),
        transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
        patient_id=str(ds.get("PatientID", "")),
        modality=str(ds.get("Modality", "")),
        body_part=str(ds.get("BodyPartExamined", "")),
        study_description=str(ds.get("StudyDescription", "")),
        series_description=str(ds.get("SeriesDescription", "")),
        instance_number=int(ds.get("InstanceNumber", 1) or 1),
    )


def ingest(app: Flask, node_id: int, datasets: list[Dataset], route: bool = False) -> list[int]:
    """Store and index datasets as if `node_id` had sent them (one unit of work); the instance ids. `route`: matched
    and routed as the receive service does (engine/imaging/receive.py `index`); otherwise only the rows."""
    node = node_info(app, node_id)
    ids: list[int] = []
    with app.app_context():
        store = ObjectStore(config.current().storage_dir / "dicom")
        state = imaging_ingest.IngestState(Source.device(node, "127.0.0.1", via="c-store"))
        with uow.unit_of_work():
            for ds in datasets:
                buf = BytesIO()
                ds.save_as(buf, enforce_file_format=True)
                stored = store.write_stream([buf.getvalue()])
                meta = _meta(ds)
                if route:
                    result = receive.index(state, stored, meta)
                else:
                    result = imaging_ingest.ingest_instance(state, stored, meta)
                assert result.instance_id is not None
                ids.append(result.instance_id)
    return ids


def small_series(n: int, **tags: Any) -> list[Dataset]:
    """`n` tiny CT instances of one study and series (fresh UIDs)."""
    study, series = generate_uid(), generate_uid()
    modality = str(tags.pop("Modality", "CT"))
    out = []
    for i in range(n):
        ds = synthetic.image(synthetic.base(synthetic.CT_IMAGE, modality=modality))
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study, series, i + 1
        for k, v in tags.items():
            setattr(ds, k, v)
        out.append(ds)
    return out


def from_file(path: Path, **tags: Any) -> Dataset:
    ds = dcmread(path)
    ds.StudyInstanceUID = tags.pop("StudyInstanceUID", generate_uid())
    ds.SeriesInstanceUID = tags.pop("SeriesInstanceUID", generate_uid())
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for k, v in tags.items():
        setattr(ds, k, v)
    return ds


class Peer:
    """tests/dicom/forward_peer.py as a process; restartable on the same port."""

    def __init__(self, tmp: Path, aet: str = "DEST") -> None:
        self.port = free_port()
        self.aet = aet
        self.log = tmp / f"received-{aet}.txt"
        self.log.touch()
        self.proc: subprocess.Popen[str] | None = None

    def start(self, die_at: int = 0) -> None:
        args = [sys.executable, "-m", "tests.dicom.forward_peer", str(self.port), self.aet, str(self.log)]
        if die_at:
            args.append(str(die_at))
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # noqa: S603
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # listening?
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("forward peer did not start")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.terminate()
            self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def received(self) -> list[tuple[str, str]]:
        lines = self.log.read_text(encoding="ascii").splitlines()
        return [tuple(line.split(" ", 1)) for line in lines if line]  # type: ignore[misc]


def builtin_store(app: Flask) -> ObjectStore:
    with app.app_context():
        return ObjectStore(targets.builtin_root())
