"""Cost of the structural check of a received data set (engine/imaging/validate.py; REQ: DSEC-05, DSEC-08); prints one
JSON object.

Run with `.venv/bin/python bench/bench_validate.py [--reps 2000]`. Per file, the median µs over `--reps` calls (the
file in the page cache, as it is right after the receive wrote it): `validate_us`, the structural check alone
(`validate.check_file`), and `read_meta_us`, what every received instance pays for its check and its indexed tags
(`header.read_meta`: the check collecting the tags on its walk, then decoding them). For scale: pydicom's
`dcmread(stop_before_pixels=True)`. Files: pydicom's CT_small/MR_small (the benchmark's small instances) and a few
encapsulated ones, a synthetic 512×512 16-bit CT slice (large_1's), a Comprehensive SR, and a 200-frame 512×512
native multi-frame (≈100 MB).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import dicom_data  # noqa: E402
from engine.imaging import header, validate  # noqa: E402

BUNDLED = ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_gdcm.dcm", "examples_ybr_color.dcm"]


def median_us(fn: Callable[[Path], object], path: Path, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        fn(path)
        times.append(time.perf_counter_ns() - t0)
    return round(statistics.median(times) / 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        files = {name: Path(str(get_testdata_file(name))) for name in BUNDLED}
        files["test-SR.dcm"] = Path(str(get_testdata_file("test-SR.dcm")))
        files["ct_512x512"] = next(dicom_data.write_ct_slices(out / "ct", 1)[0].iterdir())
        multi = out / "multiframe.dcm"
        dicom_data.write_multiframe(multi, 200)
        files["multiframe_200x512x512"] = multi
        result: dict[str, object] = {}
        for name, path in files.items():
            validate.check_file(path)  # warm: a failure here is a bug in the bench data
            reps = args.reps if path.stat().st_size < 10_000_000 else max(args.reps // 10, 20)
            result[name] = {
                "bytes": path.stat().st_size,
                "validate_us": median_us(validate.check_file, path, reps),
                "read_meta_us": median_us(header.read_meta, path, reps),
                "pydicom_header_us": median_us(lambda p: dcmread(p, stop_before_pixels=True), path, reps // 4),
            }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
