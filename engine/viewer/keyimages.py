"""The Key Object Selection document of a study's key images (issue 16; REQ: RPT-05; UX R13): the headers of the
selected instances read from the archive (no pixel data), the document made by engine/viewer/dicomdoc.py.

One series per study for telerad's key image documents (its UID kept on the study's `viewer_document` row), one
instance per saved version (its InstanceNumber). An empty list writes no document: the JSON is what the viewer, the
report editor's 图像 card and printing read, and there is nothing left to select.
"""

from __future__ import annotations

from typing import Any

from pydicom.uid import generate_uid
from sqlalchemy import select

from engine import uow
from engine.errors import ValidationFailed
from engine.imaging import targets
from engine.imaging.models import Instance, Study
from engine.viewer import dicomdoc
from engine.viewer.documents import InstanceRef
from engine.viewer.models import ViewerDocument


def description(items: list[dict[str, Any]]) -> str | None:
    """The Key Object Description (113012) text: the doctors' notes, one per line (at most 1,024 characters; UT)."""
    notes = [f"{n}. {i['note'].strip()}" for n, i in enumerate(items, 1) if i.get("note", "").strip()]
    return "\n".join(notes)[:1024] or None


def document_for(
    study: Study,
    items: list[dict[str, Any]],
    refs: dict[str, InstanceRef],
    previous: ViewerDocument | None,
    author_name: str,
) -> tuple[bytes, str, str] | None:
    """The KOS of `items` (Part-10 bytes, its SOP Instance UID, its series UID), or None for an empty list.

    Raises:
        ValidationFailed: a selected instance's file cannot be read, or highdicom refuses the references.
    """
    if not items:
        return None
    frames: dict[str, list[int]] = {}
    for item in items:
        frames.setdefault(item["sop_uid"], []).append(int(item["frame"]))
    ids = [refs[sop].instance_id for sop in frames]
    rows = {i.id: i for i in uow.session().execute(select(Instance).where(Instance.id.in_(ids))).scalars()}
    images = []
    for sop, chosen in frames.items():
        try:
            header = dicomdoc.read_header(targets.instance_path(rows[refs[sop].instance_id]))
        except (OSError, ValueError) as exc:
            raise ValidationFailed(
                "key_image_unreadable", "无法读取所选图像的文件", {"sop_uid": sop, "reason": type(exc).__name__}
            ) from None
        images.append(dicomdoc.KeyImageRef(header, sorted(set(chosen))))
    series_uid = (previous.series_instance_uid if previous is not None else None) or generate_uid()
    version = (previous.version if previous is not None else 0) + 1
    raw, sop_uid = dicomdoc.build_kos(
        study,
        images,
        series_uid=series_uid,
        instance_number=version,
        author_name=author_name,
        description=description(items),
    )
    return raw, sop_uid, series_uid
