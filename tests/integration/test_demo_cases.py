"""`telerad demo`'s imaging cases (engine/demo/): member hospital M01's requests with synthetic studies stored through
the one receive path, matched to their exams, readable by the doctor who holds the CT case (REQ: REG-12, IMG-06,
DISP-04, VIEW-01/02/03)."""

from __future__ import annotations

from collections import Counter

from flask import Flask
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO
from sqlalchemy import func, select

from dicom import receiving
from engine import uow
from engine.accounts.demo import DEMO_ACCOUNTS, load_demo
from engine.accounts.models import Institution
from engine.cases.models import Case, Exam
from engine.demo.cases import ASSIGNED_DOCTOR, DEMO_CASES, load_demo_cases
from engine.imaging.models import Instance, Series, Study
from engine.workflow.models import HumanTask
from tests import factories
from tests.factories import Session

FRAMES = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}


def _load(app: Flask) -> tuple[int, int, int]:
    settings = app.extensions["telerad_settings"]
    rx = receiving.receiver(app, settings)
    try:
        with app.app_context():
            made = load_demo_cases(rx)
    finally:
        receiving.close(rx)
    return made.cases_added, made.studies_added, made.instances_stored


def _doctor(app: Flask) -> Session:
    d = next(a for a in DEMO_ACCOUNTS if a.username == ASSIGNED_DOCTOR)
    with app.app_context():
        from engine.accounts.models import User

        uid = uow.session().execute(select(User.id).where(User.username == d.username)).scalar_one()
    return Session(app.test_client(), factories.TestUser(uid, d.username, d.password, d.institution, (d.role,)))


def test_reg12_img06_demo_cases_created_once_matched_and_readable_by_the_assigned_doctor(app: Flask) -> None:
    with app.app_context(), uow.unit_of_work():
        load_demo()
    cases, studies, instances = _load(app)
    assert (cases, studies) == (len(DEMO_CASES), len(DEMO_CASES))
    assert instances == 80 + 2 + 24 + 1 + 1
    assert _load(app) == (0, 0, 0)  # idempotent: nothing made twice

    with app.app_context():
        s = uow.session()
        m01 = s.execute(select(Institution.id).where(Institution.code == "M01")).scalar_one()
        accessions = [c.accession for c in DEMO_CASES]
        exams = {e.accession_no: e for e in s.execute(select(Exam).where(Exam.accession_no.in_(accessions))).scalars()}
        assert set(exams) == set(accessions)
        assert s.execute(select(func.count()).select_from(Case)).scalar_one() == len(DEMO_CASES)
        rows = list(s.execute(select(Study).where(Study.accession_number.in_(accessions))).scalars())
        assert len(rows) == len(DEMO_CASES)
        by_acc = {st.accession_number: st for st in rows}
        for acc, st in by_acc.items():
            assert st.institution_id == m01  # the archive index, under M01
            assert st.exam_id == exams[acc].id  # matched to its exam by accession number (IMG-06)
            assert st.patient_name
            assert all(ord(ch) > 0x4E00 for ch in st.patient_name)
        modalities = Counter(st.modalities for st in rows)
        assert modalities == Counter({"CT": 1, "DX": 2, "MR": 1, "US": 1})
        ct = by_acc["DEMO-CT-0001"]
        us = by_acc["DEMO-US-0004"]
        ct_series, ct_sop = s.execute(
            select(Series.series_instance_uid, Instance.sop_instance_uid)
            .join(Instance, Instance.series_id == Series.id)
            .where(Instance.study_id == ct.id)
            .order_by(Instance.instance_number)
            .limit(1)
        ).one()
        us_series, us_sop = s.execute(
            select(Series.series_instance_uid, Instance.sop_instance_uid)
            .join(Instance, Instance.series_id == Series.id)
            .where(Instance.study_id == us.id)
        ).one()
        # the CT case waits for doctor_l1 (claimed from the pool), the others in the pool or the emergency group
        tasks = {
            t.case_id: t
            for t in s.execute(
                select(HumanTask).where(HumanTask.completed_at.is_(None), HumanTask.case_id.is_not(None))
            )
            .scalars()
            .all()
        }
        ct_case = s.execute(select(Case.id).where(Case.exams.any(Exam.accession_no == "DEMO-CT-0001"))).scalar_one()
        assert tasks[ct_case].assignee_id is not None
        open_pool = [t for t in tasks.values() if t.in_pool and t.assignee_id is None]
        assert len(open_pool) >= 3
        ct_uid, us_uid = ct.study_instance_uid, us.study_instance_uid

    doc = _doctor(app)
    mine = doc.get("/api/tasks?scope=mine").get_json()["items"]
    assert [t["case_id"] for t in mine] == [ct_case]
    assert mine[0]["modality"] == "CT"
    pool = doc.get("/api/tasks?scope=pool").get_json()["items"]
    assert len(pool) >= 3

    # WADO-RS frames as the viewer asks for them (REQ: VIEW-01): a 512×512 HU slice, a frame of the US cine
    r = doc.get(f"/dicomweb/studies/{ct_uid}/series/{ct_series}/instances/{ct_sop}/frames/1", headers=FRAMES)
    assert r.status_code == 200, r.get_data()[:300]
    assert len(r.get_data()) > 512 * 512 * 2
    r = doc.get(f"/dicomweb/studies/{us_uid}/series/{us_series}/instances/{us_sop}/frames/20", headers=FRAMES)
    assert r.status_code == 200
    assert len(r.get_data()) > 480 * 640
    r = doc.get(
        f"/dicomweb/studies/{ct_uid}/series/{ct_series}/instances/{ct_sop}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    assert r.status_code == 200
    body = r.get_data()
    start = body.index(b"DICM") - 128
    ds = dcmread(DicomBytesIO(body[start:]), force=True)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.RescaleType == "HU"
    assert float(ds.RescaleIntercept) == -1024
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert hu.min() < -900
    assert hu.max() > 600
