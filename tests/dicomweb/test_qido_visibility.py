"""Who sees which study over QIDO-RS (issue 15; REQ: AC-02, DSEC-03, DSEC-11; engine/visibility.py).

A member hospital sees its own studies only; a study of another hospital is not listed, and asked for by its UID it
is not found (404) with a security alert. Central clinical staff see the studies of the patients of the cases they
see (the case's studies and that patient's priors), nothing else. One StudyInstanceUID stored by two hospitals is
listed twice to a central user who sees both, told apart by InstitutionName and the TELERAD private attribute.
"""

from __future__ import annotations

from flask import Flask
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select

from engine import uow
from engine.accounts import auth
from engine.accounts.models import User
from engine.accounts.queries import effective_permissions
from engine.actor import Actor
from engine.imaging.models import Study
from engine.visibility import may_read_pixels
from tests import factories
from tests.api.test_cases_flow import new_case
from tests.dicom.conftest import audit_events, worker_applies_ingest_events
from tests.dicomweb.conftest import DicomWeb
from tests.dicomweb.test_qido import INST_CODE, _study, _uids, _v
from tests.factories import as_user


def _actor(user: factories.TestUser) -> Actor:
    u = uow.session().get(User, user.id)
    assert u is not None
    return auth.actor_for(u, Actor.anonymous(), permissions=effective_permissions(u))


def _pixels(app: Flask, user: factories.TestUser, study_uid: str, code: str) -> bool:
    with app.app_context(), uow.unit_of_work():
        s = uow.session()
        rows = s.execute(select(Study).where(Study.study_instance_uid == study_uid)).scalars().all()
        (study,) = [st for st in rows if _code(st) == code]
        return may_read_pixels(_actor(user), study)


def _code(study: Study) -> str:
    from engine.accounts.models import Institution

    inst = uow.session().get(Institution, study.institution_id)
    assert inst is not None
    return inst.code


def test_ac02_dsec11_member_sees_only_its_own_and_foreign_uids_are_not_found(dicomweb: DicomWeb) -> None:
    mine, theirs = _study(PatientID="A1"), _study(PatientID="B1")
    dicomweb.seed([mine], institution="M01")
    dicomweb.seed([theirs], institution="M02")
    user, client = dicomweb.client("requester", institution_code="M01")
    assert _uids(client.search_for_studies(search_filters={"PatientName": "*"})) == {str(mine.StudyInstanceUID)}
    assert client.search_for_studies(search_filters={"StudyInstanceUID": str(theirs.StudyInstanceUID)}) == []
    assert client.search_for_series(search_filters={"PatientID": "B1"}) == []
    assert client.search_for_instances(search_filters={"PatientID": "B1"}) == []
    before = len(audit_events(dicomweb.app, "security_alert"))
    for path in ("series", "instances", f"series/{theirs.SeriesInstanceUID}/instances"):
        r = dicomweb.get(user, f"/dicomweb/studies/{theirs.StudyInstanceUID}/{path}")
        assert (r.status_code, r.json()["code"]) == (404, "not_found"), path
    r = dicomweb.get(user, f"/dicomweb/studies/{theirs.StudyInstanceUID}/series?institution=M02")
    assert r.status_code == 404
    assert len(audit_events(dicomweb.app, "security_alert")) == before + 4
    r = dicomweb.get(user, f"/dicomweb/studies/{generate_uid()}/series")  # no such study at all: no alert
    assert r.status_code == 404
    assert len(audit_events(dicomweb.app, "security_alert")) == before + 4


def test_dsec03_one_uid_at_two_institutions_listed_twice_and_chosen_by_institution(dicomweb: DicomWeb) -> None:
    uid = generate_uid()
    old = _study(StudyInstanceUID=uid, PatientID="X1", StudyDate="20250101", PatientName="Old^Copy")
    new = _study(StudyInstanceUID=uid, PatientID="Y1", StudyDate="20260301", PatientName="New^Copy")
    dicomweb.seed([old], institution="M01")
    dicomweb.seed([new], institution="M02")
    admin, client = dicomweb.client("sys_admin")  # the DICOM administrator's institution-wide lists
    both = client.search_for_studies(search_filters={"StudyInstanceUID": uid})
    assert sorted(_v(i, INST_CODE) for i in both) == ["M01", "M02"]
    assert len({_v(i, "00080080") for i in both}) == 2  # InstitutionName tells them apart
    assert all(_v(i, "00081190").endswith(f"?institution={_v(i, INST_CODE)}") for i in both)  # RetrieveURL
    r = dicomweb.get(admin, f"/dicomweb/studies/{uid}/series")
    assert (r.headers["X-Telerad-Institution"], r.headers["X-Telerad-Study-Choice"]) == ("M02", "latest")
    r = dicomweb.get(admin, f"/dicomweb/studies/{uid}/instances?institution=M01")
    assert (r.headers["X-Telerad-Institution"], r.headers["X-Telerad-Study-Choice"]) == ("M01", "institution")
    assert [i["00080018"]["Value"][0] for i in r.json()] == [str(old.SOPInstanceUID)]
    r = dicomweb.get(admin, "/dicomweb/studies?institution=M01")
    assert [_v(i, INST_CODE) for i in r.json()] == ["M01"]
    r = dicomweb.get(admin, "/dicomweb/studies?institution=NOPE")
    assert (r.status_code, r.json()["code"]) == (404, "unknown_institution")
    # a member user only ever sees its own copy
    m02, m02_client = dicomweb.client("requester", institution_code="M02")
    (own,) = m02_client.search_for_studies(search_filters={"StudyInstanceUID": uid})
    assert _v(own, INST_CODE) == "M02"
    assert dicomweb.get(m02, f"/dicomweb/studies/{uid}/series?institution=M01").status_code == 404
    # the administrator lists, but reads no pixel data; the member's clinician does (WADO asks may_read_pixels)
    assert not _pixels(dicomweb.app, admin, uid, "M01")
    assert _pixels(dicomweb.app, m02, uid, "M02")
    assert not _pixels(dicomweb.app, m02, uid, "M01")


def test_ac02_central_doctor_sees_the_cases_studies_and_the_patients_priors_only(dicomweb: DicomWeb) -> None:
    app = dicomweb.app
    requester = as_user(app, "requester", institution_code="M01")
    exam = {"modality": "OT", "body_part": "胸部", "exam_item": "胸部平扫", "accession_no": "ACC-CASE-1"}
    case = new_case(requester, exams=[exam])
    patient_no = case["patient"]["patient_no"]
    of_case = _study(PatientID=patient_no, AccessionNumber="ACC-CASE-1", StudyDate="20261201")
    prior = _study(PatientID=patient_no, AccessionNumber="OLD-1", StudyDate="20240101")  # matched to no exam
    other = _study(PatientID="SOMEONE-ELSE", StudyDate="20261201")
    dicomweb.seed([of_case, prior, other], institution="M01")
    namesake = _study(PatientID=patient_no, StudyDate="20261201")  # same number at another hospital: not the same
    dicomweb.seed([namesake], institution="M02")
    worker_applies_ingest_events(app)  # the worker matches the case's study to its exam (by accession number)
    with app.app_context():
        linked = uow.session().execute(select(Study.exam_id).where(Study.accession_number == "ACC-CASE-1"))
        assert linked.scalar_one() is not None
    doctor, client = dicomweb.client("report_l1")  # can take the case's open draft_report task from the pool
    seen = client.search_for_studies()
    assert _uids(seen) == {str(of_case.StudyInstanceUID), str(prior.StudyInstanceUID)}
    assert client.search_for_instances(search_filters={"PatientID": "SOMEONE-ELSE"}) == []
    # fuzzymatching: 拼音首字母 of the patient record the study matched (患者N → "hz…"); the prior matched no exam
    hz = client.search_for_studies(search_filters={"PatientName": "HZ"}, fuzzymatching=True)
    assert _uids(hz) == {str(of_case.StudyInstanceUID)}
    assert client.search_for_studies(search_filters={"PatientName": "hz"}) == []
    r = dicomweb.get(doctor, f"/dicomweb/studies/{of_case.StudyInstanceUID}/series?case={case['id']}")
    assert (r.status_code, r.headers["X-Telerad-Study-Choice"]) == (200, "case")
    assert dicomweb.get(doctor, f"/dicomweb/studies/{other.StudyInstanceUID}/series").status_code == 404
    assert dicomweb.get(doctor, f"/dicomweb/studies/{namesake.StudyInstanceUID}/series").status_code == 404
    assert _pixels(app, doctor, str(prior.StudyInstanceUID), "M01")
    # a central doctor who sees no case sees no study
    _l2, l2_client = dicomweb.client("report_l2")
    assert l2_client.search_for_studies() == []


def test_ac02_administrator_reads_metadata_but_no_bulk_data(dicomweb: DicomWeb) -> None:
    """The 系统管理员 lists studies and reads their headers, never pixel data: not the Pixel Data, nor pixel data
    nested in a sequence (an icon image), nor any other bulk value (an encapsulated PDF, waveform, overlay)."""
    ds = _study(PatientID="ICON-1")
    icon = Dataset()
    icon.Rows, icon.Columns, icon.SamplesPerPixel, icon.PhotometricInterpretation = 64, 64, 1, "MONOCHROME2"
    icon.BitsAllocated, icon.BitsStored, icon.HighBit, icon.PixelRepresentation = 8, 8, 7, 0
    icon.PixelData = bytes(range(256)) * 16  # 4 KiB: a BulkDataURI in the metadata
    ds.IconImageSequence = [icon]
    dicomweb.seed([ds], institution="M01")
    base = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    admin = dicomweb.user("sys_admin")
    (meta,) = dicomweb.get(admin, f"{base}/metadata").json()
    uri = meta["00880200"]["Value"][0]["7FE00010"]["BulkDataURI"]
    assert uri.endswith("/bulkdata/00880200/0/7FE00010")
    for path in ("00880200/0/7FE00010", "7FE00010"):
        r = dicomweb.get(admin, f"{base}/bulkdata/{path}")
        assert (r.status_code, r.json()["code"]) == (403, "forbidden"), path
    clinician = dicomweb.user("requester", institution_code="M01")
    r = dicomweb.get(clinician, f"{base}/bulkdata/00880200/0/7FE00010", headers={"Accept": "application/octet-stream"})
    assert (r.status_code, r.content) == (200, icon.PixelData)
