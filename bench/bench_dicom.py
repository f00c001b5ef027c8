"""DICOM benchmark: telerad's SCP against Debian's Orthanc, same data sent by dcmtk's storescu; prints one JSON object.

Run with `.venv/bin/python bench/bench_dicom.py [--db sqlite|postgresql|both] [--rounds 3] [--small 2000]
[--per-study 100] [--sr-every 10] [--large 500] [--get 500] [--studies 10000] [--queries 50] [--gb-frames 2000]
[--skip-1gb] [--processes N]`. Progress goes to stderr, the figures to stdout. Needs dcmtk (storescu, findscu,
echoscu, getscu, dcmcjpeg) and orthanc (`bash scripts/system-deps.sh` installs them). Without `--processes`,
telerad runs with the receiver count a newcomer gets (TELERAD_DICOM_PROCESSES unset: from the core count).

Both archives run on loopback with durable storage in a temporary directory: telerad's `telerad dicom`
(TELERAD_MODE=test, its own instance dir, SQLite file or a fresh PostgreSQL database `telerad_bench_dicom_<pid>`
created through TELERAD_BENCH_PG_ADMIN_URL, default postgres@127.0.0.1:5432) and an Orthanc started with
bench/orthanc/orthanc.json (its default SQLite index + filesystem storage, SyncStorageArea on, security options of
SECURITY.md DSEC-12, the sending AE registered as a modality). Nagle is off on every DICOM socket: dcmtk (storescu,
findscu and Orthanc's DCMTK) reads TCP_NODELAY=1 from the environment; telerad's SCP sets it itself.

Figures, telerad and Orthanc alternating (the first of each pair changes every round), medians over the rounds:
- small_1 / small_4: `--small` instances in studies of `--per-study` — pydicom's CT_small/MR_small with fresh SOP
  Instance UIDs and every `--sr-every`-th a synthetic Comprehensive SR in the study's SR series (10 %) — over 1
  association, and over 4 separate storescu processes (one association each, a quarter of the studies each); large_1:
  synthetic 512×512 16-bit CT slices over 1 association; small_4_new: the small set over 4 storescu with every
  instance a study of its own (fresh Study/Series/SOP UIDs per file, as DX/CR or a set built that way), where
  telerad's per-new-study work — exam matching (IMG-06), study/series rows, the per-study audit events — weighs. Wall
  time of the storescu processes (start to exit; their pre-scan of the files is included, < 20 ms for 500 files, the
  same for both); instances/s and MB/s; beside each figure the archive's own CPU seconds (its process tree, /proc)
  and the 1-minute load average, because the machine is shared: wall-time ratios move with the load, CPU per instance
  much less (with PostgreSQL, telerad's figure leaves out the database server's CPU; Orthanc's includes its SQLite).
- get_uncompressed: `--get` JPEG-lossless CT slices (dcmcjpeg) stored in both as received, then retrieved by
  getscu with its default storage contexts (uncompressed only), so each archive must decode every slice; every run
  is checked (sub-operation counts, final status, files received uncompressed, errors and a failed release
  included) and the ratio (telerad's time / Orthanc's, lower is better) is given only when all runs of both were
  complete (bench/dicom_retrieve.py). Orthanc 1.10.1 transcodes with its built-in DCMTK codecs by default.
- find: `--studies` one-instance studies loaded into both (4 associations, reported as `load`), then `--queries`
  STUDY-level findscu queries (surname wildcard + one-year StudyDate range, < 100 matches so Orthanc's
  LimitFindResults does not cut) alternating between the archives: per query the findscu wall time (association,
  query, release) and, net of the association, minus the median echoscu wall time. Match counts are compared.
- rss_mb_1gb: peak memory of the SCP's process tree — PSS summed over its processes (/proc/<pid>/smaps_rollup, every
  50 ms; with one process that is its RSS; forked receivers share pages that summed RSS would count N times, so the
  summed RSS and the largest single process are reported beside it) — while one native multi-frame
  instance of `--gb-frames` × 512×512×16 bit (≈1 GB at 2,000 frames) is received (Orthanc's too, for reference).
Ratios are telerad/Orthanc: throughput ratios (higher is better for telerad), `cpu_ratio_*` Orthanc's CPU per
instance / telerad's (higher is better for telerad), `find_ratio` and `get_uncompressed_ratio` as latency (lower
is better). `--peer-cmd` replaces telerad's SCP by any command (e.g. dcmtk's storescp) to check the harness.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import dicom_data  # noqa: E402
import dicom_retrieve  # noqa: E402

VENV_BIN = ROOT / ".venv" / "bin"
PG_ADMIN_URL = os.environ.get("TELERAD_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB = f"telerad_bench_dicom_{os.getpid()}"  # per run: two runs at once never drop each other's database
ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"  # /usr/sbin is not on every PATH
SCU_AET = "BENCHSCU"
INSTITUTION = "M01"
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
FIND_KEYS = ("StudyInstanceUID", "PatientID", "StudyDate", "AccessionNumber", "ModalitiesInStudy", "StudyDescription")
SCENARIOS = ("small_1", "small_4", "small_4_new", "large_1")


def log(msg: str) -> None:
    print(f"[bench-dicom] {msg}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def r(value: float | None, nd: int = 2) -> float | None:
    return None if value is None else round(value, nd)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


# --- process trees and RSS --------------------------------------------------------------------------------


def descendants(root: int) -> list[int]:
    """`root` and every process below it (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _kib(path: str, field: str) -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def tree_memory_kib(root: int) -> tuple[int, int, int]:
    """(summed RSS, summed PSS, largest single RSS) of a process tree, in KiB.

    Receivers forked from one parent (`telerad dicom --processes N`) share their interpreter and libraries
    copy-on-write, and RSS counts those pages in every process: summed RSS overstates the tree's memory N-fold.
    PSS (/proc/<pid>/smaps_rollup) divides each shared page among its sharers, so its sum is what the tree uses.
    """
    rss = pss = largest = 0
    for pid in descendants(root):
        one = _kib(f"/proc/{pid}/status", "VmRSS:") or 0
        rss += one
        largest = max(largest, one)
        pss += _kib(f"/proc/{pid}/smaps_rollup", "Pss:") or one
    return rss, pss, largest


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU time of a process tree's live processes and threads, in seconds (/proc/<pid>/stat).

    On a loaded machine the wall time of a run depends on what else runs; the archive's own CPU time per run much
    less, and it is what limits throughput once the cores are busy (4 associations on 2 cores)."""
    ticks = 0
    for pid in descendants(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (all threads)
    return ticks / os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    """Samples a process tree's memory every `interval` seconds (tree_memory_kib); the peaks after `stop()`."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak_kib = 0  # summed RSS
        self.peak_pss_kib = 0
        self.peak_single_kib = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            rss, pss, single = tree_memory_kib(self.root)
            self.peak_kib = max(self.peak_kib, rss)
            self.peak_pss_kib = max(self.peak_pss_kib, pss)
            self.peak_single_kib = max(self.peak_single_kib, single)
            self.samples += 1
            self._halt.wait(self.interval)

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return self.peak_pss_kib / 1024


# --- the two archives ---------------------------------------------------------------------------------------


class Peer:
    """An SCP started as a subprocess in its own session (stopped by its process group, which we created)."""

    name = "peer"
    aet = "PEER"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"
        self.info: dict[str, Any] = {}

    def _spawn(self, cmd: list[str], env: dict[str, str]) -> None:
        log(f"{self.name}: {shlex.join(cmd)}")
        with self.log_path.open("ab") as fh:
            self.proc = subprocess.Popen(
                cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.wait_ready()

    def echo(self) -> bool:
        res = subprocess.run(
            ["echoscu", "-to", "5", "-aet", SCU_AET, "-aec", self.aet, "127.0.0.1", str(self.port)],
            env=DCMTK_ENV,
            capture_output=True,
        )
        return res.returncode == 0

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            if self.echo():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer C-ECHO within {timeout}s; see {self.log_path}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass


class OrthancPeer(Peer):
    name = "orthanc"
    aet = "ORTHANC"

    def start(self, extra: dict[str, Any] | None = None) -> None:
        """`extra`: configuration entries added to bench/orthanc/orthanc.json's (e.g. plugins, bench_dicomweb.py)."""
        storage = self.workdir / "orthanc-storage"
        storage.mkdir(parents=True, exist_ok=True)
        cfg = json.loads((ROOT / "bench" / "orthanc" / "orthanc.json").read_text())
        self.http_port = free_port()
        self.http_password = secrets.token_urlsafe(18)
        cfg.update(
            StorageDirectory=str(storage),
            IndexDirectory=str(storage),
            HttpPort=self.http_port,
            RegisteredUsers={"bench": self.http_password},
            DicomAet=self.aet,
            DicomPort=self.port,
        )
        cfg.update(extra or {})
        cfg["DicomModalities"]["bench"]["AET"] = SCU_AET
        path = self.workdir / "orthanc.json"
        path.write_text(json.dumps(cfg, indent=2))
        self.info = {"version": tool_version([ORTHANC, "--version"]), "config": cfg}
        self._spawn([ORTHANC, str(path)], DCMTK_ENV)

    def statistics(self) -> dict[str, Any]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/statistics")  # noqa: S310 - loopback
        token = base64.b64encode(f"bench:{self.http_password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - fixed loopback URL
            return dict(json.load(resp))


class TeleradPeer(Peer):
    name = "telerad"
    aet = "TELERAD"

    def __init__(self, workdir: Path, db_url: str, processes: int | None) -> None:
        super().__init__(workdir)
        self.db_url, self.processes = db_url, processes
        inst = workdir / "telerad-instance"
        self.env = {
            **os.environ,
            "TELERAD_MODE": "test",
            "TELERAD_INSTANCE_DIR": str(inst),
            "TELERAD_STORAGE_DIR": str(inst / "storage"),
            "TELERAD_DATABASE_URL": db_url,
            "TELERAD_SECRET_KEY": "bench-dicom-secret-0123456789abcdef-0123456789",
            "TELERAD_DICOM_PORT": str(self.port),
            "TELERAD_DICOM_AET": self.aet,
            "TELERAD_DICOM_HOST": "127.0.0.1",
        }

    def _cli(self, *args: str) -> str:
        res = subprocess.run([str(VENV_BIN / "telerad"), *args], env=self.env, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"telerad {' '.join(args)} failed ({res.returncode}): {res.stderr[-2000:]}")
        return res.stdout

    def start(self) -> None:
        self._cli("db", "upgrade")
        # Test mode seeds no institution; create the demo alliance's (idempotent) so a node can belong to M01.
        seed = (
            "from api.app import create_app\n"
            "from engine import uow\n"
            "from engine.accounts.seed import ensure_institutions\n"
            "with create_app().app_context():\n"
            "    with uow.unit_of_work():\n"
            "        ensure_institutions()\n"
        )
        res = subprocess.run([str(VENV_BIN / "python"), "-c", seed], env=self.env, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"seeding institutions failed: {res.stderr[-2000:]}")
        self._cli(
            "dicom", "node", "add", "--aet", SCU_AET, "--host", "127.0.0.1", "--port", "11190",
            "--institution", INSTITUTION, "--allow", "echo,store,find,get",
        )  # fmt: skip
        help_text = self._cli("dicom", "--help")
        cmd = [str(VENV_BIN / "telerad"), "dicom"]
        if self.processes and "--processes" in help_text:
            cmd += ["--processes", str(self.processes)]
        self.info = {"command": shlex.join(cmd), "database": self.db_url.split("://")[0], "mode": "test"}
        self._spawn(cmd, self.env)

    def drain_ingest_events(self) -> dict[str, Any]:
        """The worker's share of the stores (issue 12/14 outbox): what `telerad worker` (or `telerad run`'s worker
        thread) does after the C-STOREs were acknowledged — chain each study's audit event, match new studies, build
        the WADO-RS metadata templates of the studies' new instances (issue 16, engine/dicomweb/prebuild.py) — timed
        here, after the store runs, in a process of its own (seconds and CPU; `templates`: how many are kept after)."""
        script = (
            "import json, resource, time\n"
            "from api.app import create_app\n"
            "from engine.imaging import events\n"
            "with create_app().app_context():\n"
            "    c0 = resource.getrusage(resource.RUSAGE_SELF)\n"
            "    t0 = time.perf_counter()\n"
            "    n = events.drain()\n"
            "    wall = time.perf_counter() - t0\n"
            "    c1 = resource.getrusage(resource.RUSAGE_SELF)\n"
            "    from sqlalchemy import func, select\n"
            "    from engine import uow\n"
            "    from engine.dicomweb.models import InstanceMetadata\n"
            "    with uow.unit_of_work() as s:\n"
            "        kept = s.execute(select(func.count()).select_from(InstanceMetadata)).scalar_one()\n"
            "cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)\n"
            "print(json.dumps({'events': n, 'templates': kept, 'seconds': round(wall, 2), 'cpu_s': round(cpu, 2),\n"
            "                  'cpu_ms_per_event': round(cpu * 1000 / n, 3) if n else None}))\n"
        )
        res = subprocess.run([str(VENV_BIN / "python"), "-c", script], env=self.env, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"draining the ingest events failed: {res.stderr[-2000:]}")
        return dict(json.loads(res.stdout.strip().splitlines()[-1]))


class CmdPeer(Peer):
    """Debug stand-in for telerad's SCP: `--peer-cmd` formatted with {port}, {aet} and {dir}."""

    name = "telerad"
    aet = "TELERAD"

    def __init__(self, workdir: Path, template: str) -> None:
        super().__init__(workdir)
        self.template = template

    def start(self) -> None:
        out = self.workdir / "peer-storage"
        out.mkdir(parents=True, exist_ok=True)
        cmd = shlex.split(self.template.format(port=self.port, aet=self.aet, dir=out))
        self.info = {"command": shlex.join(cmd), "stand_in": True}
        self._spawn(cmd, DCMTK_ENV)


# --- sending and querying -------------------------------------------------------------------------------------


def dir_bytes(dirs: list[Path]) -> tuple[int, int]:
    files = [f for d in dirs for f in d.iterdir() if f.is_file()]
    return len(files), sum(f.stat().st_size for f in files)


def store(
    peer: Peer, dirs: list[Path], label: str, timeout: float = 3600, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One storescu per directory, all in parallel (one association each); wall time until the last exits.

    Each storescu's stderr (`-v`, ~240 bytes per file) goes to a file in the peer's work directory
    (storescu/<label>-<peer>-<i>.log), never to a pipe: pipes read one after the other (`communicate()` in turn) fill
    up at 64 KiB, ~270 files into an association, and the storescu behind them then blocks in a log write, silent in
    the middle of its association until the processes before it have exited — longer than the SCP's network
    timeout on the 10,000-study load, which dropped the 3rd and 4th association (tests/dicom/test_association_drop.py).
    Every association that did not end cleanly (exit code, E:/F: lines, files sent without a success response) is
    reported in `failures` and logged, so a dropped association is never silent.
    """
    cmd = ["storescu", "-v", *extra, "-aet", SCU_AET, "-aec", peer.aet, "+sd", "127.0.0.1", str(peer.port)]
    log_dir = peer.workdir / "storescu"
    log_dir.mkdir(parents=True, exist_ok=True)
    paths = [log_dir / f"{label}-{peer.name}-{i}.log" for i in range(len(dirs))]
    load1 = os.getloadavg()[0]
    cpu0 = tree_cpu_seconds(peer.pid)
    t0 = time.perf_counter()
    procs = []
    for d, path in zip(dirs, paths, strict=True):
        with path.open("w") as fh:
            procs.append(
                subprocess.Popen([*cmd, str(d)], env=DCMTK_ENV, stdout=subprocess.DEVNULL, stderr=fh, text=True)
            )
    for p in procs:
        p.wait(timeout=timeout)
    seconds = time.perf_counter() - t0
    cpu = tree_cpu_seconds(peer.pid) - cpu0
    acked: set[str] = set()
    bad: list[str] = []
    failures: list[dict[str, Any]] = []
    for d, path, p in zip(dirs, paths, procs, strict=True):
        current, sent, ok = "", 0, 0
        errors: list[str] = []
        for ln in path.read_text(errors="replace").splitlines():
            if ln.startswith("I: Sending file: "):
                current = ln[len("I: Sending file: ") :]
                sent += 1
            elif ln.startswith("I: Received Store Response (Success)"):
                acked.add(current)
                ok += 1
            elif ln.startswith(("E:", "F:", "W:")):
                errors.append(ln)
        bad.extend(errors)
        if p.returncode != 0 or ok < sent or any(e.startswith(("E:", "F:")) for e in errors):
            failures.append(
                {"dir": d.name, "rc": p.returncode, "sent": sent, "acked": ok, "errors": errors[:8], "log": str(path)}
            )
    for f in failures:
        log(
            f"  !! {label} {peer.name}: storescu {f['dir']} rc={f['rc']} acked {f['acked']}/{f['sent']} sent "
            f"({f['log']}): " + " | ".join(f["errors"])
        )
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "load1": load1,
        "ok": len(acked),
        "acked": acked,
        "rc": [p.returncode for p in procs],
        "errors": bad,
        "failures": failures,
    }


def store_missing(peer: Peer, dirs: list[Path], acked: set[str], scratch: Path, tries: int = 3) -> tuple[int, int]:
    """Resend (untimed, 1 association) what `peer` did not acknowledge; returns (resent, still missing)."""
    missing = [f for d in dirs for f in sorted(d.iterdir()) if str(f) not in acked]
    resent = len(missing)
    for attempt in range(tries):
        if not missing:
            break
        retry = scratch / f"retry-{peer.name}-{attempt}"
        retry.mkdir(parents=True)
        for f in missing:
            os.link(f, retry / f.name)
        res = store(peer, [retry], f"retry{attempt}")
        log(f"  {peer.name}: resent {len(missing)}, acked {res['ok']}; first errors {res['errors'][:3]}")
        missing = [f for f in missing if str(retry / f.name) not in res["acked"]]
        shutil.rmtree(retry)
    return resent, len(missing)


def findscu(peer: Peer, query: dict[str, str]) -> tuple[float, int, bool]:
    cmd = ["findscu", "-v", "-S", "-aet", SCU_AET, "-aec", peer.aet, "-k", "QueryRetrieveLevel=STUDY"]
    for k, v in query.items():
        cmd += ["-k", f"{k}={v}"]
    cmd += [arg for k in FIND_KEYS if k not in query for arg in ("-k", k)]
    cmd += ["127.0.0.1", str(peer.port)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=DCMTK_ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    matches = res.stderr.count("Find Response:")  # "Find Response: N (Pending)"; the final one is worded otherwise
    success = res.returncode == 0 and "(Success)" in res.stderr
    return seconds, matches, success


def pynetdicom_find(peers: list[Peer], queries: list[dict[str, str]]) -> dict[str, tuple[list[float], list[int], int]]:
    """Per-query latency (request sent → final response) over one open association per archive, alternating."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND  # noqa: N814

    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(FIND)
    assocs = {}
    for peer in peers:
        assoc = ae.associate("127.0.0.1", peer.port, ae_title=peer.aet)
        if not assoc.is_established:
            log(f"  {peer.name}: C-FIND association rejected")
            continue
        assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assocs[peer.name] = assoc
    result: dict[str, tuple[list[float], list[int], int]] = {p.name: ([], [], 0) for p in peers}

    def one(name: str, q: dict[str, str]) -> tuple[float, int, bool]:
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        for k in FIND_KEYS:
            setattr(ds, k, "")
        for k, v in q.items():
            setattr(ds, k, v)
        n, ok = 0, False
        t0 = time.perf_counter()
        for status, _ident in assocs[name].send_c_find(ds, FIND):
            code = getattr(status, "Status", None)
            if code in (0xFF00, 0xFF01):
                n += 1
            elif code == 0x0000:
                ok = True
        return (time.perf_counter() - t0) * 1000, n, ok

    try:
        for name in assocs:
            one(name, queries[0])  # warm-up
        for i, q in enumerate(queries):
            for peer in peers if i % 2 == 0 else peers[::-1]:
                times, counts, failed = result[peer.name]
                if peer.name not in assocs:
                    result[peer.name] = (times, counts, failed + 1)
                    continue
                ms, n, ok = one(peer.name, q)
                times.append(ms)
                counts.append(n)
                result[peer.name] = (times, counts, failed + (0 if ok else 1))
    finally:
        for assoc in assocs.values():
            assoc.release()
    return result


def p95(values: list[float]) -> float | None:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else None


def echo_wall(peer: Peer, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        ok = peer.echo()
        times.append(time.perf_counter() - t0)
        if not ok:
            raise RuntimeError(f"{peer.name}: C-ECHO failed")
    return statistics.median(times)


def throughput(runs: list[dict[str, Any]], count: int, nbytes: int) -> dict[str, Any]:
    secs = [x["seconds"] for x in runs]
    med = statistics.median(secs)
    errors = [e for x in runs for e in x["errors"]]
    return {
        "instances": count,
        "mb": round(nbytes / 1e6, 1),
        "seconds": [round(s, 3) for s in secs],
        "instances_per_s": round(count / med, 1),
        "mb_per_s": round(nbytes / 1e6 / med, 1),
        "cpu_s": [round(x["cpu_s"], 2) for x in runs],
        "cpu_ms_per_instance": round(1000 * statistics.median(x["cpu_s"] for x in runs) / count, 3) if count else None,
        "load1": [round(x["load1"], 2) for x in runs],
        "all_acked": all(x["ok"] == count for x in runs),
        **({"first_errors": errors[:5]} if errors else {}),
        **({"storescu_failures": failures} if (failures := [f for x in runs for f in x["failures"]]) else {}),
    }


# --- one database section ------------------------------------------------------------------------------------------


def pg_database() -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PG_DB}"')
    return PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + f"/{PG_DB}"


def pg_drop() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')


def run_section(db: str, args: argparse.Namespace, shared: Path) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"bench-dicom-{db}-", dir=args.tmp))
    log(f"== {db}: work dir {work}")
    if args.peer_cmd:
        telerad: Peer = CmdPeer(work, args.peer_cmd)
    else:
        url = f"sqlite:///{work / 'telerad-instance' / 'telerad.db'}" if db == "sqlite" else pg_database()
        telerad = TeleradPeer(work, url, args.processes)
    orthanc = OrthancPeer(work)
    peers: list[Peer] = [telerad, orthanc]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {p.name: {s: [] for s in SCENARIOS} for p in peers}
    sizes: dict[str, tuple[int, int]] = {}
    out: dict[str, Any] = {}
    try:
        telerad.start()
        orthanc.start()
        for rnd in range(args.rounds):
            data = work / f"round{rnd}"
            log(f"round {rnd + 1}/{args.rounds}: writing data")
            sets = {
                "small_1": dicom_data.write_small(data / "small_1", args.small, 1, args.per_study, args.sr_every),
                "small_4": dicom_data.write_small(data / "small_4", args.small, 4, args.per_study, args.sr_every),
                "large_1": dicom_data.write_ct_slices(data / "large_1", args.large),
            }
            if args.new_studies:  # every instance a new study (fresh Study/Series/SOP UIDs per file), 4 associations
                sets["small_4_new"] = dicom_data.write_small(data / "small_4_new", args.small, 4, 1, args.sr_every)
            os.sync()
            order = peers if rnd % 2 == 0 else peers[::-1]
            for scenario, dirs in sets.items():
                sizes[scenario] = dir_bytes(dirs)
                for peer in order:
                    time.sleep(0.5)
                    res = store(peer, dirs, f"r{rnd}-{scenario}")
                    runs[peer.name][scenario].append(res)
                    n = sizes[scenario][0]
                    log(
                        f"  {scenario:8s} {peer.name:8s} {res['seconds']:7.2f}s {n / res['seconds']:7.1f} inst/s "
                        f"cpu {res['cpu_s']:6.2f}s load {res['load1']:.1f} acked {res['ok']}/{n} rc={res['rc']} "
                        f"{res['errors'][:2]}"
                    )
            shutil.rmtree(data)
        for peer in peers:
            out[peer.name] = {s: throughput(runs[peer.name][s], *sizes[s]) for s in SCENARIOS if runs[peer.name][s]}
        if isinstance(telerad, TeleradPeer):
            out["telerad"]["ingest_events_after_stores"] = drained = telerad.drain_ingest_events()
            log(f"  worker: {drained}")
        if args.get:
            for name, figure in get_section(peers, args, shared).items():
                out[name]["get_uncompressed"] = figure
        if args.studies:
            out_find = find_section(peers, args, shared)
            for peer in peers:
                out[peer.name].update(out_find[peer.name])
            out["find_matches_equal"] = out_find["matches_equal"]
        if not args.skip_1gb:
            mf = shared / "multiframe.dcm"
            if not mf.exists():
                log(f"writing the multi-frame instance ({args.gb_frames} frames)")
                dicom_data.write_multiframe(mf, args.gb_frames)
                os.sync()
            for peer in peers:
                time.sleep(1)
                idle_rss, idle_pss, _ = tree_memory_kib(peer.pid)
                sampler = RssSampler(peer.pid)
                sampler.start()
                res = store(peer, [_single(mf)], "one_gb")
                peak = sampler.stop()
                size = mf.stat().st_size
                out[peer.name]["one_gb"] = {
                    "bytes": size,
                    "seconds": round(res["seconds"], 2),
                    "mb_per_s": round(size / 1e6 / res["seconds"], 1),
                    "acked": res["ok"] == 1,
                    **({"storescu_failures": res["failures"]} if res["failures"] else {}),
                    "processes": len(descendants(peer.pid)),
                    "pss_mb_idle": round(idle_pss / 1024, 1),
                    "pss_mb_peak": round(peak, 1),
                    "rss_mb_idle_summed": round(idle_rss / 1024, 1),
                    "rss_mb_peak_summed": round(sampler.peak_kib / 1024, 1),
                    "rss_mb_peak_largest_process": round(sampler.peak_single_kib / 1024, 1),
                    "rss_samples": sampler.samples,
                }
                summed, largest = sampler.peak_kib / 1024, sampler.peak_single_kib / 1024
                log(
                    f"  1GB {peer.name:8s} {res['seconds']:.2f}s acked={res['ok']} peak PSS {peak:.1f} MB "
                    f"(summed RSS {summed:.1f} MB, largest process {largest:.1f} MB)"
                )
        for peer in peers:
            out[peer.name]["info"] = peer.info
        if isinstance(orthanc, OrthancPeer):
            try:
                out["orthanc"]["statistics"] = orthanc.statistics()
            except OSError as exc:
                out["orthanc"]["statistics"] = f"unavailable: {exc}"
    finally:
        for peer in peers:
            peer.stop()
        if db == "postgresql" and not args.peer_cmd and not args.keep:
            pg_drop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    def ratio(key: str) -> float | None:
        a, b = out["telerad"].get(key), out["orthanc"].get(key)
        return r(a["instances_per_s"] / b["instances_per_s"], 3) if a and b else None

    def cpu_ratio(key: str) -> float | None:  # Orthanc's CPU per instance / telerad's: > 1 when telerad needs less
        a, b = out["telerad"].get(key), out["orthanc"].get(key)
        return (
            r(b["cpu_ms_per_instance"] / a["cpu_ms_per_instance"], 3) if a and b and a["cpu_ms_per_instance"] else None
        )

    t_get, o_get = out["telerad"].get("get_uncompressed"), out["orthanc"].get("get_uncompressed")
    get_ok = bool(t_get and o_get and t_get["complete"] and o_get["complete"])

    t_find, o_find = out["telerad"].get("find"), out["orthanc"].get("find")
    find_ok = bool(t_find and o_find and not t_find["failed"] and not o_find["failed"])
    result: dict[str, Any] = {
        "ratio_small_1": ratio("small_1"),
        "ratio_small_4": ratio("small_4"),
        "ratio_large_1": ratio("large_1"),
        "ratio_small_4_new_studies": ratio("small_4_new"),
        # C-GET by getscu (uncompressed only) of JPEG-lossless CT: telerad's time / Orthanc's, lower is better; None
        # unless every run of both was complete (see out[*]["get_uncompressed"]["runs"] for what failed).
        "get_uncompressed_ratio": r(t_get["median_s"] / o_get["median_s"], 3) if get_ok else None,
        "cpu_ratio_small_1": cpu_ratio("small_1"),
        "cpu_ratio_small_4": cpu_ratio("small_4"),
        "cpu_ratio_small_4_new_studies": cpu_ratio("small_4_new"),
        "cpu_ratio_large_1": cpu_ratio("large_1"),
        "find_ratio": r(t_find["median_ms"] / o_find["median_ms"], 3) if find_ok else None,
        "find_findscu_ratio": (
            r(out["telerad"]["findscu"]["median_ms"] / out["orthanc"]["findscu"]["median_ms"], 3) if find_ok else None
        ),
        "rss_mb_1gb": out["telerad"].get("one_gb", {}).get("pss_mb_peak"),
        "rounds": args.rounds,
        **out,
    }
    return result


def _single(path: Path) -> Path:
    """A directory holding only `path` (storescu +sd takes directories)."""
    d = path.parent / "one-gb"
    d.mkdir(exist_ok=True)
    link = d / path.name
    if not link.exists():
        os.link(path, link)
    return d


def get_section(peers: list[Peer], args: argparse.Namespace, shared: Path) -> dict[str, dict[str, Any]]:
    """C-GET of `--get` JPEG-lossless CT slices by getscu with its default (uncompressed-only) storage contexts:
    the study is loaded into both archives (untimed, storescu proposing JPEG lossless so it is stored compressed),
    then retrieved `--rounds` times from each, alternating; see bench/dicom_retrieve.py."""
    src = shared / f"ct-jpeg-lossless-{args.get}"
    study_file = src.parent / (src.name + ".study")
    if not study_file.exists():
        log(f"writing {args.get} JPEG-lossless CT slices (dcmcjpeg)")
        _, study = dicom_data.write_ct_jpeg_lossless(src, args.get)
        study_file.write_text(study)
        os.sync()
    study = study_file.read_text()
    out: dict[str, dict[str, Any]] = {}
    for peer in peers:
        res = store(peer, [src], "get_load", extra=("-xs",))  # propose JPEG lossless SV1 (+ uncompressed)
        log(f"  get: loaded {res['ok']}/{args.get} JPEG-lossless slices into {peer.name} {res['errors'][:2]}")
        out[peer.name] = {"loaded": res["ok"]}
    runs: dict[str, list[dict[str, Any]]] = {p.name: [] for p in peers}
    for rnd in range(args.rounds):
        for peer in peers if rnd % 2 == 0 else peers[::-1]:
            time.sleep(0.5)
            load1 = os.getloadavg()[0]
            cpu0 = tree_cpu_seconds(peer.pid)
            res = dicom_retrieve.getscu(
                SCU_AET, "127.0.0.1", peer.port, peer.aet, study, peer.workdir / "getscu-out", DCMTK_ENV
            )
            res.update(cpu_s=tree_cpu_seconds(peer.pid) - cpu0, load1=load1)
            runs[peer.name].append(res)
            log(
                f"  get      {peer.name:8s} {res['seconds']:7.2f}s cpu {res['cpu_s']:6.2f}s load {load1:.1f} "
                f"final {res['final_status']} completed {res['completed']} failed {res['failed']} "
                f"received {res['received']} (uncompressed {res['received_uncompressed']}) {res['errors'][:2]}"
            )
    for peer in peers:
        shutil.rmtree(peer.workdir / "getscu-out", ignore_errors=True)
        out[peer.name].update(dicom_retrieve.summary(runs[peer.name], args.get))
        out[peer.name]["cpu_s"] = [round(x["cpu_s"], 2) for x in runs[peer.name]]
        out[peer.name]["load1"] = [round(x["load1"], 2) for x in runs[peer.name]]
    return out


def find_section(peers: list[Peer], args: argparse.Namespace, shared: Path) -> dict[str, Any]:
    studies = shared / f"find-{args.studies}"
    if not studies.exists():
        log(f"writing {args.studies} one-instance studies")
        dicom_data.write_find_studies(studies / "tmp", args.studies, 4)
        (studies / "tmp").rename(studies / "data")
        os.sync()
    dirs = sorted((studies / "data").iterdir())
    n, nbytes = dir_bytes(dirs)
    out: dict[str, Any] = {}
    for peer in peers:
        res = store(peer, dirs, "find_load")
        log(f"  load {n} studies into {peer.name}: {res['seconds']:.1f}s acked {res['ok']}/{n} {res['errors'][:3]}")
        out[peer.name] = {"load": throughput([res], n, nbytes)}
        if res["ok"] < n:  # C-FIND must search the same studies in both archives
            resent, lost = store_missing(peer, dirs, res["acked"], studies)
            out[peer.name]["load"].update(resent=resent, missing=lost, first_errors=res["errors"][:5])
    queries = list(dicom_data.find_queries(args.queries))
    # In-association query latency (pynetdicom SCU, one association per archive, TCP_NODELAY set).
    in_assoc = pynetdicom_find(peers, queries)
    # findscu wall time per query: process start, association, query, release (what a script sees).
    matches: dict[str, list[int]] = {p.name: [] for p in peers}
    times: dict[str, list[float]] = {p.name: [] for p in peers}
    failures: dict[str, int] = {p.name: 0 for p in peers}
    for peer in peers:  # warm-up, untimed
        findscu(peer, queries[0])
    for i, q in enumerate(queries):
        for peer in peers if i % 2 == 0 else peers[::-1]:
            secs, count, ok = findscu(peer, q)
            times[peer.name].append(secs * 1000)
            matches[peer.name].append(count)
            failures[peer.name] += 0 if ok else 1
    for peer in peers:
        echo_ms = echo_wall(peer, 20) * 1000
        med = statistics.median(times[peer.name])
        ia_times, ia_matches, ia_failed = in_assoc[peer.name]
        out[peer.name]["find"] = {
            "queries": len(queries),
            "median_ms": r(median(ia_times), 2),
            "p95_ms": r(p95(ia_times), 2),
            "matches_total": sum(ia_matches),
            "matches_median": median(ia_matches),
            "failed": ia_failed,
        }
        out[peer.name]["findscu"] = {
            "median_ms": round(med, 2),
            "p95_ms": r(p95(times[peer.name]), 2),
            "echoscu_median_ms": round(echo_ms, 2),
            "matches_total": sum(matches[peer.name]),
            "failed": failures[peer.name],
        }
        log(
            f"  find {peer.name:8s} in-association median {out[peer.name]['find']['median_ms']} ms, "
            f"findscu median {med:.1f} ms (echoscu {echo_ms:.1f} ms), "
            f"matches {sum(ia_matches)}/{sum(matches[peer.name])}"
        )
    names = [p.name for p in peers]
    out["matches_equal"] = matches[names[0]] == matches[names[1]] == in_assoc[names[0]][1] == in_assoc[names[1]][1]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--small", type=int, default=2000, help="small instances per store run")
    ap.add_argument("--large", type=int, default=500, help="512×512 CT slices per store run")
    ap.add_argument("--per-study", type=int, default=100, help="instances per study in the small sets")
    ap.add_argument(
        "--sr-every", type=int, default=10, help="every n-th small instance is a Comprehensive SR (0: none)"
    )
    ap.add_argument(
        "--no-new-studies", dest="new_studies", action="store_false", help="skip small_4_new (one instance per study)"
    )
    ap.add_argument("--get", type=int, default=500, help="JPEG-lossless CT slices retrieved by getscu (0: skip)")
    ap.add_argument("--studies", type=int, default=10000, help="studies loaded for C-FIND (0: skip C-FIND)")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--gb-frames", type=int, default=2000, help="frames of 512×512×16 bit in the big instance")
    ap.add_argument("--skip-1gb", action="store_true")
    ap.add_argument("--processes", type=int, default=None, help="passed to `telerad dicom --processes` if it exists")
    ap.add_argument("--peer-cmd", default=None, help="debug: run this instead of telerad's SCP ({port} {aet} {dir})")
    ap.add_argument("--tmp", default=None, help="parent of the temporary directories (default: system temp)")
    ap.add_argument("--keep", action="store_true", help="keep the work directories and the PostgreSQL database")
    args = ap.parse_args()
    for tool in ("storescu", "findscu", "echoscu", "getscu", "dcmcjpeg", ORTHANC):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: run `bash scripts/system-deps.sh` (dcmtk, orthanc)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally` blocks: stop both archives
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    shared = Path(tempfile.mkdtemp(prefix="bench-dicom-data-", dir=args.tmp))
    git = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    meta: dict[str, Any] = {
        "dcmtk": tool_version(["storescu", "--version"]),
        "cpus": os.cpu_count(),
        "telerad_git": git.stdout.strip(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        results = {}
        for db in dbs:
            section = run_section(db, args, shared)
            results[db] = {**section, "env": {**meta, "loadavg_end": [round(x, 2) for x in os.getloadavg()]}}
    finally:
        if not args.keep:
            shutil.rmtree(shared, ignore_errors=True)
    print(json.dumps(results[dbs[0]] if len(dbs) == 1 else results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
