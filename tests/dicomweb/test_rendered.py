"""Rendered images and thumbnails of large grey frames (engine/dicomweb/rendered.py; REQ: VIEW-01, issue 15/16).

A frame far larger than the asked viewport (a DR's 3000×2400 for a 96×96 series thumbnail) is averaged over whole
blocks before the LUTs: the image must be the one the full-resolution path gives — same size, same grey levels within
what resampling moves — for every VOI path (the image's window, min/max, MONOCHROME1).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from engine.dicomweb import rendered


def _frame(rows: int = 1500, cols: int = 1200) -> np.ndarray[Any, Any]:
    """A chest-like 12-bit frame: smooth body, sharp-edged inserts, noise."""
    y, x = np.mgrid[:rows, :cols]
    r = np.hypot((x - cols / 2) / (cols * 0.4), (y - rows / 2) / (rows * 0.45))
    img = 3000 - 2200 * np.exp(-(r**4))
    img[(np.hypot(x - cols * 0.3, y - rows * 0.4) < rows * 0.05)] = 400
    img += np.random.default_rng(3).normal(0, 20, size=img.shape)
    return np.clip(img, 0, 4095).astype(np.uint16)


def _ds(**kw: Any) -> Dataset:
    ds = Dataset()
    ds.RescaleSlope, ds.RescaleIntercept = "1", "0"
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def _reference(arr: np.ndarray[Any, Any], ds: Dataset, pi: str, viewport: tuple[int, int]) -> np.ndarray[Any, Any]:
    """The full-resolution path: LUTs over every pixel, then Lanczos to the viewport."""
    img = Image.fromarray(rendered._grey(arr, ds, pi, None), mode="L")
    scale = min(viewport[0] / img.width, viewport[1] / img.height)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return np.asarray(img.resize(size, Image.Resampling.LANCZOS), dtype=np.int16)


def _png(arr: np.ndarray[Any, Any], ds: Dataset, pi: str, viewport: tuple[int, int]) -> np.ndarray[Any, Any]:
    out = rendered.render(arr, ds, pi, rendered.PNG, None, viewport)
    return np.asarray(Image.open(io.BytesIO(out)), dtype=np.int16)


def test_view01_large_frame_thumbnail_same_image_as_full_resolution() -> None:
    arr = _frame()
    cases = [
        (_ds(WindowCenter="2048", WindowWidth="4096"), "MONOCHROME2", (96, 96)),
        (_ds(WindowCenter="1500", WindowWidth="1200"), "MONOCHROME1", (128, 128)),
        (_ds(), "MONOCHROME2", (200, 100)),  # no window: the frame's min/max
    ]
    for ds, pi, viewport in cases:
        got, want = _png(arr, ds, pi, viewport), _reference(arr, ds, pi, viewport)
        assert got.shape == want.shape, (pi, viewport)
        diff = np.abs(got - want)
        assert diff.mean() < 0.5, (pi, viewport, diff.mean())
        assert np.percentile(diff, 99) <= 2, (pi, viewport)
    # MONOCHROME1 is inverted: the bright (high-value) corners are dark
    corners = _png(arr, _ds(WindowCenter="2048", WindowWidth="4096"), "MONOCHROME1", (96, 96))
    assert corners[0, 0] < 80


def test_view01_frames_near_the_viewport_size_are_not_shrunk() -> None:
    arr = _frame(300, 250)
    assert rendered._shrink(arr, (128, 128)) is arr  # less than twice the viewport on a side: untouched
    shrunk = rendered._shrink(arr, (60, 60))  # 300 // 120 = 2, 250 // 120 = 2
    assert shrunk.shape == (150, 125)
    assert shrunk[10, 10] == arr[20:22, 20:22].mean()


def test_lut_path_gives_the_same_bytes_as_per_pixel(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Issue 16 (UX R18, the viewer's first image): integer frames go through a per-value lookup table; every VOI path
    must give exactly the bytes the per-pixel computation gives — signed and unsigned, a range wider than the type's
    positive half, slope < 0, MONOCHROME1, min/max, the image's window, a requested linear-exact and sigmoid window."""
    rng = np.random.default_rng(16)
    frames = [
        rng.integers(0, 4096, (512, 512)).astype(np.uint16),
        rng.integers(-2000, 3000, (512, 512)).astype(np.int16),
        rng.integers(-32768, 32767, (400, 300)).astype(np.int16),
        rng.integers(0, 256, (300, 300)).astype(np.uint8),
    ]
    cases: list[tuple[Dataset, str, rendered.Window | None]] = [
        (_ds(), "MONOCHROME2", None),
        (_ds(), "MONOCHROME1", None),
        (_ds(RescaleSlope="-2", RescaleIntercept="100"), "MONOCHROME2", None),
        (_ds(RescaleIntercept="-1024", WindowCenter="40", WindowWidth="400"), "MONOCHROME2", None),
        (_ds(), "MONOCHROME2", rendered.Window(1000.0, 800.0, "linear-exact")),
        (_ds(), "MONOCHROME1", rendered.Window(200.0, 1500.0, "sigmoid")),
    ]
    for arr in frames:
        for ds, pi, window in cases:
            monkeypatch.setattr(rendered, "_LUT_MIN_PIXELS", 10**12)
            per_pixel = rendered._grey(arr, ds, pi, window)
            monkeypatch.setattr(rendered, "_LUT_MIN_PIXELS", 0)
            via_lut = rendered._grey(arr, ds, pi, window)
            assert via_lut.dtype == np.uint8
            assert np.array_equal(per_pixel, via_lut), (arr.dtype, pi, window)
