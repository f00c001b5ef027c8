"""Helpers of the viewer persistence tests (issue 16): a case with its study in the archive, a TID 1500 SR like the
one the browser makes (here with highdicom; the browser's is dcmjs's), Cornerstone-shaped annotations."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import highdicom as hd
import numpy as np
from flask import Flask
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from tests.api.test_cases_flow import new_case
from tests.dicom import archive
from tests.dicomweb.conftest import DicomWeb
from tests.factories import Session, as_user


@dataclass
class Seeded:
    case: dict[str, Any]
    images: list[Dataset]
    requester: Session

    @property
    def study_uid(self) -> str:
        return str(self.images[0].StudyInstanceUID)

    def url(self, what: str = "annotations", institution: str | None = None) -> str:
        q = f"?institution={institution}" if institution else ""
        return f"/api/studies/{self.study_uid}/{what}{q}"


def seed_case(app: Flask, institution: str = "M01", n: int = 3, **tags: Any) -> Seeded:
    """A member hospital's case and its CT study (received through the receive path, as a device of the hospital)."""
    requester = as_user(app, "requester", institution_code=institution)
    case = new_case(requester)
    images = archive.small_series(n, PatientID=case["patient"]["patient_no"], **tags)
    dw = app.extensions.setdefault("viewer_test_seeder", DicomWeb(app, ""))  # one device per institution and app
    dw.seed(images, institution=institution)
    return Seeded(case, images, requester)


def annotation(image: Dataset, tool: str = "Length", **data: Any) -> dict[str, Any]:
    return {
        "annotationUID": str(uuid.uuid4()),
        "toolName": tool,
        "seriesUid": str(image.SeriesInstanceUID),
        "sopUid": str(image.SOPInstanceUID),
        "frame": 1,
        "metadata": {"toolName": tool, "FrameOfReferenceUID": "1.2.3", "viewPlaneNormal": [0, 0, -1]},
        "data": {
            "handles": {"points": [[1, 1, 0], [5, 5, 0]], "textBox": {"hasMoved": False}},
            "cachedStats": {"imageId": {"length": 5.66, "unit": "mm"}},
            "label": data.pop("label", ""),
            **data,
        },
    }


def sr_of(images: list[Dataset], **over: Any) -> Dataset:
    """A TID 1500 measurement report with one length on images[0] (highdicom)."""
    src = images[0]
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=np.array([[1.0, 1.0], [5.0, 5.0]]),
        source_image=hd.sr.SourceImageForRegion.from_source_image(src),
    )
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="Length"),
        referenced_region=region,
        measurements=[hd.sr.Measurement(name=codes.SCT.Length, value=5.66, unit=codes.UCUM.Millimeter)],
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name="Doctor^Test"),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=[group],
    )
    sr = hd.sr.EnhancedSR(
        evidence=[src],
        content=report,
        series_instance_uid=generate_uid(),
        series_number=99,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="test",
    )
    for k, v in over.items():
        setattr(sr, k, v)
    return sr


def b64(ds: Dataset) -> str:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return base64.b64encode(buf.getvalue()).decode()
