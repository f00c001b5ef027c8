"""Images arrived for an exam: the ``images_received`` message to the processes waiting for them (issue 14, "events
out of ingest").

When the worker applies an ingest event (engine/imaging/events.py) and the event's study is — by this event's match
or an earlier one — linked to an exam, `deliver_for_study` delivers ``images_received`` about that exam and every
remote-diagnosis case holding it (engine/workflow/messages.py): any process instance whose subject is the exam or
one of those cases and that waits for the message takes it, once, in the transaction that marks the event
processed. A process waits for images with a message catch named ``images_received`` (e.g. 补传影像 in
processes/clinical_query).

Linking a study to an exam happens in one place, the worker's match (engine/imaging/matching.py); there is no
manual match or re-match of an unmatched study yet. Whatever links a study later (resolving the 未匹配影像 queue,
an exam registered after its images) must call `deliver_for_study` in its own transaction, as the worker does.
"""

from __future__ import annotations

from sqlalchemy import select

from engine import uow
from engine.actor import Actor
from engine.cases.models import case_exam
from engine.imaging.models import Study
from engine.workflow import messages

IMAGES_RECEIVED = "images_received"


def deliver_for_study(study_id: int, actor: Actor | None = None) -> list[int]:
    """Deliver ``images_received`` for the exam `study_id` is linked to (nothing if it is unmatched). Returns the
    ids of the process instances that took it."""
    s = uow.session()
    row = s.execute(select(Study.exam_id, Study.study_instance_uid).where(Study.id == study_id)).first()
    if row is None or row.exam_id is None:
        return []
    exam_id = int(row.exam_id)
    case_ids = [int(c) for c in s.execute(select(case_exam.c.case_id).where(case_exam.c.exam_id == exam_id)).scalars()]
    subjects = [("exam", exam_id), *(("case", c) for c in case_ids)]
    payload = {"study_id": study_id, "exam_id": exam_id, "study_instance_uid": row.study_instance_uid}
    return messages.deliver(IMAGES_RECEIVED, subjects, payload, actor)
