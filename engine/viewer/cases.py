"""The key images of a case's studies (issue 16; REQ: RPT-05; UX R13): what the report editor's 图像 card and the
member hospital's case page show first.

A case's studies: those matched to its exams, then the other studies of its patient (the same patient number at the
patient's institution: priors, or a study the worker has not matched yet) — each only if the actor may read its
images (engine/visibility.py), the case itself through its rule (a foreign case is not found, with an alert).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select

from engine import uow, visibility
from engine.actor import Actor
from engine.cases.models import Case, case_exam
from engine.imaging.models import Study
from engine.viewer.models import KEY_IMAGES, ViewerDocument

MAX_STUDIES = 50


def key_images_of_case(actor: Actor, case_id: int) -> list[dict[str, Any]]:
    """[{study, of_case, version, items}] for the case's visible studies, the case's own first, newest first."""
    case = visibility.get_visible(actor, Case, case_id, object_type="case")
    s = uow.session()
    exam_ids = select(case_exam.c.exam_id).where(case_exam.c.case_id == case.id)
    patient = case.patient
    stmt = (
        select(Study)
        .where(
            or_(
                Study.exam_id.in_(exam_ids),
                and_(Study.institution_id == patient.institution_id, Study.patient_id == patient.patient_no),
            ),
            visibility.pixel_clause(actor),
        )
        .order_by(Study.study_date.desc(), Study.id.desc())
        .limit(MAX_STUDIES)
    )
    studies = list(s.execute(stmt).scalars())
    own = set(s.execute(select(Study.id).where(Study.exam_id.in_(exam_ids))).scalars())
    docs = {
        d.study_id: d
        for d in s.execute(
            select(ViewerDocument).where(
                ViewerDocument.kind == KEY_IMAGES, ViewerDocument.study_id.in_([st.id for st in studies])
            )
        ).scalars()
    }
    out = []
    for st in sorted(studies, key=lambda x: x.id not in own):  # stable: the case's own first
        doc = docs.get(st.id)
        out.append(
            {
                "study": st,
                "of_case": st.id in own,
                "version": doc.version if doc is not None else 0,
                "items": list(doc.content) if doc is not None else [],
            }
        )
    return out
