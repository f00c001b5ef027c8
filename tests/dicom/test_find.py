"""C-FIND at PATIENT (Patient Root) and STUDY/SERIES/IMAGE (Study Root) with dcmtk's findscu and pynetdicom:
wildcards, date ranges, ModalitiesInStudy, Chinese names in ISO_IR 192 and GB18030, institution scoping
(REQ: DCM-04, AC-08, DSEC-10)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from dicom import status
from dicom.scp import Running
from tests.dicom import synthetic
from tests.dicom.conftest import add_node, associate, dcmtk, store

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_A = "1.2.826.0.1.3680043.8.498.2001"
STUDY_B = "1.2.826.0.1.3680043.8.498.2002"
STUDY_ZH_UTF8 = "1.2.826.0.1.3680043.8.498.2003"
STUDY_ZH_GB = "1.2.826.0.1.3680043.8.498.2004"
STUDY_OTHER = "1.2.826.0.1.3680043.8.498.2005"
SERIES_A_CT = "1.2.826.0.1.3680043.8.498.3001"
SERIES_A_SR = "1.2.826.0.1.3680043.8.498.3002"


@pytest.fixture
def archive(app: Flask, scp: Running, tmp_path: Path) -> Running:
    """Five studies: four from M01 (the querying device's institution), one from M02."""
    add_node(app, "FINDER", institution="M01")
    add_node(app, "OTHERHOSP", institution="M02")
    m01 = [
        *[
            synthetic.ct(
                tmp_path / f"a{i}.dcm",
                StudyInstanceUID=STUDY_A,
                SeriesInstanceUID=SERIES_A_CT,
                PatientName="Zhang^San",
                PatientID="P001",
                StudyDate="20250115",
                AccessionNumber="ACC-A",
                StudyDescription="Chest CT",
                InstanceNumber=i + 1,
            )
            for i in range(3)
        ],
        synthetic.ct(
            tmp_path / "a-sr.dcm",
            StudyInstanceUID=STUDY_A,
            SeriesInstanceUID=SERIES_A_SR,
            PatientName="Zhang^San",
            PatientID="P001",
            StudyDate="20250115",
            Modality="SR",
            SeriesNumber=2,
        ),
        synthetic.ct(
            tmp_path / "b.dcm",
            StudyInstanceUID=STUDY_B,
            PatientName="Li^Si",
            PatientID="P002",
            StudyDate="20250301",
            Modality="MR",
            AccessionNumber="ACC-B",
        ),
        synthetic.chinese(
            tmp_path / "zh1.dcm", "张^三", "ISO_IR 192", StudyInstanceUID=STUDY_ZH_UTF8, PatientID="P003",
            StudyDate="20250610",
        ),
        synthetic.chinese(
            tmp_path / "zh2.dcm", "李^四", "GB18030", StudyInstanceUID=STUDY_ZH_GB, PatientID="P004",
            StudyDate="20250611",
        ),
    ]  # fmt: skip
    assert store(scp.port, "FINDER", m01) == [status.SUCCESS] * len(m01)
    other = synthetic.ct(
        tmp_path / "other.dcm", StudyInstanceUID=STUDY_OTHER, PatientName="Zhang^Wei", PatientID="P001",
        StudyDate="20250115",
    )  # fmt: skip
    assert store(scp.port, "OTHERHOSP", [other]) == [status.SUCCESS]
    return scp


def findscu(scp: Running, tmp_path: Path, root: str, *keys: str) -> list[Dataset]:
    """dcmtk findscu with -X: every response identifier, read back with pydicom."""
    out = tmp_path / f"rsp-{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    args = [root, "-aet", "FINDER", "-aec", "TELERAD", "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    res = dcmtk("findscu", *args, "127.0.0.1", str(scp.port))
    assert res.returncode == 0, res.stdout + res.stderr
    return [dcmread(p) for p in sorted(out.iterdir())]


def find(scp: Running, model: str, query: Dataset, aet: str = "FINDER") -> list[tuple[int, Dataset | None]]:
    assoc = associate(scp.port, aet, [(model, [ExplicitVRLittleEndian])])
    try:
        return [(int(st.Status), ident) for st, ident in assoc.send_c_find(query, model)]
    finally:
        assoc.release()


def test_dcm04_patient_level_patient_root_with_wildcard(archive: Running, tmp_path: Path) -> None:
    found = findscu(archive, tmp_path, "-P", "QueryRetrieveLevel=PATIENT", "PatientName=Zhang*", "PatientID",
                    "NumberOfPatientRelatedStudies")  # fmt: skip
    assert [(str(d.PatientName), d.PatientID) for d in found] == [("Zhang^San", "P001")]  # not M02's Zhang^Wei
    assert int(found[0].NumberOfPatientRelatedStudies) == 1


def test_dcm04_patient_level_refused_in_study_root(archive: Running) -> None:
    q = Dataset()
    q.QueryRetrieveLevel = "PATIENT"
    q.PatientID = ""
    assert [s for s, _ in find(archive, STUDY_ROOT_FIND, q)] == [status.FIND_IDENTIFIER_MISMATCH]


def test_dcm04_study_level_date_range_and_question_mark(archive: Running, tmp_path: Path) -> None:
    found = findscu(archive, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "StudyDate=20250101-20250331",
                    "StudyInstanceUID", "PatientName", "AccessionNumber=ACC-?")  # fmt: skip
    assert sorted(d.StudyInstanceUID for d in found) == [STUDY_A, STUDY_B]
    open_start = findscu(archive, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "StudyDate=20250601-",
                         "StudyInstanceUID")  # fmt: skip
    assert sorted(d.StudyInstanceUID for d in open_start) == [STUDY_ZH_UTF8, STUDY_ZH_GB]
    open_end = findscu(archive, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "StudyDate=-20250115",
                       "StudyInstanceUID")  # fmt: skip
    assert [d.StudyInstanceUID for d in open_end] == [STUDY_A]


def test_dcm04_modalities_in_study_and_counts(archive: Running, tmp_path: Path) -> None:
    found = findscu(archive, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "ModalitiesInStudy=SR",
                    "StudyInstanceUID", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")  # fmt: skip
    assert [d.StudyInstanceUID for d in found] == [STUDY_A]
    assert sorted(found[0].ModalitiesInStudy) == ["CT", "SR"]
    assert (int(found[0].NumberOfStudyRelatedSeries), int(found[0].NumberOfStudyRelatedInstances)) == (2, 4)
    multi = findscu(archive, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "ModalitiesInStudy=MR\\SR",
                    "StudyInstanceUID")  # fmt: skip
    assert sorted(d.StudyInstanceUID for d in multi) == [STUDY_A, STUDY_B]


def test_dcm04_study_level_every_return_key_and_pn_case(archive: Running, tmp_path: Path) -> None:
    """The benchmark's query shape (surname wildcard + StudyDate range) answers every STUDY key with the indexed
    values; PN matching ignores case (PS3.4 C.2.2.2.1 allows it for PN), other keys do not."""
    keys = ("StudyInstanceUID", "PatientID", "PatientBirthDate", "PatientSex", "StudyTime", "AccessionNumber",
            "StudyDescription", "StudyID", "ReferringPhysicianName", "ModalitiesInStudy")  # fmt: skip
    found = findscu(archive, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "PatientName=ZHANG^*",
                    "StudyDate=20250101-20251231", *keys)  # fmt: skip
    assert len(found) == 1  # not M02's Zhang^Wei (DSEC-03), not 张^三
    d = found[0]
    assert (d.StudyInstanceUID, str(d.PatientName), d.PatientID, d.StudyDate) == (
        STUDY_A,
        "Zhang^San",
        "P001",
        "20250115",
    )
    assert (d.PatientBirthDate, d.PatientSex, d.StudyTime, d.StudyID) == ("19700101", "O", "120000", "1")
    assert (d.AccessionNumber, d.StudyDescription, str(d.ReferringPhysicianName)) == ("ACC-A", "Chest CT", "")
    assert sorted(d.ModalitiesInStudy) == ["CT", "SR"]
    lower = findscu(archive, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "PatientName=li^*", "StudyInstanceUID")
    assert [x.StudyInstanceUID for x in lower] == [STUDY_B]
    assert findscu(archive, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "AccessionNumber=acc-a",
                   "StudyInstanceUID") == []  # fmt: skip
    zh = findscu(archive, tmp_path, "-S", "SpecificCharacterSet=ISO_IR 192", "QueryRetrieveLevel=STUDY",
                 "PatientName=张^*", "StudyDate=20250101-20251231", "StudyInstanceUID")  # fmt: skip
    assert [x.StudyInstanceUID for x in zh] == [STUDY_ZH_UTF8]


def test_dcm04_series_and_image_levels(archive: Running, tmp_path: Path) -> None:
    series = findscu(archive, tmp_path, "-S", "QueryRetrieveLevel=SERIES", f"StudyInstanceUID={STUDY_A}",
                     "SeriesInstanceUID", "Modality", "SeriesNumber", "NumberOfSeriesRelatedInstances")  # fmt: skip
    assert sorted((d.SeriesInstanceUID, d.Modality) for d in series) == [(SERIES_A_CT, "CT"), (SERIES_A_SR, "SR")]
    by_uid = {d.SeriesInstanceUID: int(d.NumberOfSeriesRelatedInstances) for d in series}
    assert by_uid == {SERIES_A_CT: 3, SERIES_A_SR: 1}
    images = findscu(archive, tmp_path, "-S", "QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={STUDY_A}",
                     f"SeriesInstanceUID={SERIES_A_CT}", "SOPInstanceUID", "InstanceNumber")  # fmt: skip
    assert [int(d.InstanceNumber) for d in images] == [1, 2, 3]
    one = findscu(archive, tmp_path, "-S", "QueryRetrieveLevel=IMAGE", f"SeriesInstanceUID={SERIES_A_CT}",
                  f"SOPInstanceUID={images[1].SOPInstanceUID}", "InstanceNumber")  # fmt: skip
    assert [int(d.InstanceNumber) for d in one] == [2]


def test_dcm04_chinese_names_iso_ir_192_and_gb18030(archive: Running, tmp_path: Path) -> None:
    # findscu sends the UTF-8 bytes as given, declared ISO_IR 192.
    zhang = findscu(archive, tmp_path, "-S", "SpecificCharacterSet=ISO_IR 192", "QueryRetrieveLevel=STUDY",
                    "PatientName=张*", "StudyInstanceUID")  # fmt: skip
    assert [(d.StudyInstanceUID, str(d.PatientName)) for d in zhang] == [(STUDY_ZH_UTF8, "张^三")]
    # The GB18030-encoded file was indexed as unicode: found by a UTF-8 query and answered in UTF-8.
    li = findscu(archive, tmp_path, "-S", "SpecificCharacterSet=ISO_IR 192", "QueryRetrieveLevel=STUDY",
                 "PatientName=李^四", "StudyInstanceUID")  # fmt: skip
    assert [(d.StudyInstanceUID, str(d.PatientName)) for d in li] == [(STUDY_ZH_GB, "李^四")]
    # A query itself encoded in GB18030 (pynetdicom SCU).
    q = Dataset()
    q.SpecificCharacterSet = "GB18030"
    q.QueryRetrieveLevel = "STUDY"
    q.PatientName = "李*"
    q.StudyInstanceUID = ""
    results = [(s, d) for s, d in find(archive, STUDY_ROOT_FIND, q) if s == status.PENDING]
    assert [str(d.PatientName) for _, d in results if d is not None] == ["李^四"]


def test_ac08_universal_query_sees_only_own_institution_and_is_capped(archive: Running, tmp_path: Path) -> None:
    found = findscu(archive, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "PatientName=*", "StudyInstanceUID")
    assert STUDY_OTHER not in {d.StudyInstanceUID for d in found}
    assert len(found) == 4
    other = findscu(archive, tmp_path, "-P", "QueryRetrieveLevel=PATIENT", "PatientID=P001", "PatientName")
    assert [str(d.PatientName) for d in other] == ["Zhang^San"]
    archive.ctx.find_limit = 2
    capped = findscu(archive, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "PatientName=*", "StudyInstanceUID")
    assert len(capped) == 2


@pytest.mark.parametrize(
    "value",
    ["*a*b*c*d*e*f*g*h*i*j*k*l*m*n*o*p*q*r*s*t*u*v*w*x*y*z*a*b*c*d*", "?" * 64, "' OR 1=1--", "%", "_"],
)
def test_c1_pathological_query_values(archive: Running, value: str) -> None:
    """§C1: wildcard floods and SQL metacharacters match literally or not at all, never an error."""
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.PatientName = value
    q.StudyInstanceUID = ""
    statuses = [s for s, _ in find(archive, STUDY_ROOT_FIND, q)]
    assert statuses == [status.SUCCESS]


def test_c1_malformed_date_range_is_refused(archive: Running) -> None:
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyDate = "2025AB01-"
    assert [s for s, _ in find(archive, STUDY_ROOT_FIND, q)] == [status.FIND_IDENTIFIER_MISMATCH]
    wide = Dataset()
    wide.QueryRetrieveLevel = "STUDY"
    wide.StudyDate = "19000101-99991231"
    wide.StudyInstanceUID = ""
    assert len([s for s, _ in find(archive, STUDY_ROOT_FIND, wide) if s == status.PENDING]) == 4
