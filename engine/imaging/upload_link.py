"""Manual upload (REQ: REG-16): a study a member hospital uploaded by STOW-RS onto one of its exams is linked to it.

How PACS do it: dcm4chee-arc and the commercial 远程影像 platforms keep the received objects as sent and link an
uploaded or unscheduled study to the order it belongs to on the server ("link study to MWL item"), instead of
rewriting the files in the browser. Here the browser sends the files unchanged (STOW-RS, api/dicomweb/stow.py: the
one receive path, under the uploader's institution, DSEC-03) and then names the exam: `link_studies` sets the
study's exam — as the worker's match does (engine/imaging/matching.py) — resolves the study's 未匹配影像 entry,
moves the exam to 已检查 if it was waiting for images, writes the audit event and delivers ``images_received``
(engine/imaging/arrivals.py). The match the worker applies later keeps the exam a study was linked to.

Only the exam's own institution links studies to it, and only its own studies (a hospital never attaches another's
images, DSEC-03); the exam must belong to a case the user sees (engine/visibility.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update

from engine import audit, uow
from engine.actor import Actor
from engine.cases.models import Case, Exam, case_exam
from engine.db import utcnow
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.imaging import arrivals
from engine.imaging.exam_models import UnmatchedStudy
from engine.imaging.models import Instance, Series, Study
from engine.imaging.worklist import move_exam
from engine.visibility import clause, scoped

MAX_STUDIES = 50  # study UIDs one link request may name (an upload of one exam rarely holds more than a few)
WAITING = ("registered", "in_progress")


@dataclass(frozen=True)
class LinkedStudy:
    study: Study
    series_count: int
    instance_count: int
    linked_now: bool  # False: it was linked to this exam already (e.g. matched by its AccessionNumber)


def visible_exam(actor: Actor, exam_id: int) -> Exam:
    """The exam, if it belongs to a case the actor sees.

    Raises:
        NotFound: no such exam, or none of its cases is visible (a security alert is written for the latter).
    """
    s = uow.session()
    exam = s.get(Exam, exam_id)
    if exam is None:
        raise NotFound()
    seen = s.execute(
        select(Case.id)
        .join(case_exam, case_exam.c.case_id == Case.id)
        .where(case_exam.c.exam_id == exam_id, clause(actor, Case))
    ).first()
    if seen is None:
        audit.security_alert(actor, "exam", exam_id, "访问可见范围之外的对象")
        raise NotFound()
    return exam


def _counts(study_ids: list[int]) -> tuple[dict[int, int], dict[int, int]]:
    if not study_ids:
        return {}, {}
    s = uow.session()
    series: dict[int, int] = {}
    instances: dict[int, int] = {}
    for model, out in ((Series, series), (Instance, instances)):
        stmt = select(model.study_id, func.count(model.id)).where(model.study_id.in_(study_ids))
        for study_id, n in s.execute(stmt.group_by(model.study_id)).all():
            out[int(study_id)] = int(n)
    return series, instances


def _with_counts(studies: list[tuple[Study, bool]]) -> list[LinkedStudy]:
    n_series, n_instances = _counts([st.id for st, _ in studies])
    return [LinkedStudy(st, n_series.get(st.id, 0), n_instances.get(st.id, 0), now) for st, now in studies]


def exam_studies(actor: Actor, exam_id: int) -> list[LinkedStudy]:
    """The studies linked to a visible exam that the actor may see (newest first)."""
    visible_exam(actor, exam_id)
    stmt = scoped(actor, Study).where(Study.exam_id == exam_id).order_by(Study.id.desc())
    return _with_counts([(st, False) for st in uow.session().execute(stmt).scalars()])


def link_studies(actor: Actor, exam_id: int, study_uids: list[str]) -> list[LinkedStudy]:
    """Link the actor's institution's studies `study_uids` (just uploaded) to the exam (REQ: REG-16, IMG-06).

    Raises:
        NotFound: the exam is not visible.
        Forbidden: the exam is another institution's (only the hospital that registered it uploads its images).
        ValidationFailed: no UID, too many, or a UID of no study of the actor's institution.
        Conflict: a study is linked to another exam already (nothing is changed).
    """
    exam = visible_exam(actor, exam_id)
    if actor.institution_id is None or exam.institution_id != actor.institution_id:
        raise Forbidden("upload_other_institution", "只能为本机构登记的检查上传影像")
    uids = list(dict.fromkeys(u.strip() for u in study_uids if u and u.strip()))
    if not uids:
        raise ValidationFailed("no_study", "请指定要关联的检查（Study Instance UID）")
    if len(uids) > MAX_STUDIES:
        raise ValidationFailed("too_many_studies", f"一次最多关联 {MAX_STUDIES} 个检查", {"max": MAX_STUDIES})
    s = uow.session()
    # the row lock keeps a concurrent link or the worker's match from interleaving (SQLite serialises writers)
    rows = list(
        s.execute(
            select(Study)
            .where(Study.institution_id == actor.institution_id, Study.study_instance_uid.in_(uids))
            .with_for_update()
        ).scalars()
    )
    found = {st.study_instance_uid: st for st in rows}
    missing = [u for u in uids if u not in found]
    if missing:
        raise ValidationFailed(
            "study_not_found", "本机构未收到该检查的影像，请先上传", {"study_instance_uid": missing[0][:64]}
        )
    others = [st for st in rows if st.exam_id is not None and st.exam_id != exam.id]
    if others:
        other = s.get(Exam, others[0].exam_id)
        raise Conflict(
            "study_linked_elsewhere",
            f"该影像已关联到另一检查（{other.exam_no if other else others[0].exam_id}），未更改",
            {"study_instance_uid": others[0].study_instance_uid},
        )
    out: list[tuple[Study, bool]] = []
    for uid in uids:
        st = found[uid]
        if st.exam_id == exam.id:
            out.append((st, False))
            continue
        _link(actor, exam, st)
        out.append((st, True))
    return _with_counts(out)


def _link(actor: Actor, exam: Exam, study: Study) -> None:
    s = uow.session()
    now = utcnow()
    s.execute(update(Study).where(Study.id == study.id).values(exam_id=exam.id, updated_at=now))
    s.execute(
        update(UnmatchedStudy)
        .where(UnmatchedStudy.study_id == study.id, UnmatchedStudy.resolved_at.is_(None))
        .values(resolved_at=now)
    )
    s.refresh(study)
    if exam.status in WAITING:
        move_exam(exam, "examined", actor, "影像已上传")
    audit.record(
        actor,
        "dicom_study_matched",
        object_type="dicom_study",
        object_id=study.id,
        patient_id=study.patient_id[:64] or None,
        details={
            "exam_id": exam.id,
            "exam_no": exam.exam_no,
            "by": "upload",
            "study_instance_uid": study.study_instance_uid,
        },
    )
    s.flush()
    arrivals.deliver_for_study(study.id, actor)
