"""C-GET figure of bench/bench_dicom.py: dcmtk's getscu, with its default storage contexts (uncompressed transfer
syntaxes only), retrieves one study of JPEG-lossless CT slices from an archive (REQ: DCM-04; issue 12 §3).

An archive that keeps the slices as received must decode them to serve this peer. Every run is checked, never
assumed: the sub-operation counts of getscu's final C-GET response, its final status, error lines (a failed
release included), the number of files written and the transfer syntax of each. A run is `complete` only when all
`expected` instances arrived uncompressed with a success status; the ratio is computed only over complete runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pydicom

UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
_COUNT = re.compile(r"Number of (Remaining|Completed|Failed|Warning) Suboperations\s*:\s*(\d+)")
_RESPONSE = re.compile(r"Received (?:Final )?C-GET Response \(([^)]*)\)")


def getscu(
    aet: str, host: str, port: int, called: str, study: str, out: Path, env: dict[str, str], timeout: float = 3600
) -> dict[str, Any]:
    """One `getscu` of STUDY level `study` into `out` (emptied first); wall time and what arrived."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = ["getscu", "-v", "-aet", aet, "-aec", called, "-S", "-k", "QueryRetrieveLevel=STUDY"]
    cmd += ["-k", f"StudyInstanceUID={study}", "-od", str(out), host, str(port)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t0
    text = res.stderr + res.stdout
    counts = {k.lower(): int(v) for k, v in _COUNT.findall(text)}  # the last report wins (only one is printed)
    statuses = _RESPONSE.findall(text)
    files = [f for f in out.iterdir() if f.is_file()]
    syntaxes: dict[str, int] = {}
    for f in files:
        try:
            ts = str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        except Exception as exc:  # noqa: BLE001 - an unreadable received file is reported, not raised
            ts = f"unreadable: {type(exc).__name__}"
        syntaxes[ts] = syntaxes.get(ts, 0) + 1
    errors = [ln for ln in text.splitlines() if ln.startswith(("E:", "F:"))]
    return {
        "seconds": seconds,
        "rc": res.returncode,
        "final_status": statuses[-1] if statuses else None,
        "completed": counts.get("completed"),
        "failed": counts.get("failed"),
        "warning": counts.get("warning"),
        "received": len(files),
        "received_uncompressed": sum(n for ts, n in syntaxes.items() if ts in UNCOMPRESSED),
        "transfer_syntaxes": syntaxes,
        "errors": errors[:8],
    }


def complete_run(run: dict[str, Any], expected: int) -> bool:
    """Success, every instance received uncompressed, no failed sub-operation and no error (a failed release
    included)."""
    return bool(
        run["final_status"] == "Success"
        and run["received_uncompressed"] == expected
        and not run["failed"]
        and not run["errors"]
    )


def summary(runs: list[dict[str, Any]], expected: int) -> dict[str, Any]:
    """Per-archive figure over the rounds: every run's outcome, the median time of the complete ones."""
    complete = [
        r
        for r in runs
        if r["final_status"] == "Success"
        and r["received_uncompressed"] == expected
        and not r["failed"]
        and not r["errors"]
    ]
    secs = sorted(r["seconds"] for r in complete)
    med = (
        secs[len(secs) // 2]
        if len(secs) % 2
        else (sum(secs[len(secs) // 2 - 1 : len(secs) // 2 + 1]) / 2 if secs else None)
    )
    return {
        "instances": expected,
        "complete": len(complete) == len(runs) and bool(runs),
        "seconds": [round(r["seconds"], 3) for r in runs],
        "median_s": None if med is None else round(med, 3),
        "instances_per_s": None if not med else round(expected / med, 1),
        "runs": [
            {k: r[k] for k in ("final_status", "completed", "failed", "warning", "received", "received_uncompressed")}
            | ({"errors": r["errors"]} if r["errors"] else {})
            | ({"transfer_syntaxes": r["transfer_syntaxes"]} if r["received_uncompressed"] != r["received"] else {})
            for r in runs
        ],
    }
