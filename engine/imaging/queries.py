"""Matching over the archive index at PATIENT, STUDY, SERIES and IMAGE level (PS3.4 C.2.2; REQ: AC-08): the one
matcher of DIMSE C-FIND (`find`, limited to the calling device's institution) and of QIDO-RS (engine/dicomweb/qido.py,
`match` with the actor's visibility clause, issue 15).

Every query is limited to its scope (`Scope`) before any key is applied, and capped.
Matching (PS3.4 C.2.2.2): an empty value matches everything; `*` and `?` are wildcards (PN case-insensitive);
UID lists (`a\\b`) match any; DA and TM accept ranges (`20200101-`, `-20201231`, `20200101-20201231`);
ModalitiesInStudy matches a study holding any of the listed modalities.
Fuzzy matching (QIDO `fuzzymatching=true`, PS3.18 §8.3.4.2): a PN value matches when any name component (family,
given …, of any representation) starts with it, case-insensitively, or — for a value of Latin letters only — when
the study's matched exam's patient record's 拼音首字母 start with it ("zs" finds 张三; engine/pinyin.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, literal, or_, select

from engine import audit, pinyin, uow
from engine.cases.models import Exam, Patient
from engine.imaging.models import Instance, Series, Study
from engine.imaging.services import NodeInfo

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")


class QueryError(ValueError):
    """The identifier cannot be processed (bad level or malformed range); C-FIND answers a failure status."""


@dataclass(frozen=True)
class Scope:
    """The rows a query may see, per table it selects from (each clause on that table's own indexed columns)."""

    study: ColumnElement[bool]
    series: ColumnElement[bool]
    instance: ColumnElement[bool]

    @classmethod
    def institution(cls, institution_id: int) -> Scope:
        return cls(
            Study.institution_id == institution_id,
            Series.institution_id == institution_id,
            Instance.institution_id == institution_id,
        )

    @classmethod
    def studies(cls, visible: ColumnElement[bool]) -> Scope:
        """One clause over `Study` (a visibility rule): every level joins its study, so it applies to all."""
        return cls(visible, visible, visible)


@dataclass(frozen=True)
class _Key:
    column: Any
    kind: str  # "str" | "pn" | "uid" | "date" | "time" | "int" | "mods"


_PATIENT_KEYS = {
    "PatientID": _Key(Study.patient_id, "str"),
    "PatientName": _Key(Study.patient_name, "pn"),
    "PatientBirthDate": _Key(Study.patient_birth_date, "date"),
    "PatientSex": _Key(Study.patient_sex, "str"),
}
_STUDY_KEYS = {
    **_PATIENT_KEYS,
    "StudyInstanceUID": _Key(Study.study_instance_uid, "uid"),
    "StudyDate": _Key(Study.study_date, "date"),
    "StudyTime": _Key(Study.study_time, "time"),
    "AccessionNumber": _Key(Study.accession_number, "str"),
    "StudyDescription": _Key(Study.study_description, "str"),
    "StudyID": _Key(Study.study_id, "str"),
    "ReferringPhysicianName": _Key(Study.referring_physician, "pn"),
    "ModalitiesInStudy": _Key(Study.modalities, "mods"),
}
_SERIES_KEYS = {
    **_STUDY_KEYS,
    "SeriesInstanceUID": _Key(Series.series_instance_uid, "uid"),
    "Modality": _Key(Series.modality, "str"),
    "SeriesNumber": _Key(Series.series_number, "int"),
    "BodyPartExamined": _Key(Series.body_part, "str"),
    "SeriesDescription": _Key(Series.series_description, "str"),
}
_IMAGE_KEYS = {
    **_SERIES_KEYS,
    "SOPInstanceUID": _Key(Instance.sop_instance_uid, "uid"),
    "SOPClassUID": _Key(Instance.sop_class_uid, "uid"),
    "InstanceNumber": _Key(Instance.instance_number, "int"),
}
KEYS_BY_LEVEL: dict[str, dict[str, _Key]] = {
    "PATIENT": _PATIENT_KEYS,
    "STUDY": _STUDY_KEYS,
    "SERIES": _SERIES_KEYS,
    "IMAGE": _IMAGE_KEYS,
}
# Computed return keys (no matching on them).
COUNT_KEYS = {
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "NumberOfSeriesRelatedInstances",
    "NumberOfPatientRelatedStudies",
}


def _like_pattern(value: str) -> str:
    escaped = value.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return escaped.replace("*", "%").replace("?", "_")


def _range(value: str, width: int, kind: str) -> tuple[str | None, str | None]:
    digits = re.compile(rf"[0-9]{{{width}}}" if kind == "date" else r"[0-9]{2,6}(\.[0-9]{1,6})?")
    if "-" in value:
        lo, _, hi = value.partition("-")
        lo, hi = lo.strip(), hi.strip()
    else:
        lo = hi = value.strip()
    for part in (lo, hi):
        if part and not digits.fullmatch(part.replace(":", "")):
            raise QueryError(f"范围格式无效：{value!r}")
    if kind == "time":
        lo = lo.replace(":", "") if lo else lo
        hi = hi.replace(":", "") if hi else hi
        # A time bound matches to its precision: 10 → 100000..105959.999999
        hi = (hi + "999999")[:6] + ".999999" if hi else hi
    return lo or None, hi or None


def _fuzzy_pn(col: Any, value: str) -> ColumnElement[bool]:
    low = _like_pattern(value.lower().replace("*", "").replace("?", ""))
    lowered = func.lower(col)
    terms: list[ColumnElement[bool]] = [lowered.like(f"{low}%", escape="!")]
    terms += [lowered.like(f"%{sep}{low}%", escape="!") for sep in ("^", " ", "=")]
    key = pinyin.search_key(value)
    if key and col is Study.patient_name:
        terms.append(
            exists(
                select(Exam.id)
                .join(Patient, Patient.id == Exam.patient_id)
                .where(Exam.id == Study.exam_id, pinyin.matches_prefix(Patient.name_pinyin, key))
            )
        )
    return or_(*terms)


def _pn_condition(col: Any, value: str) -> ColumnElement[bool]:
    """PN matching, case-insensitive. A value without `=` may match any one component group of a stored name
    ("Wang^Xiaoming=王^小明"): "王*" finds it by its ideographic group, "wang*" by its alphabetic one."""
    lowered = func.lower(col)
    wild = "*" in value or "?" in value
    whole = lowered.like(_like_pattern(value.lower()), escape="!") if wild else lowered == value.lower()
    if "=" in value:
        return whole
    p = _like_pattern(value.lower())
    groups = [
        lowered.like(p + "=%", escape="!"),
        lowered.like("%=" + p, escape="!"),
        lowered.like("%=" + p + "=%", escape="!"),
    ]
    return or_(whole, and_(col.like("%=%"), or_(*groups)))


def _condition(key: _Key, value: str, fuzzy: bool = False) -> ColumnElement[bool] | None:
    value = value.strip()
    if value == "" or value == "*":
        return None
    col = key.column
    if key.kind == "uid":
        uids = [v.strip().rstrip("\x00") for v in value.split("\\") if v.strip()]
        return col.in_(uids)
    if key.kind == "mods":
        wanted = [m.strip().upper() for m in value.split("\\") if m.strip()]
        padded = literal(",") + col + literal(",")
        return or_(*[padded.like(f"%,{_like_pattern(m)},%", escape="!") for m in wanted])
    if key.kind == "int":
        try:
            return col == int(value)
        except ValueError as exc:
            raise QueryError(f"数值无效：{value!r}") from exc
    if key.kind in {"date", "time"}:
        if "*" in value or "?" in value:
            return col.like(_like_pattern(value), escape="!")
        lo, hi = _range(value, 8, key.kind)
        conds = []
        if lo:
            conds.append(col >= lo)
        if hi:
            conds.append(col <= hi)
        conds.append(col != "")
        return and_(*conds)
    if key.kind == "pn":
        if fuzzy:
            return _fuzzy_pn(col, value)
        return _pn_condition(col, value)
    if "*" in value or "?" in value:
        return col.like(_like_pattern(value), escape="!")
    return col == value


def _apply(stmt: Select[Any], level: str, keys: dict[str, str], fuzzy: bool = False) -> Select[Any]:
    table = KEYS_BY_LEVEL[level]
    for name, value in keys.items():
        key = table.get(name)
        if key is None or value is None:
            continue
        cond = _condition(key, str(value), fuzzy)
        if cond is not None:
            stmt = stmt.where(cond)
    return stmt


def _study_row(st: Any) -> dict[str, Any]:
    """The STUDY keys of a `Study`, or of a row of `_STUDY_COLUMNS` (same attribute names)."""
    return {
        "_institution_id": st.institution_id,
        "PatientID": st.patient_id,
        "PatientName": st.patient_name,
        "PatientBirthDate": st.patient_birth_date,
        "PatientSex": st.patient_sex,
        "StudyInstanceUID": st.study_instance_uid,
        "StudyDate": st.study_date,
        "StudyTime": st.study_time,
        "AccessionNumber": st.accession_number,
        "StudyDescription": st.study_description,
        "StudyID": st.study_id,
        "ReferringPhysicianName": st.referring_physician,
        "ModalitiesInStudy": [m for m in st.modalities.split(",") if m],
    }


def _series_row(se: Series) -> dict[str, Any]:
    return {
        "SeriesInstanceUID": se.series_instance_uid,
        "Modality": se.modality,
        "SeriesNumber": se.series_number,
        "BodyPartExamined": se.body_part,
        "SeriesDescription": se.series_description,
    }


@dataclass(frozen=True)
class _Query:
    scope: Scope
    keys: dict[str, str]
    limit: int
    offset: int = 0
    want: frozenset[str] = frozenset()
    fuzzy: bool = False


def _find_patients(q: _Query) -> list[dict[str, Any]]:
    s = uow.session()
    stmt = select(
        Study.patient_id,
        func.max(Study.patient_name),
        func.max(Study.patient_birth_date),
        func.max(Study.patient_sex),
        func.count(),
    ).where(q.scope.study)
    stmt = _apply(stmt, "PATIENT", q.keys, q.fuzzy).group_by(Study.patient_id).order_by(Study.patient_id)
    return [
        {
            "PatientID": pid,
            "PatientName": name,
            "PatientBirthDate": birth,
            "PatientSex": sex,
            "NumberOfPatientRelatedStudies": n,
        }
        for pid, name, birth, sex, n in s.execute(stmt.offset(q.offset).limit(q.limit)).all()
    ]


# STUDY level selects these columns, not `Study` entities: building an ORM object per match cost more than the
# SQL (measured: bench/bench_dicom.py find section, see the commit message).
_STUDY_COLUMNS = (
    Study.id,
    Study.institution_id,
    Study.patient_id,
    Study.patient_name,
    Study.patient_birth_date,
    Study.patient_sex,
    Study.study_instance_uid,
    Study.study_date,
    Study.study_time,
    Study.accession_number,
    Study.study_description,
    Study.study_id,
    Study.referring_physician,
    Study.modalities,
)


def _find_studies(q: _Query) -> list[dict[str, Any]]:
    s = uow.session()
    stmt = select(*_STUDY_COLUMNS).where(q.scope.study)
    stmt = _apply(stmt, "STUDY", q.keys, q.fuzzy).order_by(Study.study_date.desc(), Study.id)
    stmt = stmt.offset(q.offset).limit(q.limit)
    if not q.want & {"NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"}:
        return [_study_row(r) for r in s.execute(stmt).all()]
    # The counts in the same statement, per study of the page only (the page is a subquery): one round trip, and
    # index lookups by study_id whatever the planner's statistics say — two separate `IN (…) GROUP BY` queries were
    # planned as sequential scans of dicom_series and dicom_instance on a PostgreSQL not analysed since the studies
    # arrived (issue 15, measured: 3.5 ms of a 12 ms QIDO-RS search).
    page = stmt.subquery()
    n_series = select(func.count()).where(Series.study_id == page.c.id).scalar_subquery()
    n_instances = select(func.count()).where(Instance.study_id == page.c.id).scalar_subquery()
    found = s.execute(
        select(page, n_series.label("n_series"), n_instances.label("n_instances")).order_by(
            page.c.study_date.desc(), page.c.id
        )
    ).all()
    rows = []
    for r in found:
        row = _study_row(r)
        row["NumberOfStudyRelatedSeries"] = r.n_series
        row["NumberOfStudyRelatedInstances"] = r.n_instances
        rows.append(row)
    return rows


def _find_series(q: _Query) -> list[dict[str, Any]]:
    s = uow.session()
    stmt = select(Series, Study).join(Study, Study.id == Series.study_id).where(q.scope.series)
    stmt = _apply(stmt, "SERIES", q.keys, q.fuzzy).order_by(Series.study_id, Series.series_number, Series.id)
    pairs = s.execute(stmt.offset(q.offset).limit(q.limit)).all()
    counts: dict[int, int] = {}
    if "NumberOfSeriesRelatedInstances" in q.want and pairs:
        ids = [se.id for se, _ in pairs]
        counts = dict(
            s.execute(
                select(Instance.series_id, func.count()).where(Instance.series_id.in_(ids)).group_by(Instance.series_id)
            )
            .tuples()
            .all()
        )
    out = []
    for se, st in pairs:
        row = {**_study_row(st), **_series_row(se)}
        row["NumberOfSeriesRelatedInstances"] = counts.get(se.id, 0)
        out.append(row)
    return out


def _find_images(q: _Query) -> list[dict[str, Any]]:
    s = uow.session()
    stmt = (
        select(Instance, Series, Study)
        .join(Series, Series.id == Instance.series_id)
        .join(Study, Study.id == Instance.study_id)
        .where(q.scope.instance)
    )
    stmt = _apply(stmt, "IMAGE", q.keys, q.fuzzy).order_by(Instance.series_id, Instance.instance_number, Instance.id)
    out = []
    for inst, se, st in s.execute(stmt.offset(q.offset).limit(q.limit)).all():
        row = {**_study_row(st), **_series_row(se)}
        row.update(
            {
                "SOPInstanceUID": inst.sop_instance_uid,
                "SOPClassUID": inst.sop_class_uid,
                "InstanceNumber": inst.instance_number,
                "_transfer_syntax_uid": inst.transfer_syntax_uid,
            }
        )
        out.append(row)
    return out


_FINDERS: dict[str, Callable[[_Query], list[dict[str, Any]]]] = {
    "PATIENT": _find_patients,
    "STUDY": _find_studies,
    "SERIES": _find_series,
    "IMAGE": _find_images,
}


def match(
    scope: Scope,
    level: str,
    keys: dict[str, str],
    *,
    limit: int,
    offset: int = 0,
    want: set[str] | frozenset[str] = frozenset(),
    fuzzy: bool = False,
) -> list[dict[str, Any]]:
    """Match `keys` (DICOM keyword → query value) at `level` within `scope`; rows `offset` … `offset + limit`.

    Each row is a dict of keyword → value for every key the level knows (and the counts named in `want`), plus
    `_institution_id` (the study's institution: one StudyInstanceUID may be stored by two; DSEC-03).

    Raises:
        QueryError: unknown level or a malformed key value.
    """
    level = (level or "").strip().upper()
    if level not in _FINDERS:
        raise QueryError(f"查询级别无效：{level!r}")
    return _FINDERS[level](_Query(scope, keys, limit, offset, frozenset(want), fuzzy))


def find(
    node: NodeInfo, level: str, keys: dict[str, str], *, limit: int, ip: str | None = None
) -> list[dict[str, Any]]:
    """C-FIND: match `keys` at `level` within the node's institution (REQ: AC-08), audited (DICOM 110112, DSEC-10).

    Raises:
        QueryError: unknown level or a malformed key value.
    """
    rows = match(Scope.institution(node.institution_id), level, keys, limit=limit, want=set(keys))
    level = level.strip().upper()
    audit.record(
        node.actor(ip),
        "dicom_query",
        object_type="dicom_query",
        object_id=level,
        details={
            "level": level,
            "keys": {k: str(v)[:64] for k, v in keys.items() if str(v).strip() not in ("", "*")},
            "results": len(rows),
            "dicom_event": "110112",
        },
    )
    return rows
