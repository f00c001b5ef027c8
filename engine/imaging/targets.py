"""Storage targets and the compare / sync / migrate worker between them (REQ: IMG-09, DCM-02).

Every target is a content-addressed ObjectStore (engine/imaging/storage.py). The built-in target "local" is the
configured store (`<storage_dir>/dicom`) where the SCP receives; an instance whose `storage_target_id` is NULL is
there. Moving an instance: copy into the target (hashed while written, then re-read and verified against the index
digest), switch the row, commit, and only then delete the source file — and only when no other row on the source
still names the same content key. A crash leaves at worst an extra copy, never a row without its file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from engine import audit, config, uow
from engine.actor import Actor
from engine.db import utcnow
from engine.errors import NotFound, ValidationFailed
from engine.imaging import compression
from engine.imaging.ingest import forget_derived
from engine.imaging.models import Instance, InstanceConflict, Series
from engine.imaging.routing_models import (
    BUILTIN_TARGET_CODE,
    TARGET_KINDS,
    TASK_KINDS,
    StoragePlacement,
    StorageTarget,
    StorageTask,
)
from engine.imaging.storage import ObjectStore

log = logging.getLogger("telerad.storage")

_STORES: dict[tuple[int, str], ObjectStore] = {}
_CHUNK = 1024 * 1024
TASK_BATCH = 200


# -- targets -------------------------------------------------------------------------------------------------------
def builtin_root() -> Path:
    return config.current().storage_dir / "dicom"


def store_for(target: StorageTarget) -> ObjectStore:
    """The ObjectStore of a target (opened once per process)."""
    root = target.root_path or str(builtin_root())
    key = (target.id, root)
    store = _STORES.get(key)
    if store is None:
        store = _STORES[key] = ObjectStore(Path(root))
    return store


def builtin_target(s: Session | None = None) -> StorageTarget:
    s = s or uow.session()
    return s.execute(select(StorageTarget).where(StorageTarget.code == BUILTIN_TARGET_CODE)).scalar_one()


def get_target(ref: int | str) -> StorageTarget:
    """A target by id or code.

    Raises:
        NotFound: no such target.
    """
    s = uow.session()
    if isinstance(ref, int):
        found = s.get(StorageTarget, ref)
    else:
        found = s.execute(select(StorageTarget).where(StorageTarget.code == ref)).scalar_one_or_none()
    if found is None:
        raise NotFound("storage_target_not_found", "存储目标不存在")
    return found


def list_targets() -> list[StorageTarget]:
    return list(uow.session().execute(select(StorageTarget).order_by(StorageTarget.id)).scalars())


def create_target(
    actor: Actor, *, code: str, name: str, root_path: str, kind: str = "filesystem", is_default: bool = False
) -> StorageTarget:
    """Register a filesystem storage target (REQ: IMG-09). Audited.

    Raises:
        ValidationFailed: bad code, kind or path, or the code exists.
    """
    s = uow.session()
    code = (code or "").strip()
    if not code or len(code) > 32 or not code.replace("-", "").replace("_", "").isalnum():
        raise ValidationFailed("invalid_code", "存储目标代码须为 1–32 个字母、数字、- 或 _")
    if kind not in TARGET_KINDS:
        raise ValidationFailed("invalid_kind", f"不支持的存储类型：{kind}")
    root = Path(root_path or "")
    if not root.is_absolute():
        raise ValidationFailed("invalid_root", "存储路径须为绝对路径")
    if s.execute(select(StorageTarget.id).where(StorageTarget.code == code)).first():
        raise ValidationFailed("target_exists", f"存储目标 {code} 已存在")
    target = StorageTarget(code=code, name=name or code, kind=kind, root_path=str(root), enabled=True)
    s.add(target)
    s.flush()
    if is_default:
        _set_default(s, target)
    ObjectStore(root)  # creates the layout now: a wrong path fails here, not in the worker
    audit.record(
        actor, "storage_target_changed", object_type="storage_target", object_id=target.id, details={"code": code}
    )
    return target


def _set_default(s: Session, target: StorageTarget) -> None:
    s.execute(update(StorageTarget).where(StorageTarget.id != target.id).values(is_default=False))
    target.is_default = True
    s.flush()


def instance_target_id(inst: Instance, builtin_id: int) -> int:
    return inst.storage_target_id or builtin_id


def instance_path(inst: Instance) -> Path:
    """The file holding an instance's bytes, on whichever target holds it (C-MOVE/C-GET/WADO should use this)."""
    s = uow.session()
    target = s.get(StorageTarget, inst.storage_target_id) if inst.storage_target_id else builtin_target(s)
    assert target is not None
    return store_for(target).path(inst.storage_key)


def path_of(storage_target_id: int | None, storage_key: str) -> Path:
    """`instance_path` from the two columns (for queries that select columns, not Instance rows). NULL is the
    built-in target, the configured store (its root_path is ""): no query for it."""
    if not storage_target_id:
        root = builtin_root()
        store = _STORES.get((0, str(root)))
        if store is None:
            store = _STORES[(0, str(root))] = ObjectStore(root)
        return store.path(storage_key)
    s = uow.session()
    target = s.get(StorageTarget, storage_target_id)
    assert target is not None
    return store_for(target).path(storage_key)


def _on_target(target: StorageTarget, builtin_id: int) -> Any:
    if target.id == builtin_id:
        return or_(Instance.storage_target_id.is_(None), Instance.storage_target_id == builtin_id)
    return Instance.storage_target_id == target.id


# -- copying -------------------------------------------------------------------------------------------------------
class CopyFailed(Exception):
    """A copy did not verify (source missing or corrupt, or the written bytes differ)."""


def copy_verified(src: ObjectStore, dest: ObjectStore, key: str, digest: str) -> None:
    """Copy one object to another store and verify it there against `digest` (REQ: IMG-09)."""
    if dest.exists(key) and dest.verify(key, digest):
        return
    try:
        with src.open(key) as fh:
            stored = dest.write_stream(iter(lambda: fh.read(_CHUNK), b""))
    except FileNotFoundError as exc:
        raise CopyFailed("源文件不存在") from exc
    if stored.sha256 != digest or stored.key != key:
        raise CopyFailed("源文件摘要与索引不符")
    if not dest.verify(key, digest):
        raise CopyFailed("目标文件校验失败")


def delete_if_unreferenced(target: StorageTarget, builtin_id: int, key: str) -> bool:
    """Delete `key` from a target unless some instance (or, on the built-in store, conflict) row still uses it;
    when no row on any target names it any more, its metadata template (issue 16) goes in the same unit of work.

    Call after the commit that moved the row away; content-addressed keys can be shared by rows.
    """
    s = uow.session()
    used = s.execute(
        select(Instance.id).where(Instance.storage_key == key, _on_target(target, builtin_id)).limit(1)
    ).first()
    if used is None and target.id == builtin_id:
        used = s.execute(select(InstanceConflict.id).where(InstanceConflict.storage_key == key).limit(1)).first()
    if used is not None:
        return False
    store_for(target).delete(key)
    named = s.execute(select(Instance.id).where(Instance.storage_key == key).limit(1)).first()
    if named is None:
        named = s.execute(select(InstanceConflict.id).where(InstanceConflict.storage_key == key).limit(1)).first()
    if named is None:  # a copy on another target keeps its template: the same content under the same key
        forget_derived([key])
    return True


def relocate_instance(instance_id: int, dest_id: int, policy: str = "") -> bool:
    """Move one instance to `dest_id`, transcoding by `policy` first when given; own units of work.

    Returns whether anything changed. Raises CopyFailed / compression.TranscodeError on failure (nothing switched).
    """
    with uow.unit_of_work() as s:
        inst = s.get(Instance, instance_id)
        if inst is None:
            return False
        builtin_id = builtin_target(s).id
        src_t = s.get(StorageTarget, instance_target_id(inst, builtin_id))
        dest_t = s.get(StorageTarget, dest_id)
        assert src_t is not None
        assert dest_t is not None
        if src_t.id == dest_t.id and not policy:
            return False
        src, dest = store_for(src_t), store_for(dest_t)
        old_key, digest, old_ts = inst.storage_key, inst.sha256, inst.transfer_syntax_uid
        s.rollback()
    new: dict[str, Any] = {}
    if policy and compression.target_syntax(policy) != old_ts:
        out = compression.transcode_to_store(src.path(old_key), dest, policy)
        new = {"storage_key": out.key, "sha256": out.sha256, "size": out.size, "transfer_syntax_uid": out.ts}
    else:
        copy_verified(src, dest, old_key, digest)
    with uow.unit_of_work() as s:
        values: dict[str, Any] = {"storage_target_id": None if dest_t.id == builtin_id else dest_t.id, **new}
        res = s.execute(update(Instance).where(Instance.id == instance_id, Instance.sha256 == digest).values(**values))
        if not res.rowcount:  # type: ignore[attr-defined]
            return False  # changed meanwhile: leave the copy for the sweeper
    if src_t.id != dest_t.id or new:
        with uow.unit_of_work():
            delete_if_unreferenced(src_t, builtin_id, old_key)
    return True


# -- storage tasks (compare / sync / migrate) ----------------------------------------------------------------------
@dataclass(frozen=True)
class TaskFilter:
    institution_id: int | None = None
    study_ids: tuple[int, ...] = ()
    modality: str = ""
    received_before: str = ""  # ISO timestamp

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> TaskFilter:
        return cls(
            institution_id=raw.get("institution_id"),
            study_ids=tuple(int(x) for x in raw.get("study_ids", [])),
            modality=str(raw.get("modality", "")).upper(),
            received_before=str(raw.get("received_before", "")),
        )

    def where(self) -> list[Any]:
        out: list[Any] = []
        if self.institution_id is not None:
            out.append(Instance.institution_id == self.institution_id)
        if self.study_ids:
            out.append(Instance.study_id.in_(self.study_ids))
        if self.modality:
            out.append(Instance.series_id.in_(select(Series.id).where(Series.modality == self.modality)))
        if self.received_before:
            out.append(Instance.received_at < datetime.fromisoformat(self.received_before))
        return out


def create_storage_task(
    actor: Actor, *, kind: str, source: int | str, target: int | str, filter: dict[str, Any] | None = None
) -> StorageTask:
    """Queue a compare / sync / migrate run for the worker (REQ: IMG-09). Audited.

    Raises:
        ValidationFailed: unknown kind, same source and target, or a bad filter.
        NotFound: a target does not exist.
    """
    if kind not in TASK_KINDS:
        raise ValidationFailed("invalid_kind", f"不支持的任务类型：{kind}")
    src, dest = get_target(source), get_target(target)
    if src.id == dest.id:
        raise ValidationFailed("same_target", "源和目标存储不能相同")
    raw = dict(filter or {})
    try:
        flt = TaskFilter.parse(raw)
        flt.where()
    except (TypeError, ValueError) as exc:
        raise ValidationFailed("invalid_filter", "筛选条件无效") from exc
    s = uow.session()
    builtin_id = builtin_target(s).id
    total = s.execute(
        select(func.count()).select_from(Instance).where(_on_target(src, builtin_id), *flt.where())
    ).scalar_one()
    task = StorageTask(
        kind=kind, source_id=src.id, target_id=dest.id, filter=raw, total=int(total), created_by=actor.username or ""
    )
    s.add(task)
    s.flush()
    audit.record(
        actor,
        "storage_task_created",
        object_type="storage_task",
        object_id=task.id,
        details={"kind": kind, "source": src.code, "target": dest.code, "filter": raw, "total": task.total},
    )
    return task


def list_storage_tasks(limit: int = 100) -> list[StorageTask]:
    return list(uow.session().execute(select(StorageTask).order_by(StorageTask.id.desc()).limit(limit)).scalars())


def _task_batch(task_id: int) -> bool:
    """Handle the next batch of one task; returns False when the task is finished."""
    with uow.unit_of_work() as s:
        task = s.get(StorageTask, task_id)
        if task is None or task.state not in ("pending", "running"):
            return False
        if task.state == "pending":
            task.state, task.started_at = "running", utcnow()
        builtin_id = builtin_target(s).id
        src_t, dest_t = s.get(StorageTarget, task.source_id), s.get(StorageTarget, task.target_id)
        assert src_t is not None
        assert dest_t is not None
        flt = TaskFilter.parse(task.filter)
        # A migrated row no longer matches `_on_target(src)`: the cursor still moves past it.
        batch = s.execute(
            select(Instance.id, Instance.storage_key, Instance.sha256)
            .where(Instance.id > task.cursor, _on_target(src_t, builtin_id), *flt.where())
            .order_by(Instance.id)
            .limit(TASK_BATCH)
        ).all()
        if not batch:
            task.state, task.finished_at = "done", utcnow()
            audit.record(
                Actor.system("worker"),
                "storage_task_finished",
                object_type="storage_task",
                object_id=task.id,
                details={
                    "kind": task.kind,
                    "done": task.done,
                    "copied": task.copied,
                    "missing": task.missing,
                    "mismatched": task.mismatched,
                    "errors": task.errors,
                },
            )
            return False
        kind = task.kind
    src, dest = store_for(src_t), store_for(dest_t)
    counts = {"done": 0, "copied": 0, "missing": 0, "mismatched": 0, "errors": 0}
    moved: list[tuple[int, str, str]] = []
    error = ""
    for row in batch:
        try:
            if kind == "compare":
                if not dest.exists(row.storage_key):
                    counts["missing"] += 1
                elif not dest.verify(row.storage_key, row.sha256):
                    counts["mismatched"] += 1
            else:
                had = dest.exists(row.storage_key) and dest.verify(row.storage_key, row.sha256)
                copy_verified(src, dest, row.storage_key, row.sha256)
                counts["copied"] += 0 if had else 1
                if kind == "migrate":
                    moved.append((row.id, row.storage_key, row.sha256))
        except (CopyFailed, OSError) as exc:
            counts["errors"] += 1
            error = f"instance {row.id}: {exc}"
        counts["done"] += 1
    with uow.unit_of_work() as s:
        for inst_id, _key, digest in moved:  # switch the rows (only if unchanged meanwhile)
            s.execute(
                update(Instance)
                .where(Instance.id == inst_id, Instance.sha256 == digest)
                .values(storage_target_id=None if dest_t.id == builtin_id else dest_t.id)
            )
        values: dict[str, Any] = {k: getattr(StorageTask, k) + v for k, v in counts.items()}
        values["cursor"] = batch[-1].id
        if error:
            values["last_error"] = error[:2000]
        s.execute(update(StorageTask).where(StorageTask.id == task_id).values(**values))
    if moved:  # the source copies go only after the switch is committed
        with uow.unit_of_work():
            for _inst_id, key, _digest in moved:
                delete_if_unreferenced(src_t, builtin_id, key)
    return True


def run_storage_tasks(time_budget_s: float = 50.0) -> int:
    """Worker job: advance pending/running storage tasks batch by batch (own units of work); returns batches run."""
    deadline = time.monotonic() + time_budget_s
    with uow.unit_of_work() as s:
        ids = list(
            s.execute(
                select(StorageTask.id).where(StorageTask.state.in_(("pending", "running"))).order_by(StorageTask.id)
            ).scalars()
        )
    n = 0
    for task_id in ids:
        try:
            while time.monotonic() < deadline and _task_batch(task_id):
                n += 1
        except Exception as exc:
            log.exception("storage task %s failed", task_id)
            with uow.unit_of_work() as s:
                s.execute(
                    update(StorageTask)
                    .where(StorageTask.id == task_id)
                    .values(state="failed", last_error=str(exc)[:2000], finished_at=utcnow())
                )
    return n


# -- placements requested by routing rules -------------------------------------------------------------------------
def run_placements(limit: int = 200, time_budget_s: float = 50.0, backoff: Callable[[int], float] | None = None) -> int:
    """Worker job: move instances that routing placed on another target (and/or compressed); returns moved."""
    deadline = time.monotonic() + time_budget_s
    with uow.unit_of_work() as s:
        due = s.execute(
            select(StoragePlacement.instance_id, StoragePlacement.target_id, StoragePlacement.compression)
            .where(StoragePlacement.next_attempt_at <= utcnow())
            .order_by(StoragePlacement.next_attempt_at)
            .limit(limit)
        ).all()
    moved = 0
    for row in due:
        if time.monotonic() > deadline:
            break
        try:
            moved += int(relocate_instance(row.instance_id, row.target_id, row.compression))
            with uow.unit_of_work() as s:
                s.execute(delete(StoragePlacement).where(StoragePlacement.instance_id == row.instance_id))
        except Exception as exc:
            log.warning("placement of instance %s failed: %s", row.instance_id, exc)
            with uow.unit_of_work() as s:
                p = s.get(StoragePlacement, row.instance_id)
                if p is not None:
                    p.attempts += 1
                    delay = backoff(p.attempts) if backoff else min(3600.0, 30.0 * 2 ** (p.attempts - 1))
                    p.next_attempt_at = utcnow() + timedelta(seconds=delay)
                    p.last_error = str(exc)[:2000]
    return moved


def pending_placements() -> int:
    return int(uow.session().execute(select(func.count()).select_from(StoragePlacement)).scalar_one())


__all__ = [
    "CopyFailed",
    "builtin_target",
    "copy_verified",
    "create_storage_task",
    "create_target",
    "get_target",
    "instance_path",
    "list_storage_tasks",
    "list_targets",
    "relocate_instance",
    "run_placements",
    "run_storage_tasks",
    "store_for",
]
