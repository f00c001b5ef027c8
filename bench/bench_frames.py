"""WADO-RS frame micro-benchmark (issue 16): per-frame server time of `…/instances/{i}/frames/1` for a member
hospital's 登记员, in process (Flask test client: no HTTP, no browser), with the decision cache off
(TELERAD_DICOMWEB_DECISION_TTL=0, every frame decided as before) and on (the configured TTL); prints ONE JSON object.

A fresh migrated database (SQLite file, or PostgreSQL database `telerad_bench_frames_<pid>` through tests/conftest.py's
admin URL), `--slices` small MR instances of one series stored for M01 through the archive's indexing path; each
frame fetched `--rounds` times in series order, wall time per request (median, p95 over all requests).
`--db sqlite|postgresql`. Not a test: no figure is asserted.
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

from pydicom import dcmread  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from engine import config  # noqa: E402
from tests import conftest as tc  # noqa: E402
from tests.dicom.archive import ingest  # noqa: E402
from tests.dicom.conftest import add_node, sample_file  # noqa: E402
from tests.factories import login, make_user  # noqa: E402

OCTET = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}


def _database(db: str, tmp: Path) -> tuple[str, str | None]:
    if db == "postgresql":
        name = f"telerad_bench_frames_{int(time.time())}"
        tc._pg_admin_exec(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://{tc.PG_USER}@{tc.PG_HOST}:{tc.PG_PORT}/{name}", name
    return f"sqlite:///{tmp / 'telerad.db'}", None


def run(db: str, slices: int, rounds: int) -> dict[str, Any]:
    from api.app import create_app

    tmp = Path(tempfile.mkdtemp(prefix="bench-frames-"))
    url, pg_name = _database(db, tmp)
    try:
        tc._migrate(url)
        tc._seed(url, tmp / "instance")
        app = create_app(tc.make_settings(url, tmp / "instance"))
        study, series = generate_uid(), generate_uid()
        datasets = []
        for _ in range(slices):
            ds = dcmread(sample_file("MR_small.dcm"))
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            datasets.append(ds)
        ingest(app, add_node(app, "MODALITY1"), datasets)
        urls = [f"/dicomweb/studies/{study}/series/{series}/instances/{ds.SOPInstanceUID}/frames/1" for ds in datasets]
        user = make_user(app, "registrar", institution_code="M01")
        out: dict[str, Any] = {}
        for label, ttl in (("cache_off", 0.0), ("cache_on", 5.0)):
            config.current().dicomweb_decision_ttl_s = ttl
            c = app.test_client()
            login(c, user)
            c.get(urls[0], headers=OCTET)  # warm the frame index and statement caches
            times = []
            for _ in range(rounds):
                for u in urls:
                    t0 = time.perf_counter()
                    r = c.get(u, headers=OCTET)
                    _ = r.data
                    times.append((time.perf_counter() - t0) * 1000)
                    if r.status_code != 200:
                        raise RuntimeError(f"{u}: {r.status_code} {r.data[:200]!r}")
            times.sort()
            out[label] = {
                "per_frame_ms_p50": round(statistics.median(times), 3),
                "per_frame_ms_p95": round(times[int(len(times) * 0.95) - 1], 3),
                "requests": len(times),
            }
        out["speedup_p50"] = round(out["cache_off"]["per_frame_ms_p50"] / out["cache_on"]["per_frame_ms_p50"], 2)
        from api.extensions import db as fdb

        with app.app_context():
            fdb.session.remove()
            fdb.engine.dispose()
        return out
    finally:
        if pg_name:
            tc._pg_admin_exec(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--slices", type=int, default=200)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    print(json.dumps({a.db: run(a.db, a.slices, a.rounds)}))


if __name__ == "__main__":
    main()
