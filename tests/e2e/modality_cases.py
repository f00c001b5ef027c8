"""The studies of tests/e2e/test_viewer_modalities.py (issue 16: "reads CR, DR/DX, CT, MR, DSA/XA, MG, RF, US, NM,
PT, SC, multi-frame and compressed studies"): pydicom's bundled test files (anonymous) and synthetic images built
with tests/dicom/synthetic.py, stored in every transfer syntax the archive accepts (dicom/uids.py), and what pydicom
decodes of each (after the modality LUT) — the values the viewer must show.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_color_lut, apply_modality_lut
from pydicom.uid import (
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from tests.dicom import archive, synthetic
from tests.dicom.conftest import DCMTK

CR = "1.2.840.10008.5.1.4.1.1.1"
DX = "1.2.840.10008.5.1.4.1.1.1.1"
MG = "1.2.840.10008.5.1.4.1.1.1.2"
XA = "1.2.840.10008.5.1.4.1.1.12.1"
RF = "1.2.840.10008.5.1.4.1.1.12.2"
NM = "1.2.840.10008.5.1.4.1.1.20"
PT = "1.2.840.10008.5.1.4.1.1.128"
SC_1BIT = "1.2.840.10008.5.1.4.1.1.7.1"


@dataclass(frozen=True)
class Case:
    """One study: `build(patient_no)` gives its instances (one series); `lossy` allows decoder differences."""

    id: str
    build: Callable[[str], list[Dataset]]
    tolerance: float = 0.0  # |viewer value − pydicom value| allowed (lossy codecs decoded by other libraries)
    overlay: bool = False
    known_failure: str = ""  # a viewer failure not fixed yet: the case runs as a strict xfail with this reason


# -- pixels ------------------------------------------------------------------------------------------------------
def phantom(rows: int, cols: int, levels: tuple[int, int, int, int], shift: int = 0) -> np.ndarray:
    """Flat regions (so a probe at a pixel centre reads one value): background, a body ellipse, a bright disc and a
    dark disc; `shift` moves the discs (a cine's frames differ)."""
    y, x = np.mgrid[:rows, :cols]
    img = np.full((rows, cols), levels[0], dtype=np.int64)
    img[((x - cols / 2) / (cols * 0.42)) ** 2 + ((y - rows / 2) / (rows * 0.4)) ** 2 <= 1] = levels[1]
    img[np.hypot(x - cols * 0.35 - shift, y - rows * 0.45) < min(rows, cols) * 0.12] = levels[2]
    img[np.hypot(x - cols * 0.65 + shift, y - rows * 0.55) < min(rows, cols) * 0.1] = levels[3]
    return img


def mono(ds: Dataset, frames: list[np.ndarray], bits: int, stored: int, signed: bool, photometric: str) -> Dataset:
    arr = np.stack(frames)
    dtype = {8: np.uint8, 16: np.int16 if signed else np.uint16}[bits]
    ds.Rows, ds.Columns = arr.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, stored, stored - 1, int(signed)
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.PixelData = arr.astype(dtype).tobytes()
    return ds


def jpeg_baseline(ds: Dataset) -> Dataset:
    """8-bit frames as JPEG baseline through Pillow (as engine/imaging/compression.py does); RGB → YBR_FULL_422."""
    arr = ds.pixel_array
    frames = arr if int(ds.get("NumberOfFrames", 1) or 1) > 1 else arr[np.newaxis]
    out = []
    for f in frames:
        buf = BytesIO()
        Image.fromarray(np.ascontiguousarray(f.astype(np.uint8))).save(buf, format="JPEG", quality=92, subsampling=1)
        out.append(buf.getvalue())
    ds.PixelData = encapsulate(out)
    ds["PixelData"].VR = "OB"
    if ds.SamplesPerPixel == 3:
        ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.LossyImageCompression = "01"
    return ds


def dcmcjpeg_sv1(ds: Dataset) -> Dataset:
    """JPEG lossless SV1 by DCMTK's dcmcjpeg (+e1), as tests/dicomweb/test_wado_failures.py makes it."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "raw.dcm", Path(tmp) / "sv1.dcm"
        ds.save_as(src, enforce_file_format=True)
        subprocess.run([str(DCMTK / "dcmcjpeg"), "+e1", str(src), str(out)], check=True, capture_output=True)  # noqa: S603
        result = dcmread(out)
    assert result.file_meta.TransferSyntaxUID == JPEGLosslessSV1
    return result


# -- the studies -------------------------------------------------------------------------------------------------
def _new(sop: str, modality: str, patient_no: str, description: str) -> Dataset:
    ds = synthetic.base(sop, modality=modality, PatientID=patient_no, AccessionNumber="")
    ds.SeriesDescription = ds.StudyDescription = description
    return ds


def _bundled(name: str, modality: str) -> Callable[[str], list[Dataset]]:
    def build(patient_no: str) -> list[Dataset]:
        ds = archive.from_file(Path(get_testdata_file(name)), PatientID=patient_no, AccessionNumber="")
        ds.Modality = ds.get("Modality") or modality
        ds.SeriesDescription = f"pydicom {name}"
        ds.SeriesNumber = ds.get("SeriesNumber") or 1
        ds.InstanceNumber = ds.get("InstanceNumber") or 1
        return [ds]

    return build


def cr_mono1(p: str) -> list[Dataset]:
    """CR, MONOCHROME1 (high values shown dark), 12 of 16 bits, with a window."""
    ds = mono(
        _new(CR, "CR", p, "CR MONOCHROME1"), [phantom(320, 256, (3800, 2400, 700, 3300))], 16, 12, False, "MONOCHROME1"
    )
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    return [ds]


def mg_mono1_jpegls(p: str) -> list[Dataset]:
    """MG, MONOCHROME1, 14 bits, JPEG-LS lossless, no window (the viewer picks one from the pixels)."""
    ds = mono(
        _new(MG, "MG", p, "MG MONOCHROME1 JPEG-LS"),
        [phantom(384, 288, (16000, 9000, 1500, 12000))],
        16,
        14,
        False,
        "MONOCHROME1",
    )
    ds.compress(JPEGLSLossless)
    return [ds]


def dx_sv1(p: str) -> list[Dataset]:
    ds = mono(
        _new(DX, "DX", p, "DX JPEG lossless SV1"),
        [phantom(300, 240, (300, 1800, 3900, 900))],
        16,
        12,
        False,
        "MONOCHROME2",
    )
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    ds.PresentationIntentType = "FOR PRESENTATION"
    return [dcmcjpeg_sv1(ds)]


def ct_signed(p: str) -> list[Dataset]:
    """CT, signed stored values (air padding below 0) with RescaleIntercept −1024, J2K lossless."""
    ds = mono(
        _new(synthetic.CT_IMAGE, "CT", p, "CT signed J2K lossless"),
        [phantom(256, 256, (-2000, 1064, 2024, 224))],
        16,
        16,
        True,
        "MONOCHROME2",
    )
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 2000
    ds.compress(JPEG2000Lossless)
    return [ds]


def ct_j2k_lossy(p: str) -> list[Dataset]:
    ds = mono(
        _new(synthetic.CT_IMAGE, "CT", p, "CT J2K lossy"),
        [phantom(256, 256, (0, 1064, 2024, 224))],
        16,
        12,
        False,
        "MONOCHROME2",
    )
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.compress(JPEG2000, j2k_cr=[8])
    return [ds]


def xa_multiframe_jpeg(p: str) -> list[Dataset]:
    """XA (DSA) cine: 8 frames 8-bit, JPEG baseline."""
    frames = [phantom(256, 256, (20, 90, 230, 50), shift=4 * f) for f in range(8)]
    ds = mono(_new(XA, "XA", p, "XA multi-frame JPEG baseline"), frames, 8, 8, False, "MONOCHROME2")
    ds.FrameTime = 66.7
    return [jpeg_baseline(ds)]


def rf_rle(p: str) -> list[Dataset]:
    """RF, 10 of 16 bits, RLE lossless, 3 frames."""
    frames = [phantom(200, 200, (100, 500, 1000, 300), shift=6 * f) for f in range(3)]
    ds = mono(_new(RF, "RF", p, "RF RLE"), frames, 16, 10, False, "MONOCHROME2")
    ds.compress(RLELossless)
    return [ds]


def nm_multiframe(p: str) -> list[Dataset]:
    """NM, 4 frames of 16-bit counts, no window."""
    frames = [phantom(128, 128, (0, 40 + f, 900 - 50 * f, 10)) for f in range(4)]
    return [mono(_new(NM, "NM", p, "NM multi-frame"), frames, 16, 16, False, "MONOCHROME2")]


def pt_slope(p: str) -> list[Dataset]:
    """PT with a fractional RescaleSlope, Bq/ml, no window and no SUV tags."""
    ds = mono(_new(PT, "PT", p, "PT rescale"), [phantom(128, 128, (0, 3000, 30000, 800))], 16, 16, False, "MONOCHROME2")
    ds.RescaleSlope, ds.RescaleIntercept, ds.Units = 0.37, 0, "BQML"
    return [ds]


def us_rgb_jpeg(p: str) -> list[Dataset]:
    """US colour (RGB made into YBR_FULL_422 JPEG baseline)."""
    grey = phantom(160, 200, (10, 80, 200, 40))
    rgb = np.stack([grey, np.roll(grey, 20, axis=1) // 2 + 60, 255 - grey], axis=-1)
    ds = _new("1.2.840.10008.5.1.4.1.1.6.1", "US", p, "US colour JPEG")
    ds.Rows, ds.Columns = grey.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = rgb.astype(np.uint8).tobytes()
    return [jpeg_baseline(ds)]


def us_palette_bulk(p: str) -> list[Dataset]:
    """PALETTE COLOR with 4,096-entry 16-bit tables (8 KB each, entries 0–255 pydicom's): over the server's 1 KB
    inline limit, so the metadata carries BulkDataURIs, which the viewer fetches before the image loads."""
    (ds,) = _bundled("examples_palette.dcm", "US")(p)
    for colour in ("Red", "Green", "Blue"):
        table = np.frombuffer(ds[f"{colour}PaletteColorLookupTableData"].value, dtype="<u2")
        wide = np.zeros(4096, dtype="<u2")
        wide[: table.size] = table
        ds[f"{colour}PaletteColorLookupTableDescriptor"].value = [4096, 0, 16]
        ds[f"{colour}PaletteColorLookupTableData"].value = wide.tobytes()
    ds.SeriesDescription = "palette, 4,096-entry tables"
    return [ds]


def sc_1bit(p: str) -> list[Dataset]:
    """Multi-frame single-bit SC (BitsAllocated 1), two frames."""
    frames = [(phantom(64, 96, (0, 1, 0, 1), shift=8 * f) > 0).astype(np.uint8) for f in range(2)]
    ds = _new(SC_1BIT, "OT", p, "SC 1-bit")
    ds.Rows, ds.Columns = frames[0].shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    ds.NumberOfFrames = len(frames)
    ds.PixelData = np.packbits(np.stack(frames).ravel(), bitorder="little").tobytes()
    ds["PixelData"].VR = "OB"
    return [ds]


CASES: list[Case] = [
    Case("ct-signed-rescale", _bundled("CT_small.dcm", "CT")),
    Case("ct-signed-j2k-lossless", ct_signed),
    Case("ct-j2k-lossy", ct_j2k_lossy, tolerance=2),
    Case("ct-j2k-lossy-pydicom", _bundled("693_J2KI.dcm", "CT"), tolerance=2),
    Case("mr-native", _bundled("MR_small.dcm", "MR")),
    Case("mr-rle", _bundled("MR_small_RLE.dcm", "MR")),
    Case("mr-jpegls", _bundled("MR_small_jpeg_ls_lossless.dcm", "MR")),
    Case("mr-j2k-lossless", _bundled("MR_small_jp2klossless.dcm", "MR")),
    Case("mr-overlay", _bundled("examples_overlay.dcm", "MR"), overlay=True),
    Case("cr-monochrome1", cr_mono1),
    Case("mg-monochrome1-jpegls", mg_mono1_jpegls),
    Case("dx-jpeg-lossless-sv1", dx_sv1),
    Case("xa-multiframe-jpeg-baseline", xa_multiframe_jpeg, tolerance=3),
    Case("rf-multiframe-rle", rf_rle),
    Case("nm-multiframe", nm_multiframe),
    Case("pt-rescale-slope", pt_slope),
    Case("us-cine-ybr-jpeg", _bundled("examples_ybr_color.dcm", "US"), tolerance=6),
    Case("us-colour-jpeg", us_rgb_jpeg, tolerance=6),
    Case("us-rgb", _bundled("examples_rgb_color.dcm", "US")),
    Case("us-palette", _bundled("examples_palette.dcm", "US")),
    Case("us-palette-bulk-tables", us_palette_bulk),
    Case("us-j2k-colour", _bundled("examples_jpeg2k.dcm", "US")),
    Case("sc-jpeg-ybr-dcmtk", _bundled("SC_rgb_jpeg_dcmtk.dcm", "OT"), tolerance=6),
    Case("sc-rgb-rle-2frame", _bundled("SC_rgb_rle_2frame.dcm", "OT")),
    Case("sc-rgb-jpeg-lossless-sv1", _bundled("SC_rgb_jpeg_gdcm.dcm", "OT")),
    Case(
        "sc-1bit",
        sc_1bit,
        known_failure="dicom-image-loader 5.14 leaves WADO-RS frames of BitsAllocated 1 packed (decodeLittleEndian; "
        "only its wadouri path calls unpackBinaryFrame)",
    ),
    # dicom-image-loader's 12-bit JPEG decoder (jpeg.js) reads 13 where libjpeg and libjpeg-turbo both decode 0: the
    # viewer asks these frames uncompressed first (web/src/viewer/core/frameSyntax.ts WRONG_IN_BROWSER)
    Case("nm-jpeg-extended-12bit", _bundled("JPGExtended.dcm", "NM"), tolerance=4),
]


def prepare(case: Case, patient_no: str) -> list[Dataset]:
    """The case's instances as one new study and series of the patient."""
    study, series = generate_uid(), generate_uid()
    out = case.build(patient_no)
    for i, ds in enumerate(out):
        ds.PatientID = patient_no
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.InstanceNumber = i + 1
    return out


# -- what pydicom reads ----------------------------------------------------------------------------------------
def expected_frames(ds: Dataset) -> np.ndarray:
    """Every frame as the viewer should hold it: (frames, rows, cols) after the modality LUT, or (frames, rows,
    cols, 3) RGB for colour (YBR converted, palette applied and scaled to 8 bits)."""
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    back = dcmread(BytesIO(buf.getvalue()))
    arr = back.pixel_array
    frames = int(back.get("NumberOfFrames", 1) or 1)
    photometric = str(back.PhotometricInterpretation)
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, back).astype(np.float64)
        if rgb.max() > 255:
            rgb = np.floor(rgb / 256)  # 16-bit LUT entries shown in 8 bits
        arr = rgb
    elif int(back.SamplesPerPixel) == 1:
        arr = apply_modality_lut(arr, back).astype(np.float64)
    if frames == 1:
        arr = arr[np.newaxis]
    return np.asarray(arr, dtype=np.float64)


def probe_points(frame: np.ndarray, count: int = 4) -> list[tuple[int, int]]:
    """Pixels inside flat 5×5 neighbourhoods (a probe at the pixel centre then reads that value whatever the
    display's interpolation) with values spread over the frame's range: its darkest, brightest and some between."""
    grey = frame if frame.ndim == 2 else frame.mean(axis=-1)
    rows, cols = grey.shape
    flat: list[tuple[float, int, int]] = []
    step = max(1, min(rows, cols) // 40)
    for y in range(3, rows - 3, step):
        for x in range(3, cols - 3, step):
            block = frame[y - 2 : y + 3, x - 2 : x + 3]
            if float(block.max() - block.min()) <= 1e-9:
                flat.append((float(grey[y, x]), x, y))
    if len(flat) < 2:  # a noisy image (a bundled US): the least varying neighbourhoods instead
        spread = []
        for y in range(3, rows - 3, step):
            for x in range(3, cols - 3, step):
                block = grey[y - 2 : y + 3, x - 2 : x + 3]
                spread.append((float(block.max() - block.min()), float(grey[y, x]), x, y))
        spread.sort()
        flat = [(v, x, y) for _s, v, x, y in spread[: max(8, len(spread) // 20)]]
    flat.sort()
    picks = [flat[round(i * (len(flat) - 1) / (count - 1))] for i in range(count)]
    seen: list[tuple[int, int]] = []
    for _v, x, y in picks:
        if (x, y) not in seen:
            seen.append((x, y))
    return seen
