"""DICOMweb benchmark (issue 15): telerad's /dicomweb against Debian's Orthanc 1.10.1 with its DICOMweb plugin
(package orthanc-dicomweb; `bash scripts/system-deps.sh` installs it), same data, same run, same HTTP client
(`requests`, one pooled session per archive), the two archives alternating; prints ONE JSON object
`{"sqlite": {…}, "postgresql": {…}}`.

Keys per database (ratios telerad/Orthanc; throughput ratios: higher is better for telerad, latency ratios: lower):
- `stow_per_s`, `stow_ratio_vs_orthanc`: instances stored per second, STOW-RS of small instances (bench/dicom_data.py
  write_small) in requests of `--stow-batch` instances, `--stow-threads` clients in parallel, medians over rounds.
- `wado_frames_per_s`, `wado_frames_ratio_vs_orthanc`: frames per second, WADO-RS `…/frames/1` of every instance of a
  `--slices`-slice 512×512 16-bit CT series, `--wado-threads` clients; `wado_by_storage` holds both storage kinds
  (`uncompressed`, `jpeg_lossless`: the same series compressed by dcmcjpeg, frames asked as stored,
  `transfer-syntax=*`); the top-level keys are the uncompressed series'.
- `qido_p50_ms`, `qido_ratio_vs_orthanc`: median latency of STUDY-level QIDO-RS (PatientName wildcard + one-year
  StudyDate range; bench/dicom_data.py find_queries) over `--studies` studies.
- `metadata_ms`, `metadata_ratio_vs_orthanc`: WADO-RS series metadata of the CT series, median.
- `seed`: how the studies were loaded (C-STORE by dcmtk's storescu into both archives' SCPs) and how long it took.

A figure whose endpoint telerad does not serve (yet) is null, with the reason in `missing` — never a made-up number.

Knobs for working on one figure (the keys stay the same; a part not run is null and named in `missing`):
`--parts stow,wado,metadata,qido`; `--data DIR` keeps the generated data there and reuses it on the next run;
`--port-base N` takes the HTTP ports from N… and the DICOM ports from N+3000… instead of kernel-chosen ones;
`--pg-db NAME` the PostgreSQL scratch database; `--profile DIR` records telerad's web process with py-spy
(`--py-spy PATH`) during each measured part, one raw (collapsed stacks) file per database and part.
Reuses bench/bench_dicom.py's archives (Orthanc's configuration, telerad's SCP and database set-up) and data.
`--studies 200 --slices 50` is a smoke run; the issue's figures are for 10,000 studies and 1,000 slices.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import bench_dicom as bd  # noqa: E402
import dicom_data  # noqa: E402

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
PG_DB = "telerad_bench_dicomweb"
BOUNDARY = "telerad-bench-dicomweb"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
PARTS = ("stow", "wado", "metadata", "qido")


def log(msg: str) -> None:
    bd.log(msg)


class Orthanc(bd.OrthancPeer):
    """bench_dicom's Orthanc, with the DICOMweb plugin loaded at /dicom-web."""

    def start(self, extra: dict[str, Any] | None = None) -> None:
        plugin = {"Plugins": [str(PLUGIN)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Ssl": False}}
        super().start({**plugin, **(extra or {})})

    def http(self) -> tuple[str, requests.Session]:
        s = requests.Session()
        s.auth = ("bench", self.http_password)
        return f"http://127.0.0.1:{self.http_port}/dicom-web", s


class Telerad(bd.TeleradPeer):
    """bench_dicom's telerad SCP (for seeding), plus `telerad web` and a 登记员 of M01 (image.read, image.write)."""

    def start(self) -> None:
        super().start()
        self.http_port = bd.free_port()
        env = {**self.env, "TELERAD_HTTP_PORT": str(self.http_port), "TELERAD_HTTP_HOST": "127.0.0.1"}
        self.env = env
        self.user = self.make_user("registrar", "M01")
        with (self.workdir / "telerad-web.log").open("ab") as fh:
            self.web = subprocess.Popen(
                self.web_command(),
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{self.http_port}/api/health", timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.3)
        raise RuntimeError("telerad web did not start; see telerad-web.log")

    def web_command(self) -> list[str]:
        """How the web server is started (bench_viewer.py: through bench/timed_web.py)."""
        return [str(bd.VENV_BIN / "telerad"), "web"]

    def make_user(self, role: str, institution: str) -> dict[str, str]:
        """A user holding `role` at `institution` (tests/factories.py make_user); its username and password."""
        username = f"bench_{role}_{institution}".lower()
        script = (
            "import json\n"
            "from api.app import create_app\n"
            "from tests.factories import make_user\n"
            f"u = make_user(create_app(), {role!r}, institution_code={institution!r}, username={username!r})\n"
            "print(json.dumps({'username': u.username, 'password': u.password}))\n"
        )
        res = subprocess.run(
            [str(bd.VENV_BIN / "python"), "-c", script], env=self.env, capture_output=True, text=True, cwd=ROOT
        )
        if res.returncode != 0:
            raise RuntimeError(f"creating the bench user failed: {res.stderr[-2000:]}")
        return dict(json.loads(res.stdout.strip().splitlines()[-1]))

    def stop(self) -> None:
        web = getattr(self, "web", None)
        if web is not None and web.poll() is None:
            os.killpg(web.pid, signal.SIGTERM)
            web.wait(20)
        super().stop()

    def http(self, user: dict[str, str] | None = None) -> tuple[str, requests.Session]:
        """A session logged in as `user` (default: the 登记员) and the DICOMweb root."""
        s = requests.Session()
        base = f"http://127.0.0.1:{self.http_port}"
        r = s.post(f"{base}/api/auth/login", json=user or self.user, timeout=30)
        r.raise_for_status()
        s.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return f"{base}/dicomweb", s


# -- knobs -------------------------------------------------------------------------------------------------------
class Ports:
    """Ports from a fixed range (`--port-base`), skipping any already bound; HTTP from `base`, DICOM from base+3000."""

    def __init__(self, base: int) -> None:
        self.http, self.dicom = itertools.count(base), itertools.count(base + 3000)

    @staticmethod
    def _take(counter: Iterator[int]) -> int:
        import socket

        for port in counter:
            with socket.socket() as s, contextlib.suppress(OSError):
                s.bind(("127.0.0.1", port))
                return port
        raise RuntimeError("no free port")

    def http_port(self) -> int:
        return self._take(self.http)

    def dicom_port(self) -> int:
        return self._take(self.dicom)


@contextlib.contextmanager
def profiled(args: argparse.Namespace, pid: int, name: str) -> Iterator[None]:
    """py-spy recording `pid` (and its threads, GIL holders only with --gil) while the block runs (`--profile`)."""
    if not args.profile:
        yield
        return
    out = Path(args.profile) / f"{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [args.py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250", "-o", str(out)]
    with (Path(args.profile) / f"{name}.log").open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


# -- measurements ------------------------------------------------------------------------------------------------
def multipart(paths: list[Path]) -> bytes:
    out = bytearray()
    for p in paths:
        out += f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p.read_bytes() + b"\r\n"
    return bytes(out + f"--{BOUNDARY}--\r\n".encode())


def stow_run(base: str, http: requests.Session, files: list[Path], batch: int, threads: int) -> float:
    """Instances per second; raises if any request did not store all its instances."""
    bodies = [multipart(files[i : i + batch]) for i in range(0, len(files), batch)]

    def one(body: bytes) -> None:
        r = http.post(f"{base}/studies", data=body, headers={"Content-Type": STOW_TYPE}, timeout=600)
        if r.status_code != 200:
            raise RuntimeError(f"STOW answered {r.status_code}: {r.text[:300]}")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, bodies))
    return len(files) / (time.perf_counter() - t0)


def probe(base: str, http: requests.Session, path: str, accept: str) -> str | None:
    """None when the endpoint answers; otherwise why not."""
    try:
        r = http.get(f"{base}{path}", headers={"Accept": accept}, timeout=60)
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if r.status_code == 200 else f"GET {path} answered {r.status_code}"


def timed_gets(http: requests.Session, urls: list[str], accept: str, threads: int) -> float:
    def one(url: str) -> None:
        r = http.get(url, headers={"Accept": accept}, timeout=120)
        r.raise_for_status()
        _ = r.content

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, urls))
    return time.perf_counter() - t0


def series_of(files: list[Path]) -> tuple[str, str, list[str]]:
    import pydicom

    uids = []
    study = series = ""
    for f in files:
        ds = pydicom.dcmread(
            f, stop_before_pixels=True, specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]
        )
        study, series = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)
        uids.append(str(ds.SOPInstanceUID))
    return study, series, uids


def qido_params(q: dict[str, str]) -> str:
    keep = {k: v for k, v in q.items() if k in ("PatientName", "StudyDate", "ModalitiesInStudy", "PatientID")}
    return urllib.parse.urlencode({**keep, "fuzzymatching": "false"})


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None, nd: int = 3) -> float | None:
    return round(a / b, nd) if a is not None and b else None


# -- one database ----------------------------------------------------------------------------------------------------
def run_section(db: str, args: argparse.Namespace, shared: Path) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"bench-dicomweb-{db}-", dir=args.tmp))
    url = bd.pg_database() if db == "postgresql" else f"sqlite:///{work / 'telerad.db'}"
    telerad, orthanc = Telerad(work, url, None), Orthanc(work)
    if args.ports is not None:
        telerad.port, orthanc.port = args.ports.dicom_port(), args.ports.dicom_port()
        telerad.env["TELERAD_DICOM_PORT"] = str(telerad.port)
    out: dict[str, Any] = {"missing": {}}
    try:
        telerad.start()
        orthanc.start()
        peers: list[Any] = [telerad, orthanc]
        out["versions"] = {"orthanc": orthanc.info.get("version"), "dicomweb_plugin": _plugin_version()}
        # seed: the QIDO studies and the CT series (both storage kinds), by C-STORE into both archives
        seed: dict[str, Any] = {"method": "C-STORE (storescu, 4 associations)", "studies": args.studies}
        for peer in peers:
            t0 = time.perf_counter()
            bd.store(peer, [d for d in sorted((shared / "find").iterdir())], "seed-find")
            bd.store(peer, [shared / "ct_raw"], "seed-ct_raw")
            bd.store(peer, [shared / "ct_jpll"], "seed-ct_jpll", extra=("-xs",))  # propose JPEG lossless SV1
            seed[f"{peer.name}_s"] = round(time.perf_counter() - t0, 1)
        out["seed"] = seed
        https = {p.name: p.http() for p in peers}
        # STOW: fresh instances per round, the archives alternating (which goes first changes every round)
        stow: dict[str, list[float]] = {"telerad": [], "orthanc": []}
        if "stow" not in args.parts:
            out["missing"]["stow"] = "not run (--parts)"
        for rnd in range(args.rounds if "stow" in args.parts else 0):
            order = peers if rnd % 2 == 0 else peers[::-1]
            for peer in order:
                dirs = dicom_data.write_small(work / f"stow-{rnd}-{peer.name}", args.stow, per_series=50, sr_every=0)
                files = sorted(f for d in dirs for f in d.iterdir())
                base, http = https[peer.name]
                prof = profiled(args, telerad.web.pid, f"{db}-stow-{rnd}")
                with prof if peer is telerad else contextlib.nullcontext():
                    stow[peer.name].append(stow_run(base, http, files, args.stow_batch, args.stow_threads))
                log(f"{db} stow round {rnd} {peer.name}: {stow[peer.name][-1]:.1f}/s")
                shutil.rmtree(work / f"stow-{rnd}-{peer.name}", ignore_errors=True)
        t_stow, o_stow = median(stow["telerad"]), median(stow["orthanc"])
        out["stow_per_s"] = round(t_stow, 1) if t_stow else None
        out["stow_ratio_vs_orthanc"] = ratio(t_stow, o_stow)
        out["orthanc"] = {"stow_per_s": round(o_stow, 1) if o_stow else None}
        # WADO frames, metadata, QIDO: measured where telerad serves them
        _wado_and_metadata(out, https, shared, args, lambda part: profiled(args, telerad.web.pid, f"{db}-{part}"))
        _qido(out, https, args, lambda part: profiled(args, telerad.web.pid, f"{db}-{part}"))
    finally:
        for p in (telerad, orthanc):
            try:
                p.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the other
                log(f"stopping {p.name}: {exc}")
        if db == "postgresql" and not args.keep:
            bd.pg_drop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return out


Profile = Any  # part name → context manager recording telerad while the part runs


def _wado_and_metadata(
    out: dict[str, Any], https: dict[str, Any], shared: Path, args: argparse.Namespace, prof: Profile
) -> None:
    by_kind: dict[str, Any] = {}
    for kind, label in (("ct_raw", "uncompressed"), ("ct_jpll", "jpeg_lossless")):
        if "wado" not in args.parts:
            out["missing"][f"wado_{label}"] = "not run (--parts)"
            by_kind[label] = {"wado_frames_per_s": None, "wado_frames_ratio_vs_orthanc": None}
            continue
        study, series, sops = series_of(sorted((shared / kind).iterdir()))
        paths = [f"/studies/{study}/series/{series}/instances/{sop}/frames/1" for sop in sops]
        why = probe(*https["telerad"], paths[0], FRAME_ACCEPT)
        if why is not None:
            out["missing"][f"wado_{label}"] = why
            by_kind[label] = {"wado_frames_per_s": None, "wado_frames_ratio_vs_orthanc": None}
            continue
        rates: dict[str, list[float]] = {"telerad": [], "orthanc": []}
        for rnd in range(args.rounds):
            for name in ("telerad", "orthanc") if rnd % 2 == 0 else ("orthanc", "telerad"):
                base, http = https[name]
                with prof(f"wado-{label}-{rnd}") if name == "telerad" else contextlib.nullcontext():
                    wall = timed_gets(http, [base + p for p in paths], FRAME_ACCEPT, args.wado_threads)
                rates[name].append(len(paths) / wall)
                log(f"wado {label} round {rnd} {name}: {rates[name][-1]:.1f} frames/s")
        t, o = median(rates["telerad"]), median(rates["orthanc"])
        by_kind[label] = {
            "wado_frames_per_s": round(t, 1) if t else None,
            "orthanc_frames_per_s": round(o, 1) if o else None,
            "wado_frames_ratio_vs_orthanc": ratio(t, o),
        }
    out["wado_by_storage"] = by_kind
    out["wado_frames_per_s"] = by_kind["uncompressed"]["wado_frames_per_s"]
    out["wado_frames_ratio_vs_orthanc"] = by_kind["uncompressed"]["wado_frames_ratio_vs_orthanc"]
    study, series, _ = series_of(sorted((shared / "ct_raw").iterdir()))
    path = f"/studies/{study}/series/{series}/metadata"
    why = "not run (--parts)"
    if "metadata" in args.parts:
        why = probe(*https["telerad"], path, "application/dicom+json")
    if why is not None:
        out["missing"]["metadata"] = why
        out["metadata_ms"] = out["metadata_ratio_vs_orthanc"] = None
        return
    ms: dict[str, list[float]] = {"telerad": [], "orthanc": []}
    for rnd in range(args.rounds * 3):
        for name in ("telerad", "orthanc") if rnd % 2 == 0 else ("orthanc", "telerad"):
            base, http = https[name]
            with prof(f"metadata-{rnd}") if name == "telerad" else contextlib.nullcontext():
                ms[name].append(timed_gets(http, [base + path], "application/dicom+json", 1) * 1000)
    log(f"metadata ms telerad {[round(v) for v in ms['telerad']]} orthanc {[round(v) for v in ms['orthanc']]}")
    t, o = median(ms["telerad"]), median(ms["orthanc"])
    out["metadata_ms"] = round(t, 1) if t else None
    out["metadata_ratio_vs_orthanc"] = ratio(t, o)
    out["orthanc"]["metadata_ms"] = round(o, 1) if o else None


def _qido(out: dict[str, Any], https: dict[str, Any], args: argparse.Namespace, prof: Profile) -> None:
    queries = [qido_params(q) for q in dicom_data.find_queries(args.queries)]
    why = (
        "not run (--parts)"
        if "qido" not in args.parts
        else probe(*https["telerad"], f"/studies?{queries[0]}", "application/dicom+json")
    )
    if why is not None:
        out["missing"]["qido"] = why
        out["qido_p50_ms"] = out["qido_ratio_vs_orthanc"] = None
        return
    ms: dict[str, list[float]] = {"telerad": [], "orthanc": []}
    with prof("qido"):
        for i, q in enumerate(queries):
            for name in ("telerad", "orthanc") if i % 2 == 0 else ("orthanc", "telerad"):
                base, http = https[name]
                ms[name].append(timed_gets(http, [f"{base}/studies?{q}"], "application/dicom+json", 1) * 1000)
    t, o = median(ms["telerad"]), median(ms["orthanc"])
    out["qido_p50_ms"] = round(t, 2) if t else None
    out["qido_ratio_vs_orthanc"] = ratio(t, o)
    out["orthanc"]["qido_p50_ms"] = round(o, 2) if o else None


def _plugin_version() -> str:
    res = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "orthanc-dicomweb"], capture_output=True, text=True)
    return res.stdout.strip() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--studies", type=int, default=10000, help="studies loaded for QIDO-RS")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--slices", type=int, default=1000, help="512×512 CT slices of the WADO-RS series")
    ap.add_argument("--stow", type=int, default=1000, help="small instances stored per STOW-RS round")
    ap.add_argument("--stow-batch", type=int, default=20, help="instances per STOW-RS request")
    ap.add_argument("--stow-threads", type=int, default=4)
    ap.add_argument("--wado-threads", type=int, default=4)
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated: " + ",".join(PARTS))
    ap.add_argument("--data", default=None, help="generated data kept here and reused when present")
    ap.add_argument("--port-base", type=int, default=None, help="HTTP ports from here, DICOM ports from here+3000")
    ap.add_argument("--pg-db", default=PG_DB, help="PostgreSQL scratch database (dropped and created)")
    ap.add_argument("--profile", default=None, help="directory for py-spy raw profiles of telerad's web process")
    ap.add_argument("--py-spy", default=shutil.which("py-spy") or "/tmp/spyenv/bin/py-spy")
    args = ap.parse_args()
    args.parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not args.parts <= set(PARTS):
        sys.exit(f"--parts: unknown {sorted(args.parts - set(PARTS))}")
    args.ports = None
    if args.port_base is not None:
        args.ports = Ports(args.port_base)
        bd.free_port = args.ports.http_port
    for tool in ("storescu", "echoscu", "dcmcjpeg", bd.ORTHANC):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: run `bash scripts/system-deps.sh` (dcmtk, orthanc, orthanc-dicomweb)")
    if not PLUGIN.exists():
        sys.exit(f"{PLUGIN} not found: run `bash scripts/system-deps.sh` (orthanc-dicomweb)")
    bd.PG_DB = args.pg_db
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    shared = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="bench-dicomweb-data-", dir=args.tmp))
    stamp = shared / f"generated-{args.studies}-{args.slices}"
    try:
        t0 = time.perf_counter()
        if not stamp.exists():
            for old in ("find", "ct_raw", "ct_jpll"):
                shutil.rmtree(shared / old, ignore_errors=True)
            dicom_data.write_find_studies(shared / "find", args.studies, chunks=4)
            dicom_data.write_ct_slices(shared / "ct_raw", args.slices)
            dicom_data.write_ct_jpeg_lossless(shared / "ct_jpll", args.slices)
            stamp.write_text("")
        generated = round(time.perf_counter() - t0, 1)
        results: dict[str, Any] = {}
        for db in dbs:
            section = run_section(db, args, shared)
            section["env"] = {"cpus": os.cpu_count(), "data_generation_s": generated, "run": uuid.uuid4().hex[:8]}
            results[db] = section
    finally:
        if not args.keep and not args.data:
            shutil.rmtree(shared, ignore_errors=True)
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
