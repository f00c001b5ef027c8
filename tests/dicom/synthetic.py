"""Synthetic DICOM files for the tests (no patient data): US multi-frame, encapsulated PDF, Chinese names."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"


def base(sop_class: str, *, modality: str, charset: str | None = None, **tags: object) -> Dataset:
    """A minimal dataset of `sop_class` with fresh UIDs; `tags` override any value."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "SYN0001"
    ds.PatientName = "Test^Synthetic"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.AccessionNumber = "ACC0001"
    ds.StudyID = "1"
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def image(ds: Dataset, rows: int = 8, cols: int = 8, frames: int = 1, samples: int = 1) -> Dataset:
    """Give `ds` uncompressed 8-bit pixel data."""
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "RGB" if samples == 3 else "MONOCHROME2"
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = bytes((i * 7) % 256 for i in range(rows * cols * samples * frames))
    return ds


def us_multiframe(path: Path) -> Path:
    ds = image(base(US_MULTIFRAME, modality="US"), frames=3, samples=3)
    ds.save_as(path, enforce_file_format=True)
    return path


def encapsulated_pdf(path: Path) -> Path:
    pdf = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    ds = base(ENCAPSULATED_PDF, modality="DOC")
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.DocumentTitle = "synthetic"
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    ds.save_as(path, enforce_file_format=True)
    return path


def chinese(path: Path, name: str, charset: str, **tags: object) -> Path:
    """A Secondary Capture image whose PatientName is `name`, encoded in `charset` (ISO_IR 192 or GB18030)."""
    ds = image(base(SECONDARY_CAPTURE, modality="OT", charset=charset, PatientName=name, **tags))
    ds.save_as(path, enforce_file_format=True)
    return path


def ct(path: Path, **tags: object) -> Path:
    ds = image(base(CT_IMAGE, modality="CT", **tags))
    ds.save_as(path, enforce_file_format=True)
    return path


PET_IMAGE = "1.2.840.10008.5.1.4.1.1.128"
# The PET of pet_series: 70 kg, 370 MBq of F-18 (half-life 6586.2 s) injected at 09:00, the scan starting at 10:00.
# SUVbw factor = 70,000 g / (370e6 Bq × 2^(−3600 / 6586.2)) = 2.76337e-4 g/Bq, so the hot disk's 5,000 Bq/ml is
# SUV 1.3817 and the 1,000 Bq/ml background SUV 0.2763 (the viewer's Vitest web/src/viewer/core/__tests__/suv.spec.ts).
PET_HOT_BQML = 5000
PET_BACKGROUND_BQML = 1000
PET_HOT_SUV = 1.3817


def pet_series(slices: int = 3, size: int = 64, **tags: object) -> list[Dataset]:
    """A PET series in Bq/ml with the tags SUVbw needs (Units BQML, decay and attenuation corrected, START, weight,
    dose, half-life and injection time): a hot disk of radius size/3 in the middle of a warm background."""
    import numpy as np

    study, series = generate_uid(), generate_uid()
    yy, xx = np.mgrid[0:size, 0:size]
    disk = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 <= (size / 3) ** 2
    img = np.full((size, size), PET_BACKGROUND_BQML, dtype=np.uint16)
    img[disk] = PET_HOT_BQML
    out = []
    for i in range(slices):
        ds = base(PET_IMAGE, modality="PT", StudyInstanceUID=study, SeriesInstanceUID=series, **tags)
        ds.InstanceNumber = i + 1
        ds.SeriesDescription = "PET WB (synthetic)"
        ds.SeriesDate = ds.AcquisitionDate = ds.StudyDate = "20240315"
        ds.SeriesTime = ds.AcquisitionTime = "100000"
        ds.Units = "BQML"
        ds.CorrectedImage = ["DECY", "ATTN"]
        ds.DecayCorrection = "START"
        ds.PatientWeight = 70
        iso = Dataset()
        iso.RadiopharmaceuticalStartTime = "090000"
        iso.RadionuclideTotalDose = 370e6
        iso.RadionuclideHalfLife = 6586.2
        ds.RadiopharmaceuticalInformationSequence = [iso]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelSpacing = [4, 4]
        ds.SliceThickness = 4
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-128, -128, -4.0 * i]
        ds.PixelData = img.tobytes()
        out.append(ds)
    return out
