"""Synthetic demo images (demo mode only; no real patient data): numpy phantoms written as DICOM Part-10 by pydicom.

- `ct_chest`: ~80 axial 512×512 slices, int16 stored as HU + 1024 (RescaleIntercept -1024, RescaleType HU) — body
  outline with fat, lungs with vessels and a nodule, heart, aorta, trachea, spine, ribs, sternum — so the lung,
  mediastinum and bone windows each show something different.
- `dx_chest`: PA and lateral chest radiographs (Digital X-Ray, For Presentation), a series each.
- `mr_brain`: ~24 axial T2-like 256×256 slices.
- `us_cine`: one US Multi-frame instance of ~40 8-bit frames (a beating chamber in a sector) for cine.
- `dx_spine_overlay`: a lumbar spine radiograph carrying a 60xx overlay plane (markers and labels).

Every generator takes a `Patient` (Chinese name, SpecificCharacterSet ISO_IR 192) and returns pydicom Datasets with
fresh UIDs; the caller writes and stores them through the receive path (engine/demo/cases.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pack_bits
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
US_MULTIFRAME_STORAGE = "1.2.840.10008.5.1.4.1.1.3.1"


@dataclass(frozen=True)
class Patient:
    patient_no: str
    name: str  # Chinese, as the hospital registered it
    sex: str  # M | F
    birth_date: str  # YYYYMMDD


@dataclass(frozen=True)
class StudyInfo:
    accession: str
    when: datetime  # local time of the exam
    description: str
    body_part: str  # DICOM BodyPartExamined


def _file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _header(
    p: Patient, st: StudyInfo, study_uid: str, series_uid: str, sop_class: str, modality: str, series_no: int
) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: the Chinese patient name and descriptions
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta = _file_meta(sop_class, ds.SOPInstanceUID)
    day, time = st.when.strftime("%Y%m%d"), st.when.strftime("%H%M%S")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = day
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = time
    ds.AccessionNumber = st.accession
    ds.Modality = modality
    ds.Manufacturer = "telerad demo (synthetic)"
    ds.InstitutionName = "第一成员医院"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = st.description
    ds.PatientName = p.name
    ds.PatientID = p.patient_no
    ds.PatientBirthDate = p.birth_date
    ds.PatientSex = p.sex
    ds.BodyPartExamined = st.body_part
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyID = st.accession[-8:]
    ds.SeriesNumber = series_no
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def _paint(img: np.ndarray, cx: float, cy: float, rx: float, ry: float, value: float, *, add: bool = False) -> None:
    """Fill (or add to) an axis-aligned ellipse, touching only its bounding box."""
    h, w = img.shape
    x0, x1 = max(int(cx - rx) - 1, 0), min(int(cx + rx) + 2, w)
    y0, y1 = max(int(cy - ry) - 1, 0), min(int(cy + ry) + 2, h)
    if x0 >= x1 or y0 >= y1 or rx <= 0 or ry <= 0:
        return
    y, x = np.ogrid[y0:y1, x0:x1]
    mask = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1.0
    if add:
        img[y0:y1, x0:x1][mask] += value
    else:
        img[y0:y1, x0:x1][mask] = value


# -- CT chest ---------------------------------------------------------------------------------------------------


def _ct_slice(t: float, i: int, vessels: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """One axial slice in HU; t in [0, 1] from the lung apices (0) to the upper abdomen (1)."""
    img = np.full((512, 512), -1000.0, dtype=np.float32)
    cx, cy = 256.0, 262.0
    bw, bh = 225.0 - 20 * (1 - t), 160.0
    _paint(img, cx, cy, bw, bh, -100)  # subcutaneous fat
    _paint(img, cx, cy, bw - 14, bh - 12, 45)  # chest wall muscle
    _paint(img, cx, cy, bw - 26, bh - 24, 15)  # inside: soft tissue / mediastinal fat below
    lung = math.sin(math.pi * min(max(0.08 + 0.95 * t, 0.0), 1.0)) ** 0.7 if t < 0.9 else 0.0
    if t > 0.68:  # liver under the right dome, spleen/stomach on the left
        _paint(img, cx - 60, cy + 5, 150, 120, 60)
        _paint(img, cx + 95, cy - 10, 70, 60, -700 if t < 0.8 else 50)  # stomach gas bubble, then wall
    if lung > 0.05:
        for side in (-1, 1):
            lx, ly = cx + side * 98, cy - 8
            _paint(img, lx, ly, 78 * lung, 118 * lung, -860)
    # vessels inside the lungs (branching points drifting with z) — lung window texture
    for vx, vy, dx, dy, r in vessels:
        px, py = vx + dx * i, vy + dy * i
        ix, iy = int(px), int(py)
        if 0 <= ix < 512 and 0 <= iy < 512 and img[iy, ix] < -700:
            _paint(img, px, py, r, r, 30)
    if 0.15 < t < 0.3:  # nodule in the right upper lobe (image left), ~8 mm
        _paint(img, cx - 120, cy - 60, 6, 6, 35)
    if t < 0.4:  # trachea, then the main bronchi
        if t < 0.3:
            _paint(img, cx, cy - 70, 11, 10, -1000)
        else:
            _paint(img, cx - 20, cy - 62, 7, 7, -1000)
            _paint(img, cx + 20, cy - 62, 7, 7, -1000)
    if 0.25 < t < 0.35:  # aortic arch
        _paint(img, cx + 5, cy - 40, 40, 14, 45)
    if 0.33 < t < 0.6:  # ascending aorta and pulmonary trunk
        _paint(img, cx + 12, cy - 55, 18, 18, 45)
        _paint(img, cx + 45, cy - 60, 15, 15, 40)
    if 0.45 < t < 0.85:  # heart in its pericardial fat
        k = math.sin(math.pi * (t - 0.45) / 0.4)
        _paint(img, cx + 28, cy - 35, 92 * k + 6, 72 * k + 6, -90)
        _paint(img, cx + 28, cy - 35, 86 * k, 66 * k, 42)
    if t > 0.3:
        _paint(img, cx + 32, cy + 45, 14, 14, 45)  # descending aorta
    # spine: vertebral body (disc every 8 slices), canal, spinous process
    disc = i % 8 in (0, 1)
    vb_y = cy + 70
    _paint(img, cx, vb_y, 31, 27, 80 if disc else 900)
    if not disc:
        _paint(img, cx, vb_y, 27, 23, 260)
    _paint(img, cx, vb_y + 42, 12, 11, 20)
    _paint(img, cx - 17, vb_y + 42, 6, 14, 700)
    _paint(img, cx + 17, vb_y + 42, 6, 14, 700)
    _paint(img, cx, vb_y + 64, 6, 13, 700)
    _paint(img, cx, cy - bh + 28, 17, 7, 600 if t < 0.8 else 15)  # sternum
    # ribs: a ring of bone sections whose angles turn slowly with z
    if t < 0.85:
        for k in range(12):
            a = (k / 12) * 2 * math.pi + 0.15 * t + (0.13 if k % 2 else 0)
            if abs(math.sin(a)) > 0.97 and math.sin(a) < 0:  # none over the sternum
                continue
            rx, ry = cx + (bw - 24) * math.cos(a), cy + (bh - 21) * math.sin(a)
            _paint(img, rx, ry, 8, 6, 750)
            _paint(img, rx, ry, 5, 3, 250)
    img[432:440, 60:452] = 250  # table
    return img + noise


def ct_chest(p: Patient, st: StudyInfo, slices: int = 80) -> list[Dataset]:
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(16)
    vessels = np.column_stack(
        [
            np.concatenate([rng.uniform(110, 210, 70), rng.uniform(300, 400, 70)]),
            rng.uniform(150, 360, 140),
            rng.normal(0, 0.4, 140),
            rng.normal(0, 0.4, 140),
            rng.uniform(1.2, 3.2, 140),
        ]
    )
    noise = rng.normal(0, 9, size=(4, 512, 512)).astype(np.float32)
    spacing = 3.0
    out = []
    for i in range(slices):
        t = i / max(slices - 1, 1)
        hu = _ct_slice(t, i, vessels, np.roll(noise[i % 4], 7 * i, axis=1))
        ds = _header(p, st, study, series, CT_STORAGE, "CT", 2)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.FrameOfReferenceUID = frame
        ds.PositionReferenceIndicator = ""
        ds.SeriesDescription = "胸部平扫 3mm"
        ds.InstanceNumber = i + 1
        z = -100.0 - spacing * i
        ds.ImagePositionPatient = [-179.2, -179.2, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = z
        ds.SliceThickness = str(spacing)
        ds.KVP = "120"
        ds.PatientPosition = "HFS"
        ds.Rows = ds.Columns = 512
        ds.PixelSpacing = [0.7, 0.7]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
        ds.WindowCenter, ds.WindowWidth = ["40", "-600"], ["400", "1500"]
        ds.PixelData = np.clip(hu + 1024, -1024, 3071).astype(np.int16).tobytes()
        out.append(ds)
    return out


# -- DX chest and spine ------------------------------------------------------------------------------------------


def _dx_common(ds: Dataset, rows: int, cols: int, view: str, orientation: list[str]) -> None:
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ViewPosition = view
    ds.PatientOrientation = orientation
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = rows, cols
    ds.ImagerPixelSpacing = ds.PixelSpacing = [0.2, 0.2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = "2000", "3600"
    ds.KVP = "120"


def _radiograph(att: np.ndarray, rng: np.random.Generator) -> bytes:
    """Attenuation (0 air .. ~1 bone) to 12-bit For Presentation values: bone bright, air dark."""
    small = (200 + 3400 * (1 - np.exp(-2.2 * att))).astype(np.float32)
    img = small.repeat(2, axis=0).repeat(2, axis=1)  # the phantom is drawn at half resolution
    img += rng.standard_normal(img.shape, dtype=np.float32) * 25
    return np.clip(img, 0, 4095).astype(np.uint16).tobytes()


def _grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Half-resolution coordinates (u across in [-1, 1], v down in [0, 1]) as broadcasting vectors."""
    h, w = rows // 2, cols // 2
    u = (np.arange(w, dtype=np.float32) - w / 2) / (w / 2)
    v = np.arange(h, dtype=np.float32) / h
    return u[None, :], v[:, None]


def _dx_pa(rows: int, cols: int) -> np.ndarray:
    u, v = _grid(rows, cols)  # u in [-1, 1] left-right, v in [0, 1] top-bottom
    body = np.clip(1 - (u / (0.82 + 0.1 * v)) ** 6, 0, None) * (v > 0.04)
    att = 0.55 * body
    lungs = np.zeros_like(att)
    for side in (-1, 1):
        lungs += np.clip(1 - ((u - side * 0.38) / 0.3) ** 2 - ((v - 0.5) / 0.36) ** 2, 0, None) ** 0.5
    att -= 0.35 * np.clip(lungs, 0, 1)
    heart = np.clip(1 - ((u - 0.12) / 0.3) ** 2 - ((v - 0.68) / 0.17) ** 2, 0, None) ** 0.5
    att += 0.3 * heart
    att += 0.18 * np.clip(1 - (u / 0.17) ** 2, 0, None) * (v > 0.1)  # mediastinum
    att += 0.15 * (np.abs(u) < 0.05) * (v > 0.06) * (np.sin(v * 2 * math.pi * 24) > -0.8)  # spine, segmented
    ribs = (np.sin((v - 0.18 - 0.12 * u**2) * 2 * math.pi * 11) > 0.55) * (lungs > 0.05) * (v > 0.12)
    att += 0.12 * ribs
    clav = np.abs(v - (0.17 + 0.05 * np.abs(u))) < 0.012
    att += 0.25 * clav * (np.abs(u) < 0.6)
    dome = v > 0.82 + 0.05 * np.cos(u * 2.5)
    att += 0.25 * dome * body
    return np.clip(att, 0, None)


def _dx_lateral(rows: int, cols: int) -> np.ndarray:
    u, v = _grid(rows, cols)  # u: anterior (-1) .. posterior (1)
    body = np.clip(1 - (u / 0.7) ** 4, 0, None) * (v > 0.05)
    att = 0.7 * body
    lung = np.clip(1 - (u / 0.55) ** 2 - ((v - 0.5) / 0.36) ** 2, 0, None) ** 0.5
    att -= 0.35 * lung
    heart = np.clip(1 - ((u + 0.2) / 0.3) ** 2 - ((v - 0.66) / 0.18) ** 2, 0, None) ** 0.5
    att += 0.25 * heart
    spine = (u > 0.42) * (u < 0.6) * (v > 0.05)
    att += 0.35 * spine * (np.sin(v * 2 * math.pi * 14) > -0.7)
    att += 0.3 * (np.abs(u + 0.64) < 0.02) * (v > 0.2) * (v < 0.6)  # sternum
    return np.clip(att, 0, None)


def dx_chest(p: Patient, st: StudyInfo, rows: int = 2000, cols: int = 1600) -> list[Dataset]:
    study = generate_uid()
    rng = np.random.default_rng(2)
    out = []
    for n, (view, orient, att) in enumerate(
        (("PA", ["L", "F"], _dx_pa(rows, cols)), ("LL", ["A", "F"], _dx_lateral(rows, cols))), start=1
    ):
        ds = _header(p, st, study, generate_uid(), DX_PRESENTATION_STORAGE, "DX", n)
        ds.SeriesDescription = "胸部正位" if view == "PA" else "胸部侧位"
        _dx_common(ds, rows, cols, view, orient)
        ds.PixelData = _radiograph(att, rng)
        out.append(ds)
    return out


def _overlay_plane(rows: int, cols: int, labels: list[tuple[int, str]]) -> bytes:
    """A 1-bit overlay: a side marker, vertebra labels and a measuring line with end ticks."""
    mask = Image.new("1", (cols, rows), 0)
    draw = ImageDraw.Draw(mask)
    font = ImageFont.load_default(size=56)
    draw.text((60, 60), "R", fill=1, font=font)
    for y, label in labels:
        draw.text((int(cols * 0.64), y - 30), label, fill=1, font=font)
        draw.line([(int(cols * 0.58), y), (int(cols * 0.63), y)], fill=1, width=4)
    x = int(cols * 0.3)
    draw.line([(x, labels[0][0]), (x, labels[-1][0])], fill=1, width=4)
    for y, _ in (labels[0], labels[-1]):
        draw.line([(x - 20, y), (x + 20, y)], fill=1, width=4)
    bits = np.asarray(mask, dtype=np.uint8)
    return bytes(pack_bits(bits.ravel()))


def dx_spine_overlay(p: Patient, st: StudyInfo, rows: int = 1800, cols: int = 1400) -> list[Dataset]:
    u, v = _grid(rows, cols)
    att = 0.6 * np.clip(1 - (u / 0.85) ** 6, 0, None) * np.ones_like(v)
    labels = []
    for k in range(5):  # L1..L5
        top, h = 0.1 + k * 0.15, 0.11
        body = (np.abs(u) < 0.17 + 0.01 * k) * (v > top) * (v < top + h)
        att += 0.35 * body
        for side in (-1, 1):
            ped = ((u - side * 0.12) / 0.04) ** 2 + ((v - top - 0.03) / 0.02) ** 2 < 1
            att += 0.2 * ped
        labels.append((int((top + h / 2) * rows), f"L{k + 1}"))
    att += 0.3 * (np.abs(u) < 0.03) * (v > 0.08) * (v < 0.85)  # spinous processes
    iliac = np.clip(1 - ((np.abs(u) - 0.6) / 0.3) ** 2 - ((v - 0.95) / 0.15) ** 2, 0, None) ** 0.5
    att += 0.3 * iliac
    ds = _header(p, st, generate_uid(), generate_uid(), DX_PRESENTATION_STORAGE, "DX", 1)
    ds.SeriesDescription = "腰椎正位（含叠加层标注）"
    _dx_common(ds, rows, cols, "AP", ["L", "F"])
    ds.PixelData = _radiograph(np.clip(att, 0, None), np.random.default_rng(5))
    # REQ: VIEW-03 — a graphics overlay plane in group 6000
    ds.add_new(0x60000010, "US", rows)
    ds.add_new(0x60000011, "US", cols)
    ds.add_new(0x60000022, "LO", "椎体标注")
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", _overlay_plane(rows, cols, labels))
    return [ds]


# -- MR brain -----------------------------------------------------------------------------------------------------


def mr_brain(p: Patient, st: StudyInfo, slices: int = 24, size: int = 256) -> list[Dataset]:
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(24)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    c = size / 2
    theta = np.arctan2(y - c, x - c)
    out = []
    for i in range(slices):
        t = i / max(slices - 1, 1)  # 0 skull base .. 1 vertex
        s = max(math.sqrt(max(1 - ((t - 0.42) / 0.62) ** 2, 0.0)), 0.2)
        r = np.hypot((x - c) / (92 * s), (y - c - 4) / (112 * s))
        img = np.zeros((size, size), dtype=np.float32)
        img[r < 1.0] = 1300  # scalp fat
        img[r < 0.94] = 80  # skull
        gyri = 1 + 0.035 * np.sin(14 * theta + 3 * t)
        img[r < 0.88 * gyri] = 1700  # CSF over the convexity
        img[r < 0.84 * gyri] = 1050  # grey matter
        img[r < 0.7 * gyri] = 760  # white matter
        if 0.35 < t < 0.72:  # lateral ventricles
            k = math.sin(math.pi * (t - 0.35) / 0.37)
            for side in (-1, 1):
                _paint(img, c + side * 12, c - 5, 7 * k + 2, 38 * k + 4, 1900)
        if 0.25 < t < 0.45:
            _paint(img, c, c + 2, 3, 14, 1900)  # third ventricle
        if t < 0.25:  # orbits and cerebellum
            for side in (-1, 1):
                _paint(img, c + side * 38, c - 95 * s, 17, 17, 1950)
            _paint(img, c, c + 60 * s, 60 * s, 35 * s, 1000)
        img += rng.normal(0, 25, img.shape).astype(np.float32)
        ds = _header(p, st, study, series, MR_STORAGE, "MR", 3)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.FrameOfReferenceUID = frame
        ds.PositionReferenceIndicator = ""
        ds.SeriesDescription = "T2WI 横断位"
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "SE", "SK", "", "2D"
        ds.RepetitionTime, ds.EchoTime, ds.MagneticFieldStrength = "4000", "100", "1.5"
        ds.InstanceNumber = i + 1
        z = -30.0 + 6.0 * i
        ds.ImagePositionPatient = [-115.0, -115.0, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = z
        ds.SliceThickness, ds.SpacingBetweenSlices = "5", "6"
        ds.PatientPosition = "HFS"
        ds.Rows = ds.Columns = size
        ds.PixelSpacing = [0.9, 0.9]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = "1000", "2000"
        ds.PixelData = np.clip(img, 0, 4095).astype(np.uint16).tobytes()
        out.append(ds)
    return out


# -- US cine ------------------------------------------------------------------------------------------------------


def us_cine(p: Patient, st: StudyInfo, frames: int = 40, rows: int = 480, cols: int = 640) -> list[Dataset]:
    rng = np.random.default_rng(40)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    ax, ay = cols / 2, 20.0
    depth, angle = np.hypot(x - ax, y - ay), np.arctan2(x - ax, y - ay)
    sector = (depth < rows - 40) * (np.abs(angle) < math.radians(40)) * (depth > 15)
    tissue = 0.35 + 0.25 * np.exp(-(((depth - 300) / 120) ** 2))
    pixels = np.empty((frames, rows, cols), dtype=np.uint8)
    for f in range(frames):
        beat = 0.5 + 0.5 * math.cos(2 * math.pi * f / 20)  # two beats over the clip
        ex = np.hypot((x - ax) / (70 + 22 * beat), (y - 250) / (110 + 18 * beat))
        echo = tissue + 0.45 * ((ex > 1.0) & (ex < 1.35))  # bright myocardium
        echo = np.where(ex < 1.0, 0.04, echo)  # anechoic blood pool
        speckle = rng.rayleigh(0.55, size=(rows, cols)).astype(np.float32)
        gain = 1 - depth / (rows * 2.2)
        pixels[f] = np.clip(255 * echo * speckle * gain * sector, 0, 255).astype(np.uint8)
    ds = _header(p, st, generate_uid(), generate_uid(), US_MULTIFRAME_STORAGE, "US", 1)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "CARDIAC"]
    ds.SeriesDescription = "心尖四腔心动态"
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames = frames
    ds.FrameTime = "50"  # ms: 20 frames/s
    ds.FrameIncrementPointer = 0x00181063
    ds.CineRate = 20
    ds.RecommendedDisplayFrameRate = 20
    ds.PixelData = pixels.tobytes()
    return [ds]
