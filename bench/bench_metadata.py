"""WADO-RS series metadata micro-benchmark (issue 16): server time of `…/series/{s}/metadata` for a `--slices`-slice
512×512 CT series, in process (Flask test client: no HTTP, no browser); prints ONE JSON object.

A fresh migrated database (SQLite file, or PostgreSQL database `telerad_bench_metadata_<time>` through
tests/conftest.py's admin URL); the slices stored for M01 through the archive's indexing path (tests/dicom/archive.py
`ingest`, which drains no outbox, so nothing is prebuilt: engine/dicomweb/prebuild.py), read by M01's 登记员. `first`:
nothing kept yet (no template in the database, the process's cache empty: every file's JSON built in the request, as
before issue 16 on every cold request); `cold`: the templates in the database, the process's cache emptied
(engine/dicomweb/metadata.py `forget`), as after a restart; `warm`: the same request again. Each without and with
`Accept-Encoding: gzip`. `previous_cold_ms_p50`: the route as before issue 16 (no template kept: metadata.templates
answering nothing, so every instance's JSON is built while the answer streams), the process's cache emptied.
`--profile N` prints the N costliest functions of the first request (cProfile) to stderr.
Not a test: no figure is asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import json
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from bench_frames import _database  # noqa: E402
from dicom_data import CT_IMAGE_STORAGE, _ct_header, _meta  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from tests import conftest as tc  # noqa: E402
from tests.dicom.archive import ingest  # noqa: E402
from tests.dicom.conftest import add_node  # noqa: E402
from tests.factories import login, make_user  # noqa: E402

JSON_ACCEPT = {"Accept": "application/dicom+json"}


def _slices(count: int) -> tuple[str, str, list[Any]]:
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    pixels = np.zeros((512, 512), np.int16).tobytes()
    out = []
    for i in range(count):
        ds = _ct_header(512, 512, study, series, frame)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta = _meta(CT_IMAGE_STORAGE, ds.SOPInstanceUID)
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [-179.2, -179.2, -float(i)]
        ds.SliceLocation = -float(i)
        ds.PixelData = pixels
        out.append(ds)
    return study, series, out


def _drop_templates(app: Any) -> None:
    from sqlalchemy import text

    from engine import uow

    with app.app_context(), uow.unit_of_work() as s:
        s.execute(text("DELETE FROM dicomweb_instance_metadata"))


def run(db: str, slices: int, rounds: int, profile: int) -> dict[str, Any]:
    from api.app import create_app
    from engine.dicomweb import metadata

    tmp = Path(tempfile.mkdtemp(prefix="bench-metadata-"))
    url, pg_name = _database(db, tmp)
    try:
        tc._migrate(url)
        tc._seed(url, tmp / "instance")
        app = create_app(tc.make_settings(url, tmp / "instance"))
        study, series, datasets = _slices(slices)
        t0 = time.perf_counter()
        ingest(app, add_node(app, "MODALITY1"), datasets)
        ingest_s = time.perf_counter() - t0
        user = make_user(app, "registrar", institution_code="M01")
        c = app.test_client()
        login(c, user)
        path = f"/dicomweb/studies/{study}/series/{series}/metadata"
        out: dict[str, Any] = {"slices": slices, "ingest_s": round(ingest_s, 2)}
        # before issue 16: nothing kept but the process's cache, every file's JSON built in the cold request
        kept_templates = metadata.templates
        metadata.templates = lambda refs: {}  # type: ignore[assignment]
        previous = []
        for _ in range(rounds):
            metadata.forget()
            t0 = time.perf_counter()
            r = c.get(path, headers=JSON_ACCEPT)
            _ = r.data
            previous.append((time.perf_counter() - t0) * 1000)
        metadata.templates = kept_templates  # type: ignore[method-assign]
        out["previous_cold_ms_p50"] = round(statistics.median(previous), 1)
        for label, headers in (("identity", JSON_ACCEPT), ("gzip", {**JSON_ACCEPT, "Accept-Encoding": "gzip"})):
            first, cold, warm = [], [], []
            size = 0
            for _ in range(rounds):
                _drop_templates(app)
                metadata.forget()
                for times in (first, cold, warm):
                    if times is cold:
                        metadata.forget()
                    t0 = time.perf_counter()
                    r = c.get(path, headers=headers)
                    body = r.data
                    times.append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200, (r.status_code, body[:200])
                    size = len(body)
            if r.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            assert len(json.loads(body)) == slices
            out[label] = {
                "first_ms_p50": round(statistics.median(first), 1),
                "cold_ms_p50": round(statistics.median(cold), 1),
                "warm_ms_p50": round(statistics.median(warm), 1),
                "bytes": size,
                "content_encoding": r.headers.get("Content-Encoding", ""),
            }
        if profile:
            _drop_templates(app)
            metadata.forget()
            prof = cProfile.Profile()
            prof.enable()
            _ = c.get(path, headers=JSON_ACCEPT).data
            prof.disable()
            pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(profile)
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
    p.add_argument("--slices", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", type=int, default=0)
    a = p.parse_args()
    print(json.dumps({a.db: run(a.db, a.slices, a.rounds, a.profile)}))


if __name__ == "__main__":
    main()
