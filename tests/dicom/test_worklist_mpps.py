"""Modality Worklist C-FIND with dcmtk's findscu -W (Chinese names in ISO_IR 192) and MPPS N-CREATE/N-SET with a
pynetdicom SCU: registered exams of the calling device's institution only (REQ: DCM-05, AC-08, DSEC-10)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicom import status
from dicom.scp import Running
from engine.imaging.exam_models import MppsInstance
from tests.dicom.conftest import add_node, associate, audit_events, count, dcmtk
from tests.dicom.exams import add_exam, exam_status

MWL = "1.2.840.10008.5.1.4.31"
MPPS = "1.2.840.10008.3.1.2.3.3"


@pytest.fixture
def exams(app: Flask, scp: Running) -> dict[str, int]:
    add_node(app, "CT01", allow="echo,store,worklist,mpps")
    add_node(app, "NOWL", allow="echo,store")
    add_node(app, "M02CT", institution="M02", allow="worklist,mpps")
    return {
        # 2026-03-01 02:00 UTC = 10:00 in China
        "ct": add_exam(app, patient_no="P100", name="张三", exam_no="M01CT20260301000001", accession="ACC100",
                       exam_time=datetime(2026, 3, 1, 2, 0, tzinfo=UTC), station_aet="CT01"),
        "mr": add_exam(app, patient_no="P101", name="李四", exam_no="M01MR20260305000002", accession="ACC101",
                       modality="MR", body_part="头颅", exam_item="头颅MR平扫",
                       exam_time=datetime(2026, 3, 5, 1, 0, tzinfo=UTC), station_aet="MR01"),
        "done": add_exam(app, patient_no="P102", name="张五", exam_no="M01CT20260301000003", accession="ACC102",
                         status="examined", exam_time=datetime(2026, 3, 1, 3, 0, tzinfo=UTC)),
        "m02": add_exam(app, institution="M02", patient_no="P100", name="张六", exam_no="M02CT20260301000004",
                        accession="ACC200", exam_time=datetime(2026, 3, 1, 2, 0, tzinfo=UTC)),
    }  # fmt: skip


def findscu_w(scp: Running, tmp_path: Path, aet: str, *keys: str) -> tuple[list[Dataset], str]:
    out = tmp_path / f"wl-{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    args = ["-W", "-aet", aet, "-aec", "TELERAD", "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    res = dcmtk("findscu", "-v", *args, "127.0.0.1", str(scp.port))
    assert res.returncode == 0, res.stdout + res.stderr
    return [dcmread(p) for p in sorted(out.iterdir())], res.stdout + res.stderr


SPS = "ScheduledProcedureStepSequence[0]"


def test_dcm05_worklist_findscu_chinese_name_date_range(exams: dict[str, int], scp: Running, tmp_path: Path) -> None:
    found, _ = findscu_w(scp, tmp_path, "CT01", "SpecificCharacterSet=ISO_IR 192", "PatientName=张*", "PatientID",
                         "AccessionNumber", "RequestedProcedureDescription", "StudyInstanceUID",
                         f"{SPS}.Modality", f"{SPS}.ScheduledStationAETitle",
                         f"{SPS}.ScheduledProcedureStepStartDate=20260301-20260302")  # fmt: skip
    assert len(found) == 1  # not 张五 (already examined), not M02's 张六
    ds = found[0]
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert (str(ds.PatientName), ds.PatientID, ds.AccessionNumber) == ("张三", "P100", "ACC100")
    assert ds.RequestedProcedureDescription == "胸部CT平扫"
    sps = ds.ScheduledProcedureStepSequence[0]
    assert (sps.Modality, sps.ScheduledStationAETitle, sps.ScheduledProcedureStepStartDate) == (
        "CT",
        "CT01",
        "20260301",
    )
    assert ds.StudyInstanceUID.startswith("2.25.")
    # only the requested keys come back
    assert "PatientBirthDate" not in ds
    assert "ScheduledProcedureStepID" not in sps


def test_dcm05_worklist_modality_station_and_open_date_filters(
    exams: dict[str, int], scp: Running, tmp_path: Path
) -> None:
    mr, _ = findscu_w(scp, tmp_path, "CT01", "PatientName", "PatientID", f"{SPS}.Modality=MR",
                      f"{SPS}.ScheduledProcedureStepStartDate=20260304-")  # fmt: skip
    assert [(str(d.PatientName), d.ScheduledProcedureStepSequence[0].Modality) for d in mr] == [("李四", "MR")]
    assert mr[0].ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate == "20260305"
    assert findscu_w(scp, tmp_path, "CT01", "PatientID", f"{SPS}.ScheduledStationAETitle=CT02")[0] == []
    station, _ = findscu_w(scp, tmp_path, "CT01", "PatientID", "RequestedProcedureDescription",
                           f"{SPS}.ScheduledStationAETitle=MR01")  # fmt: skip
    assert [(d.PatientID, d.RequestedProcedureDescription) for d in station] == [("P101", "头颅MR平扫")]
    everything, _ = findscu_w(scp, tmp_path, "CT01", "AccessionNumber", "ScheduledProcedureStepSequence")
    assert sorted(d.AccessionNumber for d in everything) == ["ACC100", "ACC101"]
    assert {len(d.ScheduledProcedureStepSequence[0]) for d in everything} == {8}  # empty sequence: all SPS keys
    (query,) = [e for e in audit_events(scp.ctx.app, "dicom_query") if e.object_id == "WORKLIST"][-1:]
    assert query.details["results"] == 2


def test_ac08_worklist_other_institution_and_unauthorized(
    app: Flask, exams: dict[str, int], scp: Running, tmp_path: Path
) -> None:
    other, _ = findscu_w(scp, tmp_path, "M02CT", "SpecificCharacterSet=ISO_IR 192", "PatientName", "AccessionNumber")
    assert [(str(d.PatientName), d.AccessionNumber) for d in other] == [("张六", "ACC200")]
    assoc = associate(scp.port, "NOWL", [(MWL, [ExplicitVRLittleEndian])])
    q = Dataset()
    q.PatientName = "*"
    try:
        statuses = [int(st.Status) for st, _ in assoc.send_c_find(q, MWL)]
    finally:
        assoc.release()
    assert statuses == [status.REFUSED_NOT_AUTHORIZED]
    assert any(e.details.get("op") == "worklist" for e in audit_events(app, "security_alert"))


def _create_ds(accession: str, patient_id: str, modality: str = "CT") -> Dataset:
    step = Dataset()
    step.AccessionNumber = accession
    step.StudyInstanceUID = generate_uid()
    ds = Dataset()
    ds.ScheduledStepAttributesSequence = [step]
    ds.PatientID = patient_id
    ds.Modality = modality
    ds.PerformedStationAETitle = "CT01"
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepStartDate = "20260301"
    ds.PerformedProcedureStepStartTime = "100500"
    return ds


def _set_ds(value: str) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = value
    ds.PerformedProcedureStepEndDate = "20260301"
    return ds


def test_dcm05_mpps_in_progress_completed_duplicate_unknown(app: Flask, exams: dict[str, int], scp: Running) -> None:
    uid, unknown = generate_uid(), generate_uid()
    assoc = associate(scp.port, "CT01", [(MPPS, [ExplicitVRLittleEndian])])
    try:
        st, attrs = assoc.send_n_create(_create_ds("ACC100", "P100"), MPPS, uid)
        assert int(st.Status) == status.SUCCESS
        assert attrs.PerformedProcedureStepStatus == "IN PROGRESS"
        assert exam_status(app, exams["ct"]) == "in_progress"
        st, _ = assoc.send_n_create(_create_ds("ACC100", "P100"), MPPS, uid)
        assert int(st.Status) == status.DUPLICATE_SOP_INSTANCE  # 0x0111
        st, _ = assoc.send_n_set(_set_ds("COMPLETED"), MPPS, unknown)
        assert int(st.Status) == status.NO_SUCH_SOP_INSTANCE  # 0x0112
        st, _ = assoc.send_n_set(_set_ds("COMPLETED"), MPPS, uid)
        assert int(st.Status) == status.SUCCESS
        assert exam_status(app, exams["ct"]) == "examined"
        st, _ = assoc.send_n_set(_set_ds("DISCONTINUED"), MPPS, uid)
        assert int(st.Status) == status.MPPS_NO_LONGER_UPDATABLE  # a finished step stays finished
    finally:
        assoc.release()
    assert exam_status(app, exams["ct"]) == "examined"
    assert count(app, MppsInstance, MppsInstance.sop_instance_uid == uid, MppsInstance.status == "COMPLETED") == 1
    assert len(audit_events(app, "dicom_mpps_created")) == 1
    changes = [(e.details["from"], e.details["to"]) for e in audit_events(app, "exam_status_changed")]
    assert changes == [("registered", "in_progress"), ("in_progress", "examined")]


def test_dcm05_mpps_discontinued_returns_exam_to_registered(app: Flask, exams: dict[str, int], scp: Running) -> None:
    uid = generate_uid()
    assoc = associate(scp.port, "CT01", [(MPPS, [ExplicitVRLittleEndian])])
    try:
        # no accession: matched by the patient's single open exam of that modality
        st, _ = assoc.send_n_create(_create_ds("", "P101", "MR"), MPPS, uid)
        assert int(st.Status) == status.SUCCESS
        assert exam_status(app, exams["mr"]) == "in_progress"
        st, _ = assoc.send_n_set(_set_ds("DISCONTINUED"), MPPS, uid)
        assert int(st.Status) == status.SUCCESS
    finally:
        assoc.release()
    assert exam_status(app, exams["mr"]) == "registered"


def test_ac08_mpps_other_institution_and_unauthorized(app: Flask, exams: dict[str, int], scp: Running) -> None:
    uid = generate_uid()
    m01 = associate(scp.port, "CT01", [(MPPS, [ExplicitVRLittleEndian])])
    try:
        assert int(m01.send_n_create(_create_ds("ACC100", "P100"), MPPS, uid)[0].Status) == status.SUCCESS
    finally:
        m01.release()
    other = associate(scp.port, "M02CT", [(MPPS, [ExplicitVRLittleEndian])])
    try:
        # M02 cannot finish M01's step (it does not exist for M02), and its own MPPS never touches M01's exam
        assert int(other.send_n_set(_set_ds("COMPLETED"), MPPS, uid)[0].Status) == status.NO_SUCH_SOP_INSTANCE
        st, _ = other.send_n_create(_create_ds("ACC101", "P101", "MR"), MPPS, generate_uid())
        assert int(st.Status) == status.SUCCESS
    finally:
        other.release()
    assert exam_status(app, exams["ct"]) == "in_progress"
    assert exam_status(app, exams["mr"]) == "registered"
    denied = associate(scp.port, "NOWL", [(MPPS, [ExplicitVRLittleEndian])])
    try:
        st, _ = denied.send_n_create(_create_ds("ACC101", "P101", "MR"), MPPS, generate_uid())
        assert int(st.Status) == status.REFUSED_NOT_AUTHORIZED
    finally:
        denied.release()
    assert exam_status(app, exams["mr"]) == "registered"
