"""Viewer benchmark (issue 16): a central doctor opens studies in telerad's viewer in headless Debian Chromium;
prints ONE JSON object `{"sqlite": {…}, "postgresql": {…}}`.

Per database: a real telerad — `telerad web` (waitress) started through bench/timed_web.py, which times every request
on the server, and `telerad dicom` for loading — on loopback with its own instance directory and an SQLite file or a
fresh PostgreSQL database `telerad_bench_viewer_<pid>` (bench/bench_dicom.py's set-up, TELERAD_BENCH_PG_ADMIN_URL).
Loaded by C-STORE (dcmtk storescu): a `--slices`-slice 512×512 16-bit CT stored uncompressed, the same CT stored
JPEG lossless SV1 (dcmcjpeg; another study) and a two-image DR study (3000×2400, uncompressed) — bench/dicom_data.py.
A member hospital's 登记员 (M01) submits a case per study (patient number = the study's PatientID, so the study is
the case patient's), and a central 初级报告医生 claims each case's task: the doctor of the issue, "with the case
assigned", who sees the studies through engine/visibility.py like any doctor.

Per dataset and round, a fresh browser context (empty cache), log in on /login, then a full navigation to
`/viewer/studies/<StudyInstanceUID>`; all times are the page's performance.now() (from navigation start):
- `first_image_ms`: the viewer's `stats.firstImageMs` (the study's first real pixels on screen: the boot preview's
  server-rendered first slice, web/src/boot/preview.ts, or Cornerstone's first render, whichever came first; round 0
  also screenshots the screen and checks the largest canvas on it is not blank: `first_image_nonblank`);
- `first_diagnostic_image_ms`: `stats.firstDiagnosticImageMs`, Cornerstone's first rendered image (round 0: a
  screenshot then too, `first_diagnostic_nonblank`); `dr_first_diagnostic_image_ms` for the DR study;
- `all_images_ms`: `stats.allImagesMs` (every image decoded in the cache);
- `dr_two_images_ms`: for the DR study, when both images are decoded and rendered (max of firstImageMs, allImagesMs
  and viewportsShownMs — every viewport of the opening layout has rendered its image);
  null (and why in `missing`) while the viewer opens it showing one image only — its stats cover the displayed
  series — with `dr_first_image_ms` (the first one rendered) beside it;
- `scroll_fps`: `__teleradViewer.scroll(1)` then one animation frame, `--scroll-steps` (200) slices through the
  loaded stack;
- `breakdown`: where the time went in the median round (by all_images_ms) — document and app start-up, the first
  frame's request (queued, waiting, server, transfer) and what followed it until the first image (decode + render),
  then for all frames: requests, bytes, the span from the first request to the last byte, the server's own time
  (bench/timed_web.py: `app_ms` before the first byte, `total_ms` to the last byte; summed and p50/p95), transfer
  (Resource Timing responseEnd − responseStart), the browser's queueing, and the viewer's decodeMsTotal and
  fetchMsTotal; the same per kind of request (metadata, frames — one frame each —, pixeldata — a series' frames in
  one multipart answer —, QIDO, other);
- `server_rss_mb`: the web process's RSS (/proc, every 50 ms) before the first study and its peak while serving.
Medians over `--rounds`; every round's figures are in `rounds`. Round 0 finds the server's per-process caches
(frame index, metadata) cold, later rounds warm — its figures again in `server_cold_round` (a study opened for the
first time since the server started); the browser's cache is empty in every round.

A figure that cannot be measured (the viewer not built, a timeout) is null with the reason in `missing`.
Targets (issue 16, UX R18): first_image_ms ≤ 300, all_images_ms ≤ 5,000, dr_two_images_ms ≤ 1,000.

`--db sqlite|postgresql|both`, `--slices N`, `--rounds N`, `--data DIR` (generated data kept and reused),
`--port-base N` (HTTP ports from N, DICOM from N+3000), `--datasets` (subset), `--keep`, `--shots DIR`.
Needs dcmtk, Debian's chromium and a built web/dist (`make setup`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import bench_dicom as bd  # noqa: E402
import bench_dicomweb as bdw  # noqa: E402
import dicom_data  # noqa: E402
import viewer_page  # noqa: E402

CHROMIUM = os.environ.get("TELERAD_CHROMIUM", "/usr/bin/chromium")
TARGETS = {"first_image_ms": 300, "all_images_ms": 5000, "dr_two_images_ms": 1000}
# name in the JSON → directory under --data, storescu extra arguments (propose JPEG lossless for the compressed CT)
DATASETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ct_uncompressed": ("ct_raw", ()),
    "ct_jpeg_lossless": ("ct_jpll", ("-xs",)),
    "dr": ("dr", ()),
}


def log(msg: str) -> None:
    print(f"[bench-viewer] {msg}", file=sys.stderr, flush=True)


class Server(bdw.Telerad):
    """bench_dicomweb's telerad (SCP + web, a 登记员 of M01), its web process timing every request."""

    def __init__(self, workdir: Path, db_url: str) -> None:
        super().__init__(workdir, db_url, None)
        self.timing_log = workdir / "requests.jsonl"
        self.timing_log.touch()
        self.env["TELERAD_BENCH_TIMING_LOG"] = str(self.timing_log)

    def web_command(self) -> list[str]:
        return [str(bd.VENV_BIN / "python"), str(ROOT / "bench" / "timed_web.py")]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def requests_since(self, offset: int) -> list[dict[str, Any]]:
        with self.timing_log.open("rb") as fh:
            fh.seek(offset)
            return [json.loads(line) for line in fh.read().splitlines() if line.strip()]


# -- data ------------------------------------------------------------------------------------------------------------
def generate(shared: Path, slices: int, names: list[str]) -> float:
    """The datasets under `shared`, each generated once (a stamp file per dataset and size)."""
    t0 = time.perf_counter()
    makers = {
        "ct_raw": lambda d: dicom_data.write_ct_slices(d, slices),
        "ct_jpll": lambda d: dicom_data.write_ct_jpeg_lossless(d, slices),
        "dr": dicom_data.write_dr_study,
    }
    for key in names:
        sub = DATASETS[key][0]
        stamp = shared / f".{sub}-{slices if sub != 'dr' else 2}"
        if stamp.exists():
            continue
        shutil.rmtree(shared / sub, ignore_errors=True)
        log(f"generating {sub}")
        makers[sub](shared / sub)
        stamp.write_text("")
    return round(time.perf_counter() - t0, 1)


def study_of(directory: Path) -> dict[str, Any]:
    import pydicom

    files = sorted(directory.iterdir())
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    return {
        "study_uid": str(ds.StudyInstanceUID),
        "patient_id": str(ds.PatientID),
        "accession": str(ds.AccessionNumber),
        "modality": str(ds.Modality),
        "images": len(files),
        "bytes": sum(f.stat().st_size for f in files),
    }


def assign_cases(server: Server, studies: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A case per study submitted by the 登记员 (patient number = PatientID) and its open task claimed by a new
    central 初级报告医生; the doctor's credentials."""
    _, reg = server.http()
    doctor = server.make_user("report_l1", "CENTRAL")
    _, doc = server.http(doctor)
    case_ids = set()
    for key, st in studies.items():
        body: dict[str, Any] = {
            "patient": {"patient_no": st["patient_id"], "name": f"基准{key}", "sex": "M", "birth_date": "1970-01-01"},
            "exams": [
                {
                    "modality": st["modality"],
                    "body_part": "胸部",
                    "exam_item": "胸部检查",
                    "accession_no": st["accession"],
                }
            ],
            "clinical_info": "基准测试",
        }
        r = reg.post(f"{server.base}/api/cases", json=body, timeout=60)
        if r.status_code != 201:
            raise RuntimeError(f"creating the case failed: {r.status_code} {r.text[:300]}")
        case_ids.add(r.json()["id"])
    r = doc.get(f"{server.base}/api/tasks", params={"scope": "pool", "page_size": "100"}, timeout=60)
    r.raise_for_status()
    tasks = [t for t in r.json()["items"] if t.get("case_id") in case_ids]
    if {t["case_id"] for t in tasks} != case_ids:
        raise RuntimeError(f"the doctor's pool lacks the cases' tasks: {r.json()['items']}")
    for t in tasks:
        c = doc.post(f"{server.base}/api/tasks/{t['id']}/claim", timeout=60)
        if c.status_code != 200:
            raise RuntimeError(f"claiming task {t['id']} failed: {c.status_code} {c.text[:300]}")
    for st in studies.values():  # the doctor sees each study, all its instances, before any browser is started
        r = doc.get(f"{server.base}/dicomweb/studies/{st['study_uid']}/instances", timeout=120)
        if r.status_code != 200 or len(r.json()) != st["images"]:
            raise RuntimeError(f"the doctor does not see study {st['study_uid']}: {r.status_code} {r.text[:200]}")
    return doctor


# -- one database -----------------------------------------------------------------------------------------------
def run_section(db: str, args: argparse.Namespace, shared: Path) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"bench-viewer-{db}-", dir=args.tmp))
    url = bd.pg_database() if db == "postgresql" else f"sqlite:///{work / 'telerad.db'}"
    server = Server(work, url)
    if args.ports is not None:
        server.port = args.ports.dicom_port()
        server.env["TELERAD_DICOM_PORT"] = str(server.port)
    out: dict[str, Any] = {"missing": {}}
    try:
        server.start()
        studies: dict[str, dict[str, Any]] = {}
        seed: dict[str, Any] = {"method": "C-STORE (storescu)"}
        for key in args.datasets:
            sub, extra = DATASETS[key]
            studies[key] = study_of(shared / sub)
            res = bd.store(server, [shared / sub], f"seed-{sub}", extra=extra)
            if res["failures"] or res["ok"] != studies[key]["images"]:
                raise RuntimeError(f"loading {sub}: {res['ok']}/{studies[key]['images']} stored, {res['failures']}")
            seed[f"{key}_s"] = round(res["seconds"], 1)
        out["seed"] = seed
        doctor = assign_cases(server, studies)
        page_env = viewer_page.PageEnv(
            base=server.base,
            user=doctor,
            chromium=CHROMIUM,
            timeout_s=args.timeout,
            scroll_steps=args.scroll_steps,
            shots=Path(args.shots) / db if args.shots else None,
        )
        rss0 = bd.tree_memory_kib(server.web.pid)[0] / 1024
        rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in studies}
        peak_kib = 0
        with viewer_page.Browser(page_env) as browser:
            for rnd in range(args.rounds):
                for key, st in studies.items():
                    sampler = bd.RssSampler(server.web.pid)
                    mark: dict[str, int] = {}

                    def navigating(sampler: bd.RssSampler = sampler, mark: dict[str, int] = mark) -> None:
                        mark["offset"] = server.timing_log.stat().st_size  # the log-in's requests left out
                        sampler.start()

                    try:
                        one = browser.open_study(st, key, rnd, navigating)
                    finally:
                        if sampler.is_alive():
                            sampler.stop()
                    offset = mark.get("offset", server.timing_log.stat().st_size)
                    peak_kib = max(peak_kib, sampler.peak_kib)
                    one["server_rss_peak_mb"] = round(sampler.peak_kib / 1024, 1)
                    one["breakdown"]["server_log"] = viewer_page.server_summary(server.requests_since(offset))
                    rounds[key].append(one)
                    log(f"{db} round {rnd} {key}: " + viewer_page.brief(one))
        out["datasets"] = {k: summarise(k, st, rounds[k]) for k, st in studies.items()}
        for k, v in out["datasets"].items():
            for name, why in v.pop("missing", {}).items():
                out["missing"][f"{k}.{name}"] = why
        ct = out["datasets"].get("ct_uncompressed", {})
        dr = out["datasets"].get("dr", {})
        out["first_image_ms"] = ct.get("first_image_ms")
        out["first_diagnostic_image_ms"] = ct.get("first_diagnostic_image_ms")
        out["all_images_ms"] = ct.get("all_images_ms")
        out["scroll_fps"] = ct.get("scroll_fps")
        out["dr_two_images_ms"] = dr.get("dr_two_images_ms")
        out["targets"] = TARGETS
        out["meets_targets"] = meets(out["datasets"])
        out["server_rss_mb"] = {"before": round(rss0, 1), "peak_serving": round(peak_kib / 1024, 1)}
    finally:
        try:
            server.stop()
        except Exception as exc:  # noqa: BLE001 - the database and files are cleaned up all the same
            log(f"stopping telerad: {exc}")
        if db == "postgresql" and not args.keep:
            bd.pg_drop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return out


def summarise(key: str, study: dict[str, Any], rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds, the median round's breakdown, every round's figures."""
    figures = (
        ("first_image_ms", "first_diagnostic_image_ms", "all_images_ms", "scroll_fps")
        if key != "dr"
        else ("dr_two_images_ms", "dr_first_image_ms", "dr_first_diagnostic_image_ms")
    )
    out: dict[str, Any] = {"images": study["images"], "stored_mb": round(study["bytes"] / 2**20, 1), "missing": {}}
    for f in figures:
        vals = [r[f] for r in rounds if r.get(f) is not None]
        out[f] = round(statistics.median(vals), 1) if vals else None
        if out[f] is None:
            out["missing"][f] = next((r["missing"][f] for r in rounds if f in r.get("missing", {})), "not measured")
    if rounds:  # round 0: the server's per-process caches (series metadata, frame index) still cold
        out["server_cold_round"] = {f: rounds[0].get(f) for f in figures}
    by = "all_images_ms" if key != "dr" else "dr_first_image_ms"
    done = sorted((r for r in rounds if r.get(by) is not None), key=lambda r: r[by])
    out["breakdown"] = done[len(done) // 2]["breakdown"] if done else (rounds[0]["breakdown"] if rounds else None)
    out["first_image_nonblank"] = rounds[0].get("first_image_nonblank") if rounds else None
    out["first_diagnostic_nonblank"] = rounds[0].get("first_diagnostic_nonblank") if rounds else None
    out["images_shown"] = rounds[0].get("images_shown") if rounds else None
    out["rounds"] = [{k: v for k, v in r.items() if k != "breakdown"} for r in rounds]
    return out


def meets(datasets: dict[str, Any]) -> dict[str, bool | None]:
    out: dict[str, bool | None] = {}
    for key, d in datasets.items():
        for f, limit in TARGETS.items():
            if f in d:
                out[f"{key}.{f}"] = None if d[f] is None else d[f] <= limit
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--slices", type=int, default=1000, help="512×512 CT slices of each CT series")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated: " + ",".join(DATASETS))
    ap.add_argument("--scroll-steps", type=int, default=200, help="slices scrolled for scroll_fps (0: the whole stack)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds to wait for a study's images")
    ap.add_argument("--data", default=None, help="generated data kept here and reused when present")
    ap.add_argument("--port-base", type=int, default=None, help="HTTP ports from here, DICOM ports from here+3000")
    ap.add_argument("--shots", default=None, help="directory for round 0's screenshots (per database)")
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if not set(args.datasets) <= set(DATASETS):
        sys.exit(f"--datasets: unknown {sorted(set(args.datasets) - set(DATASETS))}")
    args.ports = None
    if args.port_base is not None:
        args.ports = bdw.Ports(args.port_base)
        bd.free_port = args.ports.http_port
    for tool in ("storescu", "echoscu", "dcmcjpeg"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: run `bash scripts/system-deps.sh` (dcmtk)")
    if not Path(CHROMIUM).exists():
        sys.exit(f"Chromium not found at {CHROMIUM} (TELERAD_CHROMIUM): `bash scripts/system-deps.sh`")
    if not (ROOT / "web" / "dist" / "index.html").exists():
        sys.exit("web/dist is not built: run `make web`")
    bd.PG_DB = f"telerad_bench_viewer_{os.getpid()}"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    shared = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="bench-viewer-data-", dir=args.tmp))
    shared.mkdir(parents=True, exist_ok=True)
    try:
        generated = generate(shared, args.slices, args.datasets)
        results: dict[str, Any] = {}
        for db in dbs:
            section = run_section(db, args, shared)
            section["env"] = {
                "cpus": os.cpu_count(),
                "load1": round(os.getloadavg()[0], 2),
                "data_generation_s": generated,
                "chromium": bd.tool_version([CHROMIUM, "--version"]),
                "rounds": args.rounds,
                "run": uuid.uuid4().hex[:8],
            }
            results[db] = section
    finally:
        if not args.keep and not args.data:
            shutil.rmtree(shared, ignore_errors=True)
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
