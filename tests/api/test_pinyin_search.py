"""Names in lists are searchable by 拼音首字母 (issue 14, conventions for the wave): patients in the case and task
lists, users in the user list and the doctor picker, institutions; kept current on rename; backfilled by 0012.

The prefix condition is an index range on name_pinyin on both databases (checked with the query plans below)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import create_engine, select, text
from sqlalchemy.pool import NullPool

from alembic import command
from engine import uow
from engine.accounts.models import Institution, User
from engine.cases.models import Patient
from engine.pinyin import matches_prefix
from telerad.cli import alembic_config
from tests.api.test_cases_flow import case_body, new_case
from tests.conftest import BACKEND, PG_HOST, PG_PORT, PG_USER, _pg_admin_exec, _seed
from tests.factories import Session, as_user, make_user
from tests.integration.test_migrations import schema_diff


def _patient_keys(app: Flask, patient_no: str) -> list[str]:
    with app.app_context():
        return list(
            uow.session().execute(select(Patient.name_pinyin).where(Patient.patient_no == patient_no)).scalars()
        )


def _case_patients(sess: Session, q: str) -> list[str]:
    r = sess.get("/api/cases", query_string={"q": q, "page_size": 100})
    assert r.status_code == 200, r.get_json()
    return sorted(c["patient"]["name"] for c in r.get_json()["items"])


def test_patient_found_by_initials_in_case_and_task_lists(app: Flask) -> None:
    req = as_user(app, "requester", institution_code="M01")
    dispatcher = as_user(app, "dispatcher")
    new_case(req, patient={"patient_no": "PY001", "name": "张三", "sex": "M"})
    new_case(req, patient={"patient_no": "PY002", "name": "李四", "sex": "F"})
    new_case(req, patient={"patient_no": "PY003", "name": "赵小松", "sex": "F"})  # zxs: contains "xs", not "zs…"
    assert _patient_keys(app, "PY001") == ["zs"]

    assert _case_patients(req, "zs") == ["张三"]
    assert _case_patients(req, "ZS") == ["张三"]  # case folded
    assert _case_patients(req, "z") == ["张三", "赵小松"]  # a prefix of the initials
    assert _case_patients(req, "张") == ["张三"]  # the name itself, as before
    assert _case_patients(req, "xs") == []  # initials match from the start only
    assert _case_patients(req, "zs%") == []  # punctuation is literal, never initials (WEB-03)

    r = dispatcher.get("/api/tasks", query_string={"scope": "pool", "q": "zs", "page_size": 100})
    assert r.status_code == 200, r.get_json()
    assert [t["patient_name"] for t in r.get_json()["items"]] == ["张三"]


def test_patient_rename_updates_initials_and_polyphonic_surname(app: Flask) -> None:
    req = as_user(app, "requester", institution_code="M01")
    new_case(req, patient={"patient_no": "PY010", "name": "张三", "sex": "M"})
    assert _patient_keys(app, "PY010") == ["zs"]
    # The same patient number registered again under a corrected name: the one patient row is renamed.
    new_case(req, patient={"patient_no": "PY010", "name": "曾小贤", "sex": "M"})
    assert _patient_keys(app, "PY010") == ["zxx"]  # 曾 as a surname is zeng, not ceng
    assert _case_patients(req, "zs") == []
    assert _case_patients(req, "zxx") == ["曾小贤", "曾小贤"]
    assert _case_patients(req, "cxx") == []
    new_case(req, patient={"patient_no": "PY011", "name": "单田芳", "sex": "M"})
    assert _case_patients(req, "stf") == ["单田芳"]  # 单 shan, not dan
    assert _case_patients(req, "dtf") == []


def test_user_found_by_initials_and_rename_updates_them(app: Flask) -> None:
    admin = as_user(app, "sys_admin")
    doctor = make_user(app, "report_l1")
    make_user(app, "report_l2")

    def found(q: str) -> list[int]:
        r = admin.get("/api/users", query_string={"q": q, "page_size": 100})
        assert r.status_code == 200, r.get_json()
        return [u["id"] for u in r.get_json()["items"]]

    assert doctor.id not in found("zs")
    r = admin.patch(f"/api/users/{doctor.id}", json={"full_name": "张三"})
    assert r.status_code == 200, r.get_json()
    with app.app_context():
        assert uow.session().get(User, doctor.id).name_pinyin == "zs"  # type: ignore[union-attr]
    assert found("zs") == [doctor.id]
    assert found(doctor.username) == [doctor.id]  # the username prefix still matches

    # The doctor picker (REG-17) searches the same way.
    r = as_user(app, "dispatcher").get("/api/doctors", query_string={"q": "zs"})
    assert [d["id"] for d in r.get_json()] == [doctor.id]

    r = admin.patch(f"/api/users/{doctor.id}", json={"full_name": "解缙"})
    assert r.status_code == 200, r.get_json()
    assert found("zs") == []
    assert found("xj") == [doctor.id]  # 解 as a surname is xie


def test_institution_found_by_initials_and_rename_updates_them(app: Flask) -> None:
    admin = as_user(app, "sys_admin")

    def found(q: str) -> list[str]:
        r = admin.get("/api/institutions", query_string={"q": q})
        assert r.status_code == 200, r.get_json()
        return [i["code"] for i in r.get_json()]

    assert found("dycy") == ["M01"]  # 第一成员医院, seeded
    assert found("zs") == []
    with app.app_context():  # institutions are renamed through the ORM (no rename screen yet): the listener runs
        inst = uow.session().execute(select(Institution).where(Institution.code == "M02")).unique().scalar_one()
        inst.name = "张三县人民医院"
        uow.commit()
    assert found("zs") == ["M02"]
    assert found("张三") == ["M02"]
    assert found("decy") == []
    listed = admin.get("/api/institutions").get_json()
    assert len(listed) == 6  # no q: the whole list, as before
    assert {i["code"]: i["name_pinyin"] for i in listed}["M02"] == "zsxrmyy"
    r = admin.get("/api/institutions", query_string={"name": "x"})
    assert (r.status_code, r.get_json()["code"]) == (400, "validation_error")  # strict query schema


def test_prefix_condition_is_served_by_the_index(app: Flask) -> None:
    cases = [("patient", Patient.__table__), ("user_account", User.__table__), ("institution", Institution.__table__)]
    with app.app_context():
        s = uow.session()
        for name, table in cases:
            stmt = select(table.c.id).where(matches_prefix(table.c.name_pinyin, "zs"))
            sql = str(stmt.compile(s.get_bind(), compile_kwargs={"literal_binds": True}))
            if BACKEND == "postgresql":
                s.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table: make the planner show its option
                plan = " ".join(s.execute(text(f"EXPLAIN {sql}")).scalars())
                assert f"ix_{name}_name_pinyin" in plan, plan
            else:
                plan = " ".join(str(r[-1]) for r in s.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
                assert f"USING COVERING INDEX ix_{name}_name_pinyin" in plan or f"INDEX ix_{name}_name_pinyin" in plan
        uow.session().rollback()


# --- migration 0012: rows that exist before it get their initials ----------------------------------------------


@pytest.fixture
def fresh_url(tmp_path: Path) -> Iterator[str]:
    if BACKEND == "postgresql":
        name = f"telerad_pymig_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _pg_admin_exec(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
        _pg_admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        yield f"sqlite:///{tmp_path / 'mig.db'}"


def test_0012_backfills_initials_of_existing_rows(fresh_url: str, tmp_path: Path) -> None:
    cfg = alembic_config(fresh_url)
    command.upgrade(cfg, "head")
    _seed(fresh_url, tmp_path / "seed")  # institutions (and their names) as a real installation has them
    command.downgrade(cfg, "0011")
    eng = create_engine(fresh_url, poolclass=NullPool)
    try:
        with eng.begin() as conn:
            m01 = conn.execute(text("SELECT id FROM institution WHERE code = 'M01'")).scalar_one()
            conn.execute(text("UPDATE institution SET name = '单县人民医院' WHERE id = :id"), {"id": m01})
            for no, name in (("B1", "张三"), ("B2", "曾小贤"), ("B3", "John Smith")):
                conn.execute(
                    text(
                        "INSERT INTO patient (institution_id, patient_no, name, sex, created_at) "
                        "VALUES (:inst, :no, :name, 'M', CURRENT_TIMESTAMP)"
                    ),
                    {"inst": m01, "no": no, "name": name},
                )
        command.upgrade(cfg, "head")
        assert schema_diff(fresh_url) == []
        with eng.connect() as conn:
            patients = dict(conn.execute(text("SELECT name, name_pinyin FROM patient")).tuples().all())
            institutions = dict(conn.execute(text("SELECT code, name_pinyin FROM institution")).tuples().all())
    finally:
        eng.dispose()
    assert patients == {"张三": "zs", "曾小贤": "zxx", "John Smith": "johnsmith"}
    assert institutions["M01"] == "sxrmyy"  # 单 as the first character: shan
    assert institutions["CENTRAL"] == "yltzxyy"  # 医联体中心医院


def test_case_body_names_are_searchable_without_explicit_patient(app: Flask) -> None:
    # The default test patients are named 患者<n>: their initials start with "hz", so "hz" finds them all.
    req = as_user(app, "requester", institution_code="M01")
    body = case_body()
    r = req.post("/api/cases", json=body)
    assert r.status_code == 201, r.get_json()
    assert _case_patients(req, "hz") == [body["patient"]["name"]]
