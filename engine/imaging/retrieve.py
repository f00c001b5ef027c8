"""C-MOVE / C-GET: which stored instances a retrieve names, and where a C-MOVE may send them (REQ: DCM-04, AC-08).

Only the calling device's institution's instances are ever selected, and a move destination must be an enabled
registered node with a port of that same institution. Callers (dicom/qr.py) open the unit of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from engine import audit, uow
from engine.imaging import targets
from engine.imaging.models import DicomNode, Instance, Series, Study
from engine.imaging.routing_models import StorageTarget
from engine.imaging.services import NodeInfo, record_rejection
from engine.imaging.storage import ObjectStore

# At most this many sub-operations per request: the Number of … Sub-operations fields are US (PS3.4 C.4.2.2).
MAX_SUBOPERATIONS = 65535

# The unique key each level requires (PS3.4 C.4.2.2.1 / C.6.1.1.x), and the keys of the levels above it.
_LEVEL_KEY = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}
_LEVEL_ORDER = ("PATIENT", "STUDY", "SERIES", "IMAGE")
_COLUMNS = {
    "PatientID": Study.patient_id,
    "StudyInstanceUID": Study.study_instance_uid,
    "SeriesInstanceUID": Series.series_instance_uid,
    "SOPInstanceUID": Instance.sop_instance_uid,
}


class RetrieveError(ValueError):
    """The identifier does not name a level and its unique key (answered 0xA900)."""


@dataclass(frozen=True)
class RetrieveItem:
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    storage_key: str
    study_instance_uid: str
    patient_id: str
    path: str = ""  # the file on whichever storage target holds it (IMG-09 moves instances between targets)


@dataclass(frozen=True)
class Destination:
    node_id: int
    aet: str
    host: str
    port: int


def _values(raw: str) -> list[str]:
    return [v.strip().rstrip("\x00") for v in raw.split("\\") if v.strip()]


def select_instances(node: NodeInfo, level: str, keys: dict[str, str], *, patient_root: bool) -> list[RetrieveItem]:
    """The instances a C-MOVE/C-GET identifier names, within the node's institution only (REQ: AC-08).

    The level's unique key is required (a list of UIDs is allowed); unique keys of higher levels narrow the match.

    Raises:
        RetrieveError: unknown level, PATIENT level outside Patient Root, missing unique key, or too many matches.
    """
    level = (level or "").strip().upper()
    if level not in _LEVEL_KEY or (level == "PATIENT" and not patient_root):
        raise RetrieveError(f"检索级别无效：{level!r}")
    if not _values(keys.get(_LEVEL_KEY[level], "")):
        raise RetrieveError(f"缺少 {_LEVEL_KEY[level]}")
    stmt = (
        select(
            Instance.sop_class_uid,
            Instance.sop_instance_uid,
            Instance.transfer_syntax_uid,
            Instance.storage_key,
            Study.study_instance_uid,
            Study.patient_id,
            Instance.storage_target_id,
        )
        .join(Series, Series.id == Instance.series_id)
        .join(Study, Study.id == Instance.study_id)
        .where(Instance.institution_id == node.institution_id)
    )
    for lvl in _LEVEL_ORDER[: _LEVEL_ORDER.index(level) + 1]:
        name = _LEVEL_KEY[lvl]
        if lvl == "PATIENT" and not patient_root:
            continue
        wanted = _values(keys.get(name, ""))
        if wanted:
            stmt = stmt.where(_COLUMNS[name].in_(wanted))
    stmt = stmt.order_by(Instance.study_id, Instance.series_id, Instance.instance_number, Instance.id)
    rows = uow.session().execute(stmt.limit(MAX_SUBOPERATIONS + 1)).all()
    if len(rows) > MAX_SUBOPERATIONS:
        raise RetrieveError(f"匹配的实例超过 {MAX_SUBOPERATIONS} 个，请缩小检索范围")
    stores: dict[int | None, ObjectStore] = {}  # one look-up per storage target, not per instance
    for target in {row[-1] for row in rows}:
        found = uow.session().get(StorageTarget, target) if target else targets.builtin_target()
        assert found is not None
        stores[target] = targets.store_for(found)
    return [
        RetrieveItem(sop_class, sop_instance, syntax, key, study_uid, patient_id, path=str(stores[target].path(key)))
        for sop_class, sop_instance, syntax, key, study_uid, patient_id, target in rows
    ]


def move_destination(node: NodeInfo, ip: str | None, aet: str) -> Destination | None:
    """The C-MOVE destination named `aet`: an enabled node with a port of the caller's institution (REQ: AC-08).

    Anything else — unknown AE, another institution's node, disabled, no port — is None and a security alert.
    """
    s = uow.session()
    title = (aet or "").strip()
    rows = list(s.execute(select(DicomNode).where(DicomNode.aet == title)).scalars())
    usable = [n for n in rows if n.institution_id == node.institution_id and n.enabled and n.port and n.host.strip()]
    if usable:
        dest = min(usable, key=lambda n: n.id)
        return Destination(dest.id, dest.aet, dest.host, int(dest.port or 0))
    if not rows:
        reason, code = f"调阅目的地 {title!r} 未登记", "unknown_destination"
    elif all(n.institution_id != node.institution_id for n in rows):
        reason, code = f"调阅目的地 {title} 不属于本机构", "foreign_destination"
    else:
        reason, code = f"调阅目的地 {title} 已停用或未登记端口", "unusable_destination"
    record_rejection(node.aet, ip or "", reason, {"code": code, "op": "move", "destination": title})
    return None


def record_retrieve(
    node: NodeInfo,
    ip: str | None,
    op: str,
    level: str,
    items: list[RetrieveItem],
    destination: str | None,
    results: dict[str, Any],
) -> None:
    """One audit event per C-MOVE/C-GET request: DICOM Instances Transferred (110104) with the studies sent."""
    studies = sorted({i.study_instance_uid for i in items})
    patients = sorted({i.patient_id for i in items if i.patient_id})
    audit.record(
        node.actor(ip),
        "dicom_instances_retrieved",
        object_type="dicom_retrieve",
        object_id=op,
        patient_id=patients[0][:64] if len(patients) == 1 else None,
        details={
            "op": op,
            "level": level,
            "destination": destination,
            "studies": studies[:20],
            "instances": len(items),
            **results,
            "dicom_event": "110104",
        },
    )
