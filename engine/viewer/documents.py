"""Measurements/marks and key images of a study: who may read and write them, their shape, versioned writes, audit
(issue 16; REQ: VIEW-08, RPT-05, AC-02; UX R13).

Sight: the study as DICOMweb resolves it for the actor (engine/dicomweb/resolve.py over engine/visibility.py: a
member hospital's users their own institution's studies, central doctors the studies of the patients of their
cases), and only where the actor may read its pixel data — anything else is not found (404, with a security alert
when the study exists). Writing: the doctors allowed to report on it, i.e. holders of report.write (a central-only
permission) who see it clinically. A member hospital's clinicians read both lists; they write neither (403).

Each write names the version it read (If-Match / `version`); the row is updated only where that version is still
the current one (a conditional UPDATE, or the INSERT of version 1 under the unique (study, kind) key): otherwise 409
with a Chinese message, nothing changed. Each annotation and key image carries its author, stamped here — an item a
write leaves unchanged keeps the author it had, a new or changed one gets the writer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from engine import audit, uow, visibility
from engine.accounts.models import User
from engine.actor import Actor
from engine.db import utcnow
from engine.dicomweb import resolve
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.imaging.models import Instance, Series, Study
from engine.viewer.models import ANNOTATIONS, KEY_IMAGES, ViewerDocument

MAX_ANNOTATIONS = 500
MAX_ANNOTATION_BYTES = 64 * 1024  # one annotation's JSON
MAX_ANNOTATIONS_BYTES = 768 * 1024  # the whole list's (the request body itself is capped at 1 MB, api/security.py)
MAX_DEPTH = 12
MAX_KEY_IMAGES = 200
MAX_NOTE = 500
WRITE_PERMISSION = "report.write"

KIND_NAMES = {ANNOTATIONS: "测量与标记", KEY_IMAGES: "关键图像"}
AUDIT_EVENTS = {ANNOTATIONS: "viewer_annotations_saved", KEY_IMAGES: "viewer_key_images_saved"}


@dataclass(frozen=True)
class InstanceRef:
    series_uid: str
    sop_class_uid: str
    instance_id: int


# -- sight ---------------------------------------------------------------------------------------------------------
def study_for(actor: Actor, study_uid: str, institution_code: str | None = None) -> Study:
    """The stored study `study_uid` means for the actor, if the actor may read its images.

    Raises:
        NotFound: not visible (a security alert when it exists, engine/dicomweb/resolve.py), or visible as metadata
            only (the DICOM administrator's lists), like WADO.
    """
    study, _choice = resolve.study_for(actor, study_uid, institution_code or None)
    if not visibility.may_read_pixels(actor, study):
        raise NotFound()
    return study


def may_edit(actor: Actor) -> bool:
    """Whether the actor, who sees the study clinically (`study_for`), may write its marks and key images."""
    return actor.user_id is not None and actor.has(WRITE_PERMISSION)


def require_edit(actor: Actor, kind: str) -> None:
    if not may_edit(actor):
        raise Forbidden("viewer_read_only", f"只有可书写报告的医生才能保存{KIND_NAMES[kind]}")


def document(study: Study, kind: str) -> ViewerDocument | None:
    stmt = select(ViewerDocument).where(ViewerDocument.study_id == study.id, ViewerDocument.kind == kind)
    return uow.session().execute(stmt).scalar_one_or_none()


def instance_refs(study: Study, sop_uids: set[str]) -> dict[str, InstanceRef]:
    """The study's stored instances among `sop_uids` (at the study's own institution)."""
    if not sop_uids:
        return {}
    out: dict[str, InstanceRef] = {}
    uids = sorted(sop_uids)
    s = uow.session()
    for i in range(0, len(uids), 500):
        stmt = (
            select(Instance.sop_instance_uid, Series.series_instance_uid, Instance.sop_class_uid, Instance.id)
            .join(Series, Series.id == Instance.series_id)
            .where(Instance.study_id == study.id, Instance.sop_instance_uid.in_(uids[i : i + 500]))
        )
        for sop, series, cls, iid in s.execute(stmt).tuples():
            out[sop] = InstanceRef(series, cls, iid)
    return out


def require_instances(study: Study, wanted: dict[str, str | None], code: str) -> dict[str, InstanceRef]:
    """Every SOP Instance UID in `wanted` (→ its series UID, when the caller names one) is an instance of this
    study, in that series.

    Raises:
        ValidationFailed: one is not (`code`), named in the details.
    """
    refs = instance_refs(study, set(wanted))
    for sop, series in sorted(wanted.items()):
        ref = refs.get(sop)
        if ref is None or (series is not None and ref.series_uid != series):
            raise ValidationFailed(code, "引用了不属于本检查的图像", {"sop_uid": sop[:64]})
    return refs


# -- shape ---------------------------------------------------------------------------------------------------------
def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def user_name(user_id: int) -> str:
    user = uow.session().get(User, user_id)
    return user.full_name if user is not None else ""


def author_of(actor: Actor) -> dict[str, Any]:
    """{id, name} of the writer, as each item it adds or changes carries it."""
    name = user_name(actor.user_id) if actor.user_id is not None else ""
    return {"id": actor.user_id, "name": name or actor.username or ""}


def _stamped(items: list[dict[str, Any]], previous: list[dict[str, Any]], key: Any, actor: Actor) -> list[Any]:
    """Each item with its author: kept from the previous version when the item is unchanged, else the writer."""
    before = {key(p): p for p in previous}
    me = author_of(actor)
    out = []
    for item in items:
        old = before.get(key(item))
        same = old is not None and {k: v for k, v in old.items() if k != "author"} == item
        out.append({**item, "author": old.get("author", me) if same and old is not None else me})
    return out


def clean_annotations(
    actor: Actor, study: Study, items: list[dict[str, Any]], previous: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Check the annotation list (already of the API schema's shape) against the study and the limits; with
    authors.

    Raises:
        ValidationFailed: too many or too large, nested too deep, a repeated annotationUID, an image of another study.
    """
    if len(items) > MAX_ANNOTATIONS:
        raise ValidationFailed("too_many_annotations", f"标记过多（每个检查不超过 {MAX_ANNOTATIONS} 个）")
    seen: set[str] = set()
    total = 0
    wanted: dict[str, str | None] = {}
    for item in items:
        uid = item["annotationUID"]
        if uid in seen:
            raise ValidationFailed("duplicate_annotation", "标记编号重复", {"annotationUID": uid})
        seen.add(uid)
        size = len(json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode())
        total += size
        if size > MAX_ANNOTATION_BYTES:
            raise ValidationFailed("annotation_too_large", "单个标记的数据过大", {"annotationUID": uid})
        if _depth(item) > MAX_DEPTH:
            raise ValidationFailed("annotation_too_deep", "标记数据的嵌套层次过深", {"annotationUID": uid})
        if wanted.get(item["sopUid"], item["seriesUid"]) != item["seriesUid"]:
            raise ValidationFailed("annotation_foreign_image", "引用了不属于本检查的图像", {"annotationUID": uid})
        wanted[item["sopUid"]] = item["seriesUid"]
    if total > MAX_ANNOTATIONS_BYTES:
        raise ValidationFailed("annotations_too_large", "标记数据总量过大")
    require_instances(study, wanted, "annotation_foreign_image")
    return _stamped(items, previous, lambda a: a["annotationUID"], actor)


def clean_key_images(
    actor: Actor, study: Study, items: list[dict[str, Any]], previous: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, InstanceRef]]:
    """Check the key image list against the study; with authors, and the instances it names.

    Raises:
        ValidationFailed: too many, an image listed twice, an image of another study.
    """
    if len(items) > MAX_KEY_IMAGES:
        raise ValidationFailed("too_many_key_images", f"关键图像过多（每个检查不超过 {MAX_KEY_IMAGES} 张）")
    seen: set[tuple[str, int]] = set()
    wanted: dict[str, str | None] = {}
    for item in items:
        k = (item["sop_uid"], item["frame"])
        if k in seen:
            raise ValidationFailed("duplicate_key_image", "同一图像重复标记为关键图像", {"sop_uid": k[0]})
        seen.add(k)
        if wanted.get(item["sop_uid"], item["series_uid"]) != item["series_uid"]:
            raise ValidationFailed("key_image_foreign_image", "引用了不属于本检查的图像", {"sop_uid": k[0]})
        wanted[item["sop_uid"]] = item["series_uid"]
    refs = require_instances(study, wanted, "key_image_foreign_image")
    return _stamped(items, previous, lambda i: (i["sop_uid"], i["frame"]), actor), refs


# -- versioned writes ----------------------------------------------------------------------------------------------
def stale(kind: str, current: int) -> Conflict:
    return Conflict(
        "stale_version",
        f"{KIND_NAMES[kind]}已被他人修改（当前版本 {current}），请刷新后再保存",
        {"current_version": current},
    )


def check_version(study: Study, kind: str, expected: int) -> ViewerDocument | None:
    """The current document, if `expected` is its version (0: none yet).

    Raises:
        Conflict: another write came first (409).
    """
    doc = document(study, kind)
    current = doc.version if doc is not None else 0
    if current != expected:
        raise stale(kind, current)
    return doc


def save(
    actor: Actor,
    study: Study,
    kind: str,
    expected: int,
    content: list[dict[str, Any]],
    *,
    series_uid: str | None,
    sop_uid: str | None,
) -> ViewerDocument:
    """Write version `expected` + 1 in the caller's unit of work, if `expected` is still the current version, and
    audit it (fail closed: the event commits with the write).

    Raises:
        Conflict: a stale version (nothing written).
    """
    s = uow.session()
    now = utcnow()
    values = {
        "content": content,
        "series_instance_uid": series_uid,
        "sop_instance_uid": sop_uid,
        "updated_by_id": actor.user_id,
        "updated_at": now,
    }
    if expected == 0:
        doc = ViewerDocument(study_id=study.id, institution_id=study.institution_id, kind=kind, version=1, **values)
        try:
            with s.begin_nested():
                s.add(doc)
                s.flush()
        except IntegrityError:  # another writer's version 1 came first
            found = document(study, kind)
            raise stale(kind, found.version if found is not None else 0) from None
    else:
        stmt = (
            update(ViewerDocument)
            .where(ViewerDocument.study_id == study.id, ViewerDocument.kind == kind, ViewerDocument.version == expected)
            .values(version=ViewerDocument.version + 1, **values)
            .execution_options(synchronize_session=False)
        )
        if s.execute(stmt).rowcount != 1:  # type: ignore[attr-defined]
            found = document(study, kind)
            raise stale(kind, found.version if found is not None else 0)
        doc_or_none = document(study, kind)
        assert doc_or_none is not None
        doc = doc_or_none
        s.refresh(doc)
    audit.record(
        actor,
        AUDIT_EVENTS[kind],
        object_type="dicom_study",
        object_id=study.study_instance_uid,
        patient_id=study.patient_id[:64] or None,
        details={
            "version": doc.version,
            "count": len(content),
            "study_institution_id": study.institution_id,
            "sop_instance_uid": sop_uid,
        },
    )
    return doc


def printable_key_images(actor: Actor, study_uid: str, institution_code: str | None = None) -> list[dict[str, Any]]:
    """The key images of a study marked for printing (RPT-05: what the print issue prints), in their order."""
    study = study_for(actor, study_uid, institution_code)
    doc = document(study, KEY_IMAGES)
    return [i for i in (doc.content if doc is not None else []) if i.get("print")]
