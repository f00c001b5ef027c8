"""Synthetic DICOM data for bench/bench_dicom.py: every set is written to disk once, then sent by dcmtk's storescu.

- `write_small`: pydicom's CT_small.dcm / MR_small.dcm (alternating) with fresh Study/Series/SOP Instance UIDs,
  a new patient per study; every `sr_every`-th instance (default 10: 10 % of the set) is a synthetic Comprehensive
  SR (`comprehensive_sr`: a report with a content tree, Chinese text in ISO_IR 192, referencing an image of its
  study) in the study's own SR series.
- `write_ct_slices`: valid CT Image Storage, 512×512, 16 bit signed, explicit VR little endian, one series.
- `write_ct_jpeg_lossless`: the same CT slices compressed by dcmtk's dcmcjpeg into JPEG Lossless, Non-Hierarchical,
  First-Order Prediction (Process 14, Selection Value 1; 1.2.840.10008.1.2.4.70), for the C-GET figure.
- `write_dr_study`: a two-view chest DR study (Digital X-Ray Image Storage - For Presentation, PA and lateral, one
  series each), 3000×2400 12-bit in 16, explicit VR little endian — the 2-image study of bench/bench_viewer.py.
- `write_find_studies`: one tiny 8×8 Secondary Capture instance per study, names/dates/modalities drawn from a
  fixed seed, so both archives index exactly the same studies; `find_queries` builds STUDY-level queries over them.
- `write_multiframe`: one native multi-frame XA instance of `frames` × 512×512×16 bit (≈1 GB for 2,000 frames),
  written streaming: the header with pydicom, then the Pixel Data element header and the frames appended one by one,
  so the whole pixel buffer is never held in memory.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
COMPREHENSIVE_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.33"
XA_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.12.1"
SC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
SURNAMES = (
    "ZHANG WANG LI LIU CHEN YANG HUANG ZHAO WU ZHOU XU SUN MA ZHU HU GUO HE GAO LIN LUO".split()
)  # 20 surnames: each matches about 1/20 of the studies
GIVEN = "WEI FANG NA XIUYING MIN JING LI QIANG LEI JUN YANG YONG YAN JIE JUAN TAO MING CHAO XIA PING".split()
MODALITIES = ("CT", "MR", "CR", "DX", "US")
FIRST_DATE = date(2015, 1, 1)
DATE_SPAN_DAYS = 3652  # 2015-01-01 .. 2024-12-31


def _meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _split(paths: list[Path], parts: int) -> list[list[Path]]:
    size = -(-len(paths) // parts)
    return [paths[i : i + size] for i in range(0, len(paths), size)]


def _code(value: str, meaning: str, scheme: str = "DCM") -> Sequence:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return Sequence([item])


def _content(
    value_type: str, concept: tuple[str, str, str], relationship: str = "CONTAINS", **values: object
) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = _code(*concept)
    for key, value in values.items():
        setattr(item, key, value)
    return item


def comprehensive_sr(study: str, series: str, patient: str, image: Dataset, number: int) -> Dataset:
    """A Comprehensive SR radiology report of `study` (what engine/imaging/sr.py renders): observation context,
    findings (TEXT, NUM with units, CODE, an IMAGE reference to `image` and an SCOORD on it) and an impression,
    in ISO_IR 192 with Chinese text; the evidence sequence lists the referenced image."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = COMPREHENSIVE_SR_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.StudyDate = ds.ContentDate = "20240315"
    ds.StudyTime = ds.ContentTime = "101500"
    ds.AccessionNumber = "BENCHSR1"
    ds.Modality = "SR"
    ds.Manufacturer = "telerad bench"
    ds.ReferringPhysicianName = ""
    ds.ReferencedPerformedProcedureStepSequence = Sequence()  # type 2, before (0020,0013): an empty SQ to skip
    ds.PatientName = "测试^患者"
    ds.PatientID = patient
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.StudyID = "1"
    ds.SeriesNumber = 99
    ds.InstanceNumber = number
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = _code("18748-4", "影像诊断报告", "LN")
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = image.SOPClassUID, image.SOPInstanceUID
    image_item = _content("IMAGE", ("121112", "测量来源"), "INFERRED FROM", ReferencedSOPSequence=Sequence([ref]))
    scoord = _content("SCOORD", ("111030", "感兴趣区"), "INFERRED FROM", GraphicType="POINT", GraphicData=[32.0, 32.0])
    scoord.ContentSequence = Sequence([image_item])
    value = Dataset()
    value.NumericValue = "8"
    value.MeasurementUnitsCodeSequence = _code("mm", "mm", "UCUM")
    size = _content("NUM", ("G-D7FE", "结节直径", "SRT"), MeasuredValueSequence=Sequence([value]))
    size.ContentSequence = Sequence([scoord])
    findings = _content("CONTAINER", ("121070", "检查所见"), ContinuityOfContent="SEPARATE")
    findings.ContentSequence = Sequence(
        [
            _content("TEXT", ("121071", "所见"), TextValue="右肺上叶见一结节，边界清晰，未见钙化。" * 3),
            size,
            _content("CODE", ("121139", "部位"), ConceptCodeSequence=_code("T-28300", "右肺上叶", "SRT")),
        ]
    )
    impression = _content("CONTAINER", ("121072", "诊断意见"), ContinuityOfContent="SEPARATE")
    impression.ContentSequence = Sequence(
        [_content("TEXT", ("121073", "结论"), TextValue="考虑良性结节，建议 6 个月后复查。")]
    )
    ds.ContentSequence = Sequence(
        [
            _content("PNAME", ("121008", "报告医生"), "HAS OBS CONTEXT", PersonName="李^四"),
            _content("DATE", ("111060", "报告日期"), "HAS OBS CONTEXT", Date="20240315"),
            findings,
            impression,
        ]
    )
    evidence_series = Dataset()
    evidence_series.SeriesInstanceUID = image.SeriesInstanceUID
    evidence_series.ReferencedSOPSequence = Sequence([ref])
    evidence = Dataset()
    evidence.StudyInstanceUID = study
    evidence.ReferencedSeriesSequence = Sequence([evidence_series])
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])
    ds.file_meta = _meta(COMPREHENSIVE_SR_STORAGE, ds.SOPInstanceUID)
    return ds


def write_small(out: Path, count: int, chunks: int = 1, per_series: int = 100, sr_every: int = 10) -> list[Path]:
    """Write `count` small instances into `chunks` sub-directories (one per association); returns the directories.

    Studies of `per_series` instances: images in one series, every `sr_every`-th instance (0: none) a Comprehensive
    SR in the study's SR series. A study never spans two chunks, so each association sends whole studies (a modality
    sends its own studies)."""
    templates = [pydicom.dcmread(get_testdata_file(n)) for n in ("CT_small.dcm", "MR_small.dcm")]
    per_chunk = -(-count // chunks)
    dirs = [out / f"part{c}" for c in range(chunks)]
    written = 0
    last_image = templates[0]
    for c, d in enumerate(dirs):
        d.mkdir(parents=True, exist_ok=True)
        n_here = min(per_chunk, count - written)
        for i in range(n_here):
            if i % per_series == 0:
                study, series, sr_series = generate_uid(), generate_uid(), generate_uid()
                patient = f"BS{c:02d}{i // per_series:04d}{random.randrange(10**6):06d}"
            if sr_every > 1 and i % sr_every == sr_every - 1:  # after an image of the study, which it references
                ds = comprehensive_sr(study, sr_series, patient, last_image, i % per_series + 1)
            else:
                ds = templates[(written + i) % 2]
                ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
                ds.SOPInstanceUID = generate_uid()
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                ds.PatientID = patient
                ds.InstanceNumber = i % per_series + 1
                last_image = ds
            ds.save_as(d / f"{i:05d}.dcm", enforce_file_format=True)
        written += n_here
    return [d for d in dirs if any(d.iterdir())]


def _ct_header(rows: int, cols: int, study: str, series: str, frame_of_ref: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240315"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
    ds.AccessionNumber = "BENCHCT1"
    ds.Modality = "CT"
    ds.Manufacturer = "telerad bench"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "CT CHEST (synthetic)"
    ds.SeriesDescription = "AXIAL 1.0"
    ds.PatientName = "BENCH^CT"
    ds.PatientID = "BENCHCT" + study[-8:]
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_ref
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.PixelSpacing = [0.7, 0.7]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    return ds


def _phantom(size: int = 512) -> np.ndarray:
    """A water cylinder with a few inserts, in stored values (HU + 1024)."""
    y, x = np.mgrid[:size, :size]
    r = np.hypot(x - size / 2, y - size / 2)
    img = np.where(r < size * 0.42, 1024, 0).astype(np.int16)
    for k, hu in enumerate((-900, 60, 400, 1000)):
        cx, cy = size / 2 + size * 0.2 * np.cos(k * np.pi / 2), size / 2 + size * 0.2 * np.sin(k * np.pi / 2)
        img[np.hypot(x - cx, y - cy) < size * 0.05] = 1024 + hu
    return img


def write_ct_slices(out: Path, count: int) -> list[Path]:
    """Write `count` synthetic 512×512 16-bit CT slices (one study, one series) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    study, series, frame_of_ref = generate_uid(), generate_uid(), generate_uid()
    base = _phantom(512)
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 12, size=(8, 512, 512)).astype(np.int16)
    for i in range(count):
        ds = _ct_header(512, 512, study, series, frame_of_ref)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta = _meta(CT_IMAGE_STORAGE, ds.SOPInstanceUID)
        ds.InstanceNumber = i + 1
        z = -float(i)
        ds.ImagePositionPatient = [-179.2, -179.2, z]
        ds.SliceLocation = z
        ds.PixelData = (base + np.roll(noise[i % 8], i, axis=1)).tobytes()
        ds.save_as(out / f"{i:05d}.dcm", enforce_file_format=True)
    return [out]


JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"


def write_ct_jpeg_lossless(out: Path, count: int) -> tuple[list[Path], str]:
    """Write `count` CT slices (`write_ct_slices`) compressed losslessly with dcmcjpeg (its default: JPEG lossless
    SV1) into `out`; returns the directory and the StudyInstanceUID. Checks every file's transfer syntax."""
    raw = out.parent / (out.name + "-raw")
    write_ct_slices(raw, count)
    out.mkdir(parents=True, exist_ok=True)

    def one(src: Path) -> None:
        subprocess.run(["dcmcjpeg", "+e1", str(src), str(out / src.name)], check=True, capture_output=True)

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        list(pool.map(one, sorted(raw.iterdir())))
    shutil.rmtree(raw)
    files = sorted(out.iterdir())
    study = ""
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        if ds.file_meta.TransferSyntaxUID != JPEG_LOSSLESS_SV1:
            raise RuntimeError(f"{f}: dcmcjpeg wrote {ds.file_meta.TransferSyntaxUID}, not JPEG lossless SV1")
        study = str(ds.StudyInstanceUID)
    if len(files) != count:
        raise RuntimeError(f"dcmcjpeg wrote {len(files)} of {count} files")
    return [out], study


def write_dr_study(out: Path, rows: int = 3000, cols: int = 2400) -> str:
    """Write a two-image chest DR study (PA and lateral, a series each) into `out`; returns its StudyInstanceUID."""
    out.mkdir(parents=True, exist_ok=True)
    study = generate_uid()
    y, x = np.mgrid[:rows, :cols]
    chest = np.hypot((x - cols / 2) / (cols * 0.4), (y - rows / 2) / (rows * 0.45))
    base = np.clip(3000 - 2200 * np.exp(-(chest**4)), 0, 4095).astype(np.uint16)  # air bright, body darker
    for n, (view, orient) in enumerate((("PA", ["L", "F"]), ("LL", ["A", "F"])), start=1):
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.SOPClassUID = DX_PRESENTATION_STORAGE
        ds.SOPInstanceUID = generate_uid()
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240315"
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
        ds.AccessionNumber = "BENCHDR1"
        ds.Modality = "DX"
        ds.Manufacturer = "telerad bench"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "DR CHEST 2 VIEWS (synthetic)"
        ds.SeriesDescription = f"CHEST {view}"
        ds.PatientName = "BENCH^DR"
        ds.PatientID = "BENCHDR" + study[-8:]
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.BodyPartExamined = "CHEST"
        ds.ViewPosition = view
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
        ds.StudyID = "1"
        ds.SeriesNumber = n
        ds.InstanceNumber = 1
        ds.PatientOrientation = orient
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, cols
        ds.ImagerPixelSpacing = ds.PixelSpacing = [0.148, 0.148]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        ds.WindowCenter, ds.WindowWidth = "2048", "4096"
        ds.file_meta = _meta(DX_PRESENTATION_STORAGE, ds.SOPInstanceUID)
        ds.PixelData = (base if n == 1 else base[:, ::-1].copy()).tobytes()
        ds.save_as(out / f"{n:05d}.dcm", enforce_file_format=True)
    return study


def find_study(i: int, rng: random.Random) -> dict[str, str]:
    """The searchable attributes of study `i` (deterministic for a given rng)."""
    patient = rng.randrange(6000)
    prng = random.Random(patient)
    name = f"{SURNAMES[patient % len(SURNAMES)]}^{prng.choice(GIVEN)}"
    day = FIRST_DATE + timedelta(days=rng.randrange(DATE_SPAN_DAYS))
    return {
        "PatientName": name,
        "PatientID": f"FP{patient:06d}",
        "PatientBirthDate": f"{1930 + patient % 80}0{1 + patient % 9}15",
        "PatientSex": "MF"[patient % 2],
        "StudyDate": day.strftime("%Y%m%d"),
        "AccessionNumber": f"FA{i:08d}",
        "Modality": rng.choice(MODALITIES),
        "StudyDescription": f"BENCH STUDY {i % 97}",
    }


def write_find_studies(out: Path, count: int, chunks: int = 4, seed: int = 20260315) -> list[Path]:
    """Write one tiny 8×8 Secondary Capture instance per study, `count` studies, in `chunks` sub-directories."""
    rng = random.Random(seed)
    pixels = np.arange(64, dtype=np.int16).reshape(8, 8).tobytes()
    dirs = [out / f"part{c}" for c in range(chunks)]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        attrs = find_study(i, rng)
        ds = _ct_header(8, 8, generate_uid(), generate_uid(), generate_uid())
        for k, v in attrs.items():
            setattr(ds, k, v)
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = attrs["StudyDate"]
        ds.SOPClassUID = SC_IMAGE_STORAGE  # Secondary Capture: any Modality is valid, so ModalitiesInStudy varies
        ds.ConversionType = "WSD"
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta = _meta(SC_IMAGE_STORAGE, ds.SOPInstanceUID)
        ds.InstanceNumber = 1
        ds.ImagePositionPatient = [0, 0, 0]
        ds.PixelData = pixels
        ds.save_as(dirs[i % chunks] / f"{i:06d}.dcm", enforce_file_format=True)
    return dirs


def find_queries(count: int, seed: int = 99) -> Iterator[dict[str, str]]:
    """STUDY-level queries: a surname wildcard and a one-year StudyDate range (≈ 35–65 matches at 10,000 studies)."""
    rng = random.Random(seed)
    for _ in range(count):
        start = FIRST_DATE + timedelta(days=rng.randrange(DATE_SPAN_DAYS - 365))
        end = start + timedelta(days=364)
        yield {
            "PatientName": rng.choice(SURNAMES) + "^*",  # "LI^*", not "LI*" (which also matches LIU, LIN)
            "StudyDate": f"{start:%Y%m%d}-{end:%Y%m%d}",
        }


def write_multiframe(path: Path, frames: int, rows: int = 512, cols: int = 512) -> int:
    """Write one native multi-frame XA instance (16 bit) streaming; returns the file size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "SINGLE PLANE"]
    ds.SOPClassUID = XA_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.StudyDate = ds.ContentDate = "20240315"
    ds.StudyTime = ds.ContentTime = "101500"
    ds.AccessionNumber = "BENCHXA1"
    ds.Modality = "XA"
    ds.Manufacturer = "telerad bench"
    ds.ReferringPhysicianName = ""
    ds.PatientName = "BENCH^XA"
    ds.PatientID = "BENCHXA1"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = pydicom.tag.Tag(0x0018, 0x1063)  # Frame Time
    ds.FrameTime = "33.3"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.file_meta = _meta(XA_IMAGE_STORAGE, ds.SOPInstanceUID)
    ds.save_as(path, enforce_file_format=True)
    frame_bytes = rows * cols * 2
    length = frames * frame_bytes
    if length >= 0xFFFFFFFF:
        raise ValueError("native Pixel Data must be < 4 GiB")
    base = (np.clip(_phantom(rows), 0, 4095)).astype(np.uint16)
    with path.open("ab") as fh:
        # (7FE0,0010) OW, explicit VR little endian: tag, VR, 2 reserved bytes, 32-bit length.
        fh.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length))
        for f in range(frames):
            fh.write(np.roll(base, f, axis=0).tobytes())
    return path.stat().st_size
