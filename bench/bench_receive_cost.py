"""What the WADO-RS metadata prebuilder (engine/dicomweb/prebuild.py; issue 16) adds to the receive path: in-process
`Receiver.receive` of `--count` small instances (tests/dicom/archive.py small_series: tiny CTs of one series) with
the prebuilder off and on, alternately `--rounds` times, each on a fresh database; prints ONE JSON object.

Per run: wall and process CPU milliseconds per instance of the receive loop (files written beforehand), and with the
prebuilder on, how long after the last receipt every template was kept (`templates_ready_s`). `--db sqlite|postgresql`.
Not a test: no figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_frames import _database  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from tests import conftest as tc  # noqa: E402
from tests.dicom import archive  # noqa: E402
from tests.dicom.conftest import add_node  # noqa: E402


def one(db: str, count: int, prebuild: bool) -> dict[str, Any]:
    from api.app import create_app
    from dicom import receiving
    from engine import uow
    from engine.dicomweb.models import InstanceMetadata
    from engine.imaging.ingest import IngestState
    from engine.imaging.source import Source

    tmp = Path(tempfile.mkdtemp(prefix="bench-receive-cost-"))
    url, pg_name = _database(db, tmp)
    try:
        tc._migrate(url)
        tc._seed(url, tmp / "instance")
        settings = tc.make_settings(url, tmp / "instance")
        app = create_app(settings)
        node = archive.node_info(app, add_node(app, "MODALITY1"))
        incoming = settings.storage_dir / "dicom" / "tmp"
        incoming.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, ds in enumerate(archive.small_series(count)):
            path = incoming / f"in-{i}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        rx = receiving.receiver(app, settings)
        pre = rx.prebuild
        if not prebuild:
            rx.prebuild = None
        state = IngestState(Source.device(node, "127.0.0.1", via="c-store"))
        cpu0, t0 = time.process_time(), time.perf_counter()
        for path in paths:
            rx.receive(state, path)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        out: dict[str, Any] = {
            "wall_ms_per_instance": round(wall * 1000 / count, 3),
            "cpu_ms_per_instance": round(cpu * 1000 / count, 3),
        }
        if prebuild and pre is not None:
            t1 = time.perf_counter()
            while True:
                with app.app_context(), uow.unit_of_work() as s:
                    kept = s.execute(select(func.count()).select_from(InstanceMetadata)).scalar_one()
                if kept >= count or time.perf_counter() - t1 > 120:
                    break
                time.sleep(0.1)
            out["templates_ready_s"] = round(time.perf_counter() - t1, 2)
            out["templates_kept"] = kept
        receiving.close(rx)
        if pre is not None and not prebuild:
            pre.close()
        from api.extensions import db as fdb

        with app.app_context():
            with uow.unit_of_work() as s:
                s.execute(text("SELECT 1"))
            fdb.session.remove()
            fdb.engine.dispose()
        return out
    finally:
        if pg_name:
            tc._pg_admin_exec(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for _ in range(a.rounds):
        for label in ("off", "on"):
            runs[label].append(one(a.db, a.count, label == "on"))
    out: dict[str, Any] = {"count": a.count, "runs": runs}
    for key in ("wall_ms_per_instance", "cpu_ms_per_instance"):
        off = statistics.median(r[key] for r in runs["off"])
        on = statistics.median(r[key] for r in runs["on"])
        out[key] = {"off": off, "on": on, "added": round(on - off, 3)}
    print(json.dumps({a.db: out}))


if __name__ == "__main__":
    main()
