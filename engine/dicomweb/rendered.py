"""WADO-RS rendered and thumbnail resources, and WADO-URI's image/jpeg (PS3.18 §8.3.5.1, §10.4.1.1.5, §9; issue 15).

A frame's pixels come from engine/dicomweb/frames.py (uncompressed: read from the file; compressed: decoded in
engine/imaging/transcode.py's sandboxed pool), then: Modality LUT (Rescale Slope/Intercept), the window from the
request (`window=center,width[,linear|linear-exact|sigmoid]`) or the image's first VOI window, else the frame's
min/max; MONOCHROME1 inverted; colour images (RGB, YBR_FULL) shown as RGB; encoded by Pillow as JPEG or PNG, scaled
to `viewport=width,height` keeping the aspect ratio (thumbnails: 128×128 by default).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from engine.dicomweb.frames import FramePlan, get_frames
from engine.dicomweb.media import EXPLICIT_VR_LE, MediaRange
from engine.dicomweb.wado import Header, InstanceRef
from engine.errors import NotFound, ValidationFailed
from engine.imaging.native import DECODABLE, UNCOMPRESSED, TranscodeError

JPEG, PNG = "image/jpeg", "image/png"
THUMBNAIL = (128, 128)
MAX_VIEWPORT = 4096
_FUNCTIONS = {"linear", "linear-exact", "sigmoid"}


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: str = "linear"


def parse_window(raw: str | None) -> Window | None:
    """`center,width[,function]` (PS3.18 §8.3.5.1.3).

    Raises:
        ValidationFailed: not two numbers (width > 0) and an optional known function.
    """
    if raw is None or raw == "":
        return None
    parts = [p.strip() for p in raw.split(",")]
    try:
        center, width = float(parts[0]), float(parts[1])
    except (ValueError, IndexError):
        raise ValidationFailed("bad_window", "窗位窗宽格式不正确（窗位,窗宽[,函数]）") from None
    function = parts[2].lower() if len(parts) > 2 else "linear"
    if len(parts) > 3 or width <= 0 or function not in _FUNCTIONS or not np.isfinite([center, width]).all():
        raise ValidationFailed("bad_window", "窗位窗宽格式不正确（窗位,窗宽[,函数]），窗宽须大于 0")
    return Window(center, width, function)


def parse_viewport(raw: str | None, default: tuple[int, int] | None) -> tuple[int, int] | None:
    """`width,height` (PS3.18 §8.3.5.1.2; the offsets of its long form are not supported)."""
    if raw is None or raw == "":
        return default
    parts = [p.strip() for p in raw.split(",")]
    if len(parts) != 2 or not all(p.isdigit() and 0 < int(p) <= MAX_VIEWPORT for p in parts):
        raise ValidationFailed("bad_viewport", f"视口格式不正确（宽,高，1 到 {MAX_VIEWPORT} 像素）")
    return int(parts[0]), int(parts[1])


def rendered_media(ranges: list[MediaRange]) -> str | None:
    """image/jpeg or image/png, the first the Accept header takes (JPEG for `*/*` and `image/*`)."""
    for r in ranges:
        part = r.part_type or r.media
        for media in (JPEG, PNG):
            if MediaRange(part).matches(media):
                return media
    return None


def frame_array(ref: InstanceRef, header: Header, number: int) -> tuple[np.ndarray[Any, Any], str]:
    """Frame `number` as an array (rows, columns[, samples]) and its Photometric Interpretation.

    Raises:
        NotFound: no pixel data, or no such frame. TranscodeError: the frame does not decode.
    """
    ds = header.ds
    if header.pixel_offset is None or "Rows" not in ds:
        raise NotFound("not_an_image", "该实例没有可显示的图像")
    if number > header.frames:
        raise NotFound("frame_not_found", f"帧号超出范围（共 {header.frames} 帧）")
    bits = int(ds.BitsAllocated)
    if bits not in (8, 16, 32) or (header.ts not in UNCOMPRESSED and header.ts not in DECODABLE):
        raise TranscodeError(f"无法显示该图像（位深 {bits}，传输语法 {header.ts}）")
    how = FramePlan("application/octet-stream", EXPLICIT_VR_LE, header.ts in UNCOMPRESSED)
    pi, frames = get_frames(ref, header, [number], how)
    ok, value = frames[0]
    if not ok or not isinstance(value, bytes):
        raise TranscodeError(f"帧 {number} 无法解码：{value!s}")
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    rows, cols = int(ds.Rows), int(ds.Columns)
    arr = np.frombuffer(value, dtype=f"<{'i' if signed else 'u'}{bits // 8}")
    if samples == 1:
        return arr.reshape(rows, cols), pi
    planar = int(ds.get("PlanarConfiguration", 0) or 0) == 1 and header.ts in UNCOMPRESSED
    if planar:
        return arr.reshape(samples, rows, cols).transpose(1, 2, 0), pi
    return arr.reshape(rows, cols, samples), pi


def _first(value: Any) -> float | None:
    """The first value of a DS/IS element (multi-valued or not) as a float; None when absent or not a number."""
    if value is None or value == "":
        return None
    if not isinstance(value, str | bytes | int | float) and len(value):
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


_LUT_MIN_PIXELS = 65536


def _grey(
    arr: np.ndarray[Any, Any],
    ds: Any,
    pi: str,
    window: Window | None,
    extent: tuple[float, float] | None = None,
) -> np.ndarray[Any, Any]:
    """`extent`: the stored values' min and max when `arr` is a shrunk frame (the full frame's, for the min/max
    window).

    A frame of 8- or 16-bit integers goes through a lookup table: the same LUTs worked out once per stored value
    between the frame's min and max (at most 65,536), then indexed — exactly the same bytes as per pixel, at a
    fraction of the cost (issue 16: the viewer's first image, UX R18; a 3000×2400 DR's float64 LUTs took ~100 ms)."""
    if arr.dtype.kind in "iu" and arr.dtype.itemsize <= 2 and arr.size > _LUT_MIN_PIXELS:
        lo, hi = int(arr.min()), int(arr.max())
        lut = _grey(np.arange(lo, hi + 1, dtype=np.int64), ds, pi, window, extent if extent is not None else (lo, hi))
        # arr − lo lies in [0, hi − lo]: no overflow in the frame's own type when that range fits it
        fits = hi - lo <= np.iinfo(arr.dtype).max
        return np.take(lut, (arr - arr.dtype.type(lo)) if fits else (arr.astype(np.int32) - lo))
    values = arr.astype(np.float64)
    slope = _first(ds.get("RescaleSlope")) or 1.0
    intercept = _first(ds.get("RescaleIntercept")) or 0.0
    values = values * slope + intercept
    if window is None:
        center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").lower().replace("_", "-")
        if center is not None and width is not None and width > 0:
            window = Window(center, width, function if function in _FUNCTIONS else "linear")
    out: np.ndarray[Any, Any]
    if window is None:
        low, high = float(values.min()), float(values.max())
        if extent is not None:
            low, high = sorted((extent[0] * slope + intercept, extent[1] * slope + intercept))
        out = (values - low) / (high - low) if high > low else np.zeros_like(values)
    elif window.function == "sigmoid":  # PS3.3 C.11.2.1.3.1
        out = 1.0 / (1.0 + np.exp(-4.0 * (values - window.center) / window.width))
    elif window.function == "linear-exact":  # PS3.3 C.11.2.1.3.2
        out = (values - (window.center - window.width / 2)) / window.width
    else:  # PS3.3 C.11.2.1.2.1
        out = (
            (values - (window.center - 0.5)) / (window.width - 1) + 0.5
            if window.width > 1
            else (values >= window.center) * 1.0
        )
    out = np.clip(out, 0.0, 1.0)
    if pi == "MONOCHROME1":
        out = 1.0 - out
    return (out * 255.0 + 0.5).astype(np.uint8)


def _colour(arr: np.ndarray[Any, Any], ds: Any, pi: str) -> np.ndarray[Any, Any]:
    if pi.startswith("YBR"):
        from pydicom.pixels import convert_color_space

        arr = convert_color_space(arr, "YBR_FULL", "RGB")
    bits = int(ds.get("BitsStored", ds.BitsAllocated) or 8)
    if bits > 8:
        arr = arr.astype(np.float64) / ((1 << bits) - 1) * 255.0 + 0.5
    return np.clip(arr, 0, 255).astype(np.uint8)


def _shrink(arr: np.ndarray[Any, Any], viewport: tuple[int, int]) -> np.ndarray[Any, Any]:
    """A grey frame much larger than the viewport averaged over k×k blocks (k whole, the result still at least twice
    the viewport; the last < k rows and columns dropped) before the Modality and VOI LUTs, which then run on 1/k² of
    the pixels: a 3000×2400 DR thumbnail took ~130 ms (float64 LUTs over 7.2 M pixels, then Lanczos), ~20 ms so
    (bench/bench_viewer.py: the viewer asks a thumbnail per series beside the first frames). Averaging stored values
    before the LUTs is what a viewer's texture filtering does too; Lanczos then scales the rest of the way."""
    k = min(arr.shape[0] // (2 * viewport[1]), arr.shape[1] // (2 * viewport[0]))
    if k < 2:
        return arr
    rows, cols = arr.shape[0] // k, arr.shape[1] // k
    return arr[: rows * k, : cols * k].reshape(rows, k, cols, k).mean(axis=(1, 3))


def render(
    arr: np.ndarray[Any, Any],
    ds: Any,
    pi: str,
    media: str,
    window: Window | None = None,
    viewport: tuple[int, int] | None = None,
    quality: int = 90,
) -> bytes:
    """The frame as a JPEG or PNG image (see the module docstring)."""
    if pi in ("MONOCHROME1", "MONOCHROME2") or arr.ndim == 2:
        extent = None
        if viewport is not None and pi in ("MONOCHROME1", "MONOCHROME2"):
            shrunk = _shrink(arr, viewport)
            if shrunk is not arr:
                extent = (float(arr.min()), float(arr.max()))
                arr = shrunk
        img = Image.fromarray(_grey(arr, ds, pi, window, extent), mode="L")
    elif pi == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        img = Image.fromarray(_colour(apply_color_lut(arr, ds), ds, "RGB"), mode="RGB")
    else:
        img = Image.fromarray(_colour(arr, ds, pi), mode="RGB")
    if viewport is not None:
        scale = min(viewport[0] / img.width, viewport[1] / img.height)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        # reducing_gap: a large shrink first averages whole blocks (Image.reduce), then Lanczos — Pillow's own
        # "nearly indistinguishable" fast path; a 3000×2400 DR to a screen's viewport is several times faster
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = io.BytesIO()
    if media == PNG:
        img.save(out, "PNG")
    else:
        img.save(out, "JPEG", quality=max(1, min(100, quality)))
    return out.getvalue()
