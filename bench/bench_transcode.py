"""Per-instance cost of decoding a stored instance for an uncompressed-only peer (engine/imaging/transcode.py; issue
12 §3): a 512×512 16-bit JPEG-lossless CT slice (pydicom's CT_small upsampled with noise, compressed by dcmtk's
dcmcjpeg), decoded to explicit VR little endian in the sandbox. Prints one JSON object: per-instance wall time and CPU
time of the sandbox worker and of the calling process, medians over `--runs`.

    .venv/bin/python bench/bench_transcode.py [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _slice(tmp: Path) -> Path:
    import numpy as np
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    ds = dcmread(get_testdata_file("CT_small.dcm"))
    arr = np.kron(ds.pixel_array, np.ones((4, 4), dtype=ds.pixel_array.dtype))
    arr = (arr.astype(np.int32) + np.random.default_rng(1).integers(-8, 9, arr.shape)).astype(arr.dtype)
    ds.Rows, ds.Columns, ds.PixelData = 512, 512, arr.tobytes()
    native, jll = tmp / "ct512.dcm", tmp / "ct512-jll.dcm"
    ds.save_as(native, enforce_file_format=True)
    subprocess.run(["/usr/bin/dcmcjpeg", "+e1", str(native), str(jll)], check=True)  # noqa: S603 - fixed tool
    return jll


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    from engine.imaging import native, transcode

    with tempfile.TemporaryDirectory() as tmpdir:
        src = _slice(Path(tmpdir))
        pool = transcode.Transcoder(workers=1)
        try:
            started = time.perf_counter()
            pool.native(src, native.EXPLICIT_VR_LE)  # the worker's start and imports are paid once
            first = time.perf_counter() - started
            worker = pool._idle[0]
            assert worker.pid is not None
            walls, child, parent = [], [], []
            for _ in range(args.runs):
                c0, p0, w0 = _cpu(worker.pid), time.process_time(), time.perf_counter()
                pool.native(src, native.EXPLICIT_VR_LE)
                walls.append(time.perf_counter() - w0)
                parent.append(time.process_time() - p0)
                child.append(_cpu(worker.pid) - c0)
        finally:
            pool.close()
        size = src.stat().st_size

    def ms(values: list[float]) -> float:
        return round(statistics.median(values) * 1000, 2)

    print(
        json.dumps(
            {
                "instance": "512x512 16-bit CT, JPEG lossless SV1",
                "stored_bytes": size,
                "runs": args.runs,
                "first_call_ms": round(first * 1000, 1),
                "wall_ms": ms(walls),
                "sandbox_cpu_ms": round(sum(child) / len(child) * 1000, 2),  # clock ticks: the mean, not the median
                "caller_cpu_ms": round(sum(parent) / len(parent) * 1000, 2),
                "load_average": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
