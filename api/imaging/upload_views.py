"""/api/imaging/exams/<id>/studies: the studies of an exam, and linking a manually uploaded study to it (REQ: REG-16).

The browser uploads the files by STOW-RS (/dicomweb/studies, api/dicomweb/stow.py) unchanged and then names the exam
they belong to here (engine/imaging/upload_link.py explains why the link is made on the server). Visibility goes
through engine.visibility: the exam's case must be visible; only the exam's own institution links its own studies.
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from api.imaging.schemas import StudySchema
from api.schemas import StrictSchema
from api.security import current_actor, requires
from engine import uow
from engine.accounts.models import Institution
from engine.imaging import upload_link
from engine.imaging.upload_link import LinkedStudy

blp = Blueprint("imaging_upload", __name__, url_prefix="/api/imaging", description="手动上传影像与检查关联")

_uid = validate.Regexp(r"^[0-9]+(\.[0-9]+)*$")


class LinkSchema(StrictSchema):
    study_instance_uids = fields.List(
        fields.String(validate=[validate.Length(min=1, max=64), _uid]),
        required=True,
        validate=validate.Length(min=1, max=upload_link.MAX_STUDIES),
    )


class ExamStudySchema(StudySchema):
    """A study of the exam (the imaging list's row), and whether this request linked it."""

    linked_now = fields.Boolean()


class ExamStudiesSchema(Schema):
    items = fields.List(fields.Nested(ExamStudySchema))


def _out(rows: list[LinkedStudy]) -> dict[str, Any]:
    ids = sorted({r.study.institution_id for r in rows})
    insts = (
        {i.id: i for i in uow.session().execute(select(Institution).where(Institution.id.in_(ids))).unique().scalars()}
        if ids
        else {}
    )
    items = []
    for r in rows:
        st, inst = r.study, insts.get(r.study.institution_id)
        items.append(
            {
                "id": st.id,
                "study_instance_uid": st.study_instance_uid,
                "patient_id": st.patient_id,
                "patient_name": st.patient_name,
                "study_date": st.study_date,
                "accession_number": st.accession_number,
                "study_description": st.study_description,
                "modalities": st.modality_list,
                "institution": None
                if inst is None
                else {"id": inst.id, "code": inst.code, "name": inst.name, "kind": inst.kind},
                "series_count": r.series_count,
                "instance_count": r.instance_count,
                "exam_id": st.exam_id,
                "linked_now": r.linked_now,
            }
        )
    return {"items": items}


@blp.route("/exams/<int:exam_id>/studies", methods=["GET"])
@blp.response(200, ExamStudiesSchema)
@requires("image.read")
def list_exam_studies(exam_id: int) -> Any:
    """检查的影像：与该检查关联、当前用户可见的影像检查。"""
    return _out(upload_link.exam_studies(current_actor(), exam_id))


@blp.route("/exams/<int:exam_id>/studies", methods=["POST"])
@blp.arguments(LinkSchema)
@blp.response(200, ExamStudiesSchema)
@requires("image.write")
def link_exam_studies(body: dict[str, Any], exam_id: int) -> Any:
    """把刚上传（STOW-RS）的本院影像关联到该检查（REG-16）：检查状态变为已检查，影像随即可在申请中阅览。"""
    return _out(upload_link.link_studies(current_actor(), exam_id, body["study_instance_uids"]))
