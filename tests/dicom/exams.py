"""Patients and exams for the worklist, MPPS and matching tests (synthetic; created directly in the database)."""

from __future__ import annotations

from datetime import date, datetime

from flask import Flask
from sqlalchemy import select

from engine import uow
from engine.accounts.models import Institution
from engine.cases.models import Exam, Patient


def institution_id(app: Flask, code: str) -> int:
    with app.app_context():
        try:
            return int(uow.session().execute(select(Institution.id).where(Institution.code == code)).scalar_one())
        finally:
            uow.session().rollback()


def add_exam(
    app: Flask,
    *,
    institution: str = "M01",
    patient_no: str,
    name: str = "张三",
    exam_no: str,
    modality: str = "CT",
    status: str = "registered",
    accession: str | None = None,
    exam_time: datetime | None = None,
    station_aet: str | None = None,
    body_part: str = "胸部",
    exam_item: str = "胸部CT平扫",
) -> int:
    """An exam (and its patient, created once per institution + patient_no); returns the exam id."""
    inst = institution_id(app, institution)
    with app.app_context(), uow.unit_of_work():
        s = uow.session()
        patient = s.execute(
            select(Patient).where(Patient.institution_id == inst, Patient.patient_no == patient_no)
        ).scalar()
        if patient is None:
            patient = Patient(
                institution_id=inst, patient_no=patient_no, name=name, sex="M", birth_date=date(1980, 1, 2)
            )
            s.add(patient)
            s.flush()
        exam = Exam(
            institution_id=inst,
            patient_id=patient.id,
            exam_no=exam_no,
            accession_no=accession,
            modality=modality,
            body_part=body_part,
            exam_item=exam_item,
            exam_time=exam_time,
            status=status,
            scheduled_station_aet=station_aet,
        )
        s.add(exam)
        s.flush()
        return int(exam.id)


def exam_status(app: Flask, exam_id: int) -> str:
    with app.app_context():
        try:
            return str(uow.session().execute(select(Exam.status).where(Exam.id == exam_id)).scalar_one())
        finally:
            uow.session().rollback()
