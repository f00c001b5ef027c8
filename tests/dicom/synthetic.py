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
