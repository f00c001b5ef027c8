"""Which stored study a StudyInstanceUID means for an actor (issue 15; DSEC-03).

One StudyInstanceUID can be stored by two institutions (two rows of `dicom_study`, kept apart). A member user only
ever sees its own. For a central user, `study_for` picks:
  - `institution_code` given: that institution's copy ("institution");
  - else, `case_id` given: the copy linked to that case (its exams' studies, then the case patient's institution)
    ("case");
  - else the most recent copy (study date, then last received) — "latest" when there were several, "only" otherwise.
The API says which one it used (X-Telerad-Institution: the code; X-Telerad-Study-Choice: the reason), so the viewer
can say so. Anything not visible is not found, and a security alert is recorded when it exists (visibility.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm.util import identity_key

from engine import audit, uow, visibility
from engine.accounts.models import Institution
from engine.actor import Actor
from engine.cases.models import Case, case_exam
from engine.errors import NotFound
from engine.imaging.models import Study

CHOICES = ("institution", "case", "latest", "only")


def _not_found(actor: Actor, study_uid: str) -> NotFound:
    s = uow.session()
    if s.execute(select(Study.id).where(Study.study_instance_uid == study_uid).limit(1)).first() is not None:
        audit.security_alert(actor, "dicom_study", study_uid[:64], "访问可见范围之外的对象")
    return NotFound()


def study_for(
    actor: Actor, study_uid: str, institution_code: str | None = None, case_id: Any = None
) -> tuple[Study, str]:
    """The visible study `study_uid` means for `actor`, and why that one (one of CHOICES).

    Raises:
        NotFound: no visible study has that UID (at that institution; or the case is not visible).
    """
    s = uow.session()
    stmt = (
        select(Study)
        .where(Study.study_instance_uid == study_uid, visibility.clause(actor, Study))
        .order_by(Study.study_date.desc(), Study.updated_at.desc(), Study.id.desc())
    )
    if institution_code:
        inst = s.execute(select(Institution.id).where(Institution.code == institution_code)).scalar_one_or_none()
        found = s.execute(stmt.where(Study.institution_id == inst)).scalars().first() if inst is not None else None
        if found is None:
            raise _not_found(actor, study_uid)
        return found, "institution"
    candidates = list(s.execute(stmt).scalars())
    if not candidates:
        raise _not_found(actor, study_uid)
    if case_id is not None:
        case = visibility.get_visible(actor, Case, case_id, object_type="case")
        exam_ids = set(s.execute(select(case_exam.c.exam_id).where(case_exam.c.case_id == case.id)).scalars())
        for st in candidates:
            if st.exam_id in exam_ids:
                return st, "case"
        for st in candidates:
            if st.institution_id == case.patient.institution_id:
                return st, "case"
    return candidates[0], ("latest" if len(candidates) > 1 else "only")


def institution_codes(ids: set[int]) -> dict[int, tuple[str, str]]:
    """institution id → (code, name). Institutions this unit of work has loaded already (the request's user's, by
    the request guard) are taken from the session's identity map, without a query."""
    if not ids:
        return {}
    s = uow.session()
    out: dict[int, tuple[str, str]] = {}
    for i in ids:
        inst = s.identity_map.get(identity_key(Institution, i))
        if isinstance(inst, Institution) and not inspect(inst).expired_attributes & {"code", "name"}:
            out[i] = (inst.code, inst.name)
    missing = sorted(ids - out.keys())
    if missing:
        rows = s.execute(select(Institution.id, Institution.code, Institution.name).where(Institution.id.in_(missing)))
        out.update({i: (code, name) for i, code, name in rows.tuples()})
    return out
