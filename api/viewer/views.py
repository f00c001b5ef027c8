"""Measurements/marks and key images of a study (issue 16; REQ: VIEW-08, RPT-05, AC-02; UX R13).

    GET/PUT /api/studies/<StudyInstanceUID>/annotations   the Cornerstone3D annotations (JSON) and, with the PUT, the
                                                          browser's SR TID 1500 (base64 Part-10) for the archive
    GET/PUT /api/studies/<StudyInstanceUID>/key-images    the key images; each PUT stores a Key Object Selection

`?institution=CODE` picks one institution's copy of a StudyInstanceUID, as on /dicomweb (engine/dicomweb/resolve.py).
The answer carries the version as its ETag; a PUT names the version it read (If-Match, or `version` in the body; none:
there is none yet) and answers 409 `stale_version` when another write came first. Who sees and who writes:
engine/viewer/documents.py.

The DICOM document of a write goes through the one receive path (engine/imaging/receive.py, the receiver this
process's STOW-RS requests share) with the writing doctor as its source, under the study's own institution
(DSEC-03: the owner is the study's, never the writer's). It is checked by the receive path before anything is written
(a refusal is audited as the sender's and answered 400), the versioned row and its audit event are committed, then the
document is received — the request's own transaction is committed first, as for STOW-RS: the receive path commits in
units of work of its own.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import current_app, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.schemas import Int32, StrictSchema
from api.security import current_actor, requires
from dicom import receiving
from engine import config, uow
from engine.actor import Actor
from engine.dicomweb import resolve
from engine.errors import ServiceUnavailable, ValidationFailed
from engine.imaging.ingest import IngestState, InstanceMeta, InvalidInstance
from engine.imaging.models import Study
from engine.imaging.receive import Receiver
from engine.imaging.source import Source
from engine.imaging.storage import StorageFull
from engine.viewer import cases, dicomdoc, documents, keyimages
from engine.viewer.models import ANNOTATIONS, KEY_IMAGES, ViewerDocument

log = logging.getLogger("telerad.viewer")

blp = Blueprint("viewer", __name__, url_prefix="/api", description="阅片：测量标记与关键图像")

VIA = "viewer"
READ = "image.read"
UID = validate.Regexp(r"^[0-9]+(\.[0-9]+)*$", error="UID 格式不正确")
UID_LEN = validate.Length(min=1, max=64)


def _uid(**kw: Any) -> fields.String:
    return fields.String(validate=[UID_LEN, UID], **kw)


class InstitutionQuery(StrictSchema):
    institution = fields.String(validate=validate.Length(max=32), load_default=None)


class AnnotationIn(StrictSchema):
    """One Cornerstone3D annotation as web/src/viewer/persist/serialize.ts writes it."""

    annotationUID = fields.String(  # noqa: N815 — Cornerstone's own names
        required=True, validate=[validate.Length(min=1, max=64), validate.Regexp(r"^[A-Za-z0-9._-]+$")]
    )
    toolName = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z][A-Za-z0-9]{0,63}$"))  # noqa: N815
    seriesUid = _uid(required=True)  # noqa: N815
    sopUid = _uid(required=True)  # noqa: N815
    frame = Int32(min=1, max=100000, load_default=1)
    metadata = fields.Dict(keys=fields.String(validate=validate.Length(max=64)), required=True)
    data = fields.Dict(keys=fields.String(validate=validate.Length(max=64)), required=True)
    author = fields.Raw(load_default=None, allow_none=True)  # stamped by the server; what the client sends is ignored


class AnnotationsIn(StrictSchema):
    annotations = fields.List(fields.Nested(AnnotationIn), required=True)
    version = Int32(min=0, load_default=None)
    sr = fields.String(load_default=None, allow_none=True)  # the SR TID 1500 as base64 Part-10


class KeyImageIn(StrictSchema):
    sop_uid = _uid(required=True)
    series_uid = _uid(required=True)
    frame = Int32(min=1, max=100000, load_default=1)
    note = fields.String(validate=validate.Length(max=documents.MAX_NOTE), load_default="")
    print = fields.Boolean(load_default=False)
    author = fields.Raw(load_default=None, allow_none=True)  # stamped by the server


class KeyImagesIn(StrictSchema):
    items = fields.List(fields.Nested(KeyImageIn), required=True)
    version = Int32(min=0, load_default=None)


class AuthorOut(Schema):
    id = fields.Integer(allow_none=True)
    name = fields.String()


class DocumentOut(Schema):
    study_uid = fields.String()
    institution = fields.String()
    version = fields.Integer()
    items = fields.List(fields.Dict())
    can_edit = fields.Boolean()
    updated_by = fields.Nested(AuthorOut, allow_none=True)
    updated_at = fields.DateTime(allow_none=True)
    series_instance_uid = fields.String(allow_none=True)
    sop_instance_uid = fields.String(allow_none=True)
    stored = fields.Boolean()  # the write's DICOM document is in the archive (PUT only)


def _out(
    actor: Actor, study: Study, doc: ViewerDocument | None, stored: bool = False
) -> tuple[dict[str, Any], int, Any]:
    codes = resolve.institution_codes({study.institution_id})
    by = None
    if doc is not None and doc.updated_by_id is not None:
        by = {"id": doc.updated_by_id, "name": documents.user_name(doc.updated_by_id)}
    version = doc.version if doc is not None else 0
    body = {
        "study_uid": study.study_instance_uid,
        "institution": codes.get(study.institution_id, ("", ""))[0],
        "version": version,
        "items": list(doc.content) if doc is not None else [],
        "can_edit": documents.may_edit(actor),
        "updated_by": by,
        "updated_at": doc.updated_at if doc is not None else None,
        "series_instance_uid": doc.series_instance_uid if doc is not None else None,
        "sop_instance_uid": doc.sop_instance_uid if doc is not None else None,
        "stored": stored,
    }
    return body, 200, {"ETag": f'"{version}"'}


def _expected(body_version: int | None) -> int:
    """The version the writer read: If-Match ("3", W/"3") or the body's `version`; 0 when it names none."""
    header = request.headers.get("If-Match")
    if header is None:
        return body_version or 0
    tag = header.strip()
    tag = tag[2:] if tag.startswith("W/") else tag
    tag = tag.strip('"')
    if not tag.isdigit() or len(tag) > 9:
        raise ValidationFailed("bad_if_match", "If-Match 版本号格式不正确")
    if body_version is not None and body_version != int(tag):
        raise ValidationFailed("version_mismatch", "If-Match 与请求中的版本号不一致")
    return int(tag)


def _study(uid: str, query: dict[str, Any]) -> Study:
    if len(uid) > 64 or not uid.replace(".", "").isdigit():
        raise ValidationFailed("bad_study_uid", "路径中的 Study Instance UID 格式不正确")
    return documents.study_for(current_actor(), uid, query.get("institution"))


# -- the receive path ------------------------------------------------------------------------------------------------
def _receiver() -> Receiver:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return receiving.shared_receiver(app, config.current())


def _spool(rx: Receiver, raw: bytes) -> Path:
    rx.store.tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=rx.store.tmp_dir, prefix="viewer-", suffix=".dcm")
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
    return Path(name)


def _state(actor: Actor, study: Study) -> IngestState:
    # REQ: DSEC-03 — stored under the study's own institution: the doctor acts for it on this study (documents.py)
    return IngestState(Source.user(actor, via=VIA, institution_id=study.institution_id))


def _precheck(rx: Receiver, state: IngestState, path: Path, study_uid: str, sop_uid: str) -> None:
    """The receive path's own check (structure, indexed tags, UIDs, free space) before anything is written; a
    refusal is audited as the sender's (REQ: DSEC-04/08) and answered 400 (507 when the store is full)."""
    try:
        meta = rx.check(path)
        _same_document(study_uid, sop_uid)(meta)
    except (InvalidInstance, StorageFull) as exc:
        rx.refuse(state, exc)
        if isinstance(exc, StorageFull):
            raise ServiceUnavailable("disk_full", "影像存储空间不足，未保存") from None
        raise


def _same_document(study_uid: str, sop_uid: str) -> Callable[[InstanceMeta], None]:
    def accept(meta: InstanceMeta) -> None:
        if meta.study_instance_uid != study_uid or meta.sop_instance_uid != sop_uid:
            raise InvalidInstance("study_mismatch", "文档不属于本检查，未存储", {"sop_instance_uid": sop_uid})

    return accept


def _write(
    kind: str,
    study: Study,
    expected: int,
    content: list[dict[str, Any]],
    dicom: tuple[bytes, str, str] | None,
) -> tuple[ViewerDocument, bool]:
    """Pre-check the DICOM document, write the row (conditional on `expected`) with its audit event and commit,
    then receive the document; the row and whether the document is stored."""
    actor = current_actor()
    study_uid, study_id = study.study_instance_uid, study.id
    state = _state(actor, study)
    # The request's reads end here (on SQLite every transaction holds the write lock): the receive path commits in
    # units of work of its own, and nothing touches the request's session until the row is written.
    uow.commit()
    if dicom is None:
        doc = documents.save(actor, study, kind, expected, content, series_uid=None, sop_uid=None)
        uow.commit()
        return doc, False
    raw, sop_uid, series_uid = dicom
    rx = _receiver()
    path = _spool(rx, raw)
    try:
        _precheck(rx, state, path, study_uid, sop_uid)
        documents.save(actor, study, kind, expected, content, series_uid=series_uid, sop_uid=sop_uid)
        uow.commit()
        try:
            rx.receive(state, path, accept=_same_document(study_uid, sop_uid))  # consumes the file
        except (InvalidInstance, StorageFull, OSError):
            # the row is committed; the document was refused after all (a race for space): the answer says so
            log.exception("viewer: the %s document of study %s was not stored", kind, study_uid)
            uow.rollback()
            return _reload(study_id, kind), False
    finally:
        path.unlink(missing_ok=True)
    return _reload(study_id, kind), True


def _reload(study_id: int, kind: str) -> ViewerDocument:
    study = uow.session().get(Study, study_id)
    assert study is not None
    doc = documents.document(study, kind)
    assert doc is not None
    return doc


# -- annotations ------------------------------------------------------------------------------------------------------
def _replacing(
    kind: str, study_uid: str, query: dict[str, Any], body: dict[str, Any], field: str
) -> tuple[Actor, Study, int, list[dict[str, Any]], ViewerDocument | None]:
    """What every PUT of a viewer document checks first: the study, the right to edit, the version it was read at.
    Returns (actor, study, expected version, the new items without client-sent authors, the current document)."""
    actor = current_actor()
    study = _study(study_uid, query)
    documents.require_edit(actor, kind)
    expected = _expected(body["version"])
    previous = documents.check_version(study, kind, expected)
    items = [{k: v for k, v in item.items() if k != "author"} for item in body[field]]
    return actor, study, expected, items, previous


@blp.route("/studies/<string:study_uid>/annotations", methods=["GET"])
@blp.arguments(InstitutionQuery, location="query")
@blp.response(200, DocumentOut)
@requires(READ)
def get_annotations(query: dict[str, Any], study_uid: str) -> Any:
    """The study's measurements and marks (REQ: VIEW-08): shown again to any doctor who opens the study."""
    study = _study(study_uid, query)
    return _out(current_actor(), study, documents.document(study, ANNOTATIONS))


@blp.route("/studies/<string:study_uid>/annotations", methods=["PUT"])
@blp.arguments(InstitutionQuery, location="query")
@blp.arguments(AnnotationsIn)
@blp.response(200, DocumentOut)
@requires(READ)
def put_annotations(query: dict[str, Any], body: dict[str, Any], study_uid: str) -> Any:
    """Replace the study's measurements and marks; the SR TID 1500 made by the browser goes into the archive."""
    actor, study, expected, items, previous = _replacing(ANNOTATIONS, study_uid, query, body, "annotations")
    content = documents.clean_annotations(actor, study, items, previous.content if previous is not None else [])
    dicom = None
    if body["sr"]:
        raw = dicomdoc.decode_base64(body["sr"], dicomdoc.MAX_SR_BYTES, "sr_unreadable")
        checked, _ds = dicomdoc.check_sr(raw, study)
        documents.require_instances(study, dict.fromkeys(checked.references), "sr_foreign_reference")
        if documents.instance_refs(study, {checked.sop_instance_uid}):
            raise ValidationFailed("sr_uid_in_use", "结构化报告的 SOP Instance UID 已被使用")
        dicom = (raw, checked.sop_instance_uid, checked.series_instance_uid)
    doc, stored = _write(ANNOTATIONS, study, expected, content, dicom)
    return _out(actor, study, doc, stored)


# -- key images -------------------------------------------------------------------------------------------------------
@blp.route("/studies/<string:study_uid>/key-images", methods=["GET"])
@blp.arguments(InstitutionQuery, location="query")
@blp.response(200, DocumentOut)
@requires(READ)
def get_key_images(query: dict[str, Any], study_uid: str) -> Any:
    """The study's key images (REQ: RPT-05; UX R13): the report editor's 图像 card, printing (`print`), the member
    hospital's clinicians first."""
    study = _study(study_uid, query)
    return _out(current_actor(), study, documents.document(study, KEY_IMAGES))


@blp.route("/studies/<string:study_uid>/key-images", methods=["PUT"])
@blp.arguments(InstitutionQuery, location="query")
@blp.arguments(KeyImagesIn)
@blp.response(200, DocumentOut)
@requires(READ)
def put_key_images(query: dict[str, Any], body: dict[str, Any], study_uid: str) -> Any:
    """Replace the study's key images; a Key Object Selection document ("Of Interest") goes into the archive."""
    actor, study, expected, items, previous = _replacing(KEY_IMAGES, study_uid, query, body, "items")
    content, refs = documents.clean_key_images(actor, study, items, previous.content if previous is not None else [])
    me = documents.author_of(actor)
    dicom = keyimages.document_for(study, content, refs, previous, me["name"])
    doc, stored = _write(KEY_IMAGES, study, expected, content, dicom)
    return _out(actor, study, doc, stored)


class CaseStudyKeyImagesOut(Schema):
    study_uid = fields.String()
    institution = fields.String()
    study_date = fields.String()
    study_description = fields.String()
    modalities = fields.String()
    of_case = fields.Boolean()
    version = fields.Integer()
    items = fields.List(fields.Dict())


@blp.route("/cases/<int:case_id>/key-images", methods=["GET"])
@blp.response(200, CaseStudyKeyImagesOut(many=True))
@requires("case.read")  # a case endpoint: administrators get 403 like on every clinical endpoint (AC-03)
def case_key_images(case_id: int) -> Any:
    """The key images of the case's studies (REQ: RPT-05; UX R13): the report editor's 图像 card, and the member
    hospital's clinicians first on the case page. Studies the actor may not read are left out."""
    rows = cases.key_images_of_case(current_actor(), case_id)
    codes = resolve.institution_codes({r["study"].institution_id for r in rows})
    return [
        {
            "study_uid": r["study"].study_instance_uid,
            "institution": codes.get(r["study"].institution_id, ("", ""))[0],
            "study_date": r["study"].study_date,
            "study_description": r["study"].study_description,
            "modalities": r["study"].modalities,
            "of_case": r["of_case"],
            "version": r["version"],
            "items": r["items"],
        }
        for r in rows
    ]
