"""Forwarding: a persistent queue of (instance, destination) jobs sent in batches, one association per batch
(REQ: IMG-08, DCM-02, IMG-04).

- State lives in `forward_job`; a `sending` row whose lease expired (the worker died) goes back to `pending`, so a
  restart loses nothing.
- What a destination acknowledged (C-STORE success or warning) is recorded in `forward_ack` in the same commit
  that marks the job done, and is never sent to that node again — not by a retry, a rule or a manual re-send.
  A response lost with the association (the destination stored the instance but died before answering) is the one
  case where the same instance can reach a destination twice: C-STORE is at-least-once by nature (PS3.4 B.2.3);
  destinations key on the SOP Instance UID.
- Failures back off exponentially with jitter, per job; a job that keeps failing ends `failed` for review.
- Each instance goes in a syntax the destination accepted (engine/imaging/transcode.py): the job's compression
  policy when accepted, else the stored bytes when the stored syntax is accepted, else uncompressed (decoded in the
  sandbox when compressed); the transport proposes the stored syntaxes and the uncompressed ones in separate
  presentation contexts (transcode.plan_contexts).
- The network side is injected (`Transport`; dicom/forward_transport.py StoreTransport), so the engine does not
  import dicom/.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine import audit, uow
from engine.actor import Actor
from engine.db import upsert_insert, utcnow
from engine.errors import NotFound, ValidationFailed
from engine.imaging import compression, targets, transcode
from engine.imaging.models import DicomNode, Instance, Study
from engine.imaging.routing_models import ForwardAck, ForwardJob, StorageTarget

log = logging.getLogger("telerad.forward")

STORE_OK = {0x0000, 0xB000, 0xB006, 0xB007}  # PS3.4 B.2.3: success and warnings mean "the destination has it"


class Channel(Protocol):
    def accepted(self, sop_class: str) -> set[str]: ...

    def send(self, item: transcode.Outgoing) -> int: ...


class Transport(Protocol):
    def open(self, node: Any, pairs: Iterable[tuple[str, str]]) -> AbstractContextManager[Channel]: ...


@dataclass
class Settings:
    """Tunables of the worker job (tests shorten them)."""

    batch: int = 500
    lease_s: float = 900.0
    backoff_base_s: float = 30.0
    backoff_max_s: float = 3600.0
    max_attempts: int = 30
    time_budget_s: float = 50.0


@dataclass
class RunResult:
    sent: int = 0
    skipped_acked: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def _insert(s: Session) -> Any:
    return upsert_insert(s.get_bind().dialect.name)


def backoff_delay(attempts: int, cfg: Settings) -> float:
    """Exponential backoff with equal jitter: half fixed, half random (no thundering herd after an outage)."""
    delay = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** max(0, attempts - 1))
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not cryptography


# -- enqueueing ----------------------------------------------------------------------------------------------------
def enqueue(instance_ids: Iterable[int], node_id: int, *, rule_id: int | None = None, policy: str = "") -> int:
    """Queue instances for a destination (one job per instance and node). A failed job is re-armed; a pending,
    sending or done one is left alone. Returns the rows inserted or re-armed."""
    compression.validate_policy(policy)
    s = uow.session()
    ids = list(instance_ids)
    if not ids:
        return 0
    now = utcnow()
    ins = _insert(s)(ForwardJob)
    stmt = ins.values(
        [
            {
                "instance_id": i,
                "node_id": node_id,
                "rule_id": rule_id,
                "compression": policy,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "last_error": "",
                "created_at": now,
                "updated_at": now,
            }
            for i in ids
        ]
    ).on_conflict_do_update(
        index_elements=["instance_id", "node_id"],
        set_={"state": "pending", "attempts": 0, "next_attempt_at": now, "last_error": "", "updated_at": now},
        where=ForwardJob.state == "failed",
    )
    # RETURNING, not rowcount: PostgreSQL's driver reports -1 for a multi-row INSERT … ON CONFLICT.
    return len(s.execute(stmt.returning(ForwardJob.id)).all())


def _destination(s: Session, node_id: int) -> DicomNode:
    node = s.get(DicomNode, node_id)
    if node is None:
        raise NotFound("node_not_found", "目标节点不存在")
    if not node.enabled or not node.port:
        raise ValidationFailed("node_unavailable", f"节点 {node.aet} 未启用或未配置端口，不能作为转发目标")
    return node


def forward_study(actor: Actor, study_id: int, node_id: int, policy: str = "") -> dict[str, int]:
    """Manually forward a study to a node (REQ: IMG-08, DCM-04). Incremental: instances the node already
    acknowledged are not sent again. Audited. Returns {"instances", "queued", "already_sent"}.

    Raises:
        NotFound: no such study (or not visible to the actor's institution) or node.
        ValidationFailed: the node is disabled or has no port, or the policy is unknown.
    """
    s = uow.session()
    study = s.get(Study, study_id)
    if study is None or (
        actor.institution_id is not None and not actor.is_central and study.institution_id != actor.institution_id
    ):
        raise NotFound("study_not_found", "检查不存在")
    node = _destination(s, node_id)
    try:
        compression.validate_policy(policy)
    except ValueError as exc:
        raise ValidationFailed("invalid_policy", f"未知的压缩策略：{policy}") from exc
    rows = s.execute(select(Instance.id, Instance.sop_instance_uid).where(Instance.study_id == study_id)).all()
    acked = set(
        s.execute(
            select(ForwardAck.sop_instance_uid).where(
                ForwardAck.node_id == node_id, ForwardAck.sop_instance_uid.in_([r.sop_instance_uid for r in rows])
            )
        ).scalars()
    )
    todo = [r.id for r in rows if r.sop_instance_uid not in acked]
    queued = enqueue(todo, node_id, policy=policy)
    audit.record(
        actor,
        "dicom_forward_requested",
        object_type="dicom_study",
        object_id=study_id,
        patient_id=study.patient_id or None,
        details={"node": node.aet, "instances": len(rows), "queued": queued, "already_sent": len(acked)},
    )
    return {"instances": len(rows), "queued": queued, "already_sent": len(acked)}


def retry_failed(actor: Actor, node_id: int | None = None) -> int:
    """Re-arm failed jobs (all, or one node's). Audited. Returns the count."""
    s = uow.session()
    stmt = update(ForwardJob).where(ForwardJob.state == "failed")
    if node_id is not None:
        stmt = stmt.where(ForwardJob.node_id == node_id)
    res = s.execute(stmt.values(state="pending", attempts=0, next_attempt_at=utcnow(), updated_at=utcnow()))
    n = int(res.rowcount or 0)  # type: ignore[attr-defined]
    audit.record(actor, "dicom_forward_requested", object_type="dicom_node", object_id=node_id, details={"retry": n})
    return n


def queue_summary() -> list[dict[str, Any]]:
    """Jobs per destination and state, for the admin UI."""
    s = uow.session()
    rows = s.execute(
        select(ForwardJob.node_id, DicomNode.aet, ForwardJob.state, func.count())
        .join(DicomNode, DicomNode.id == ForwardJob.node_id)
        .group_by(ForwardJob.node_id, DicomNode.aet, ForwardJob.state)
        .order_by(DicomNode.aet)
    ).all()
    return [{"node_id": r[0], "aet": r[1], "state": r[2], "count": int(r[3])} for r in rows]


def list_jobs(
    *, node_id: int | None = None, state: str | None = None, limit: int = 100, offset: int = 0
) -> list[ForwardJob]:
    stmt = select(ForwardJob).order_by(ForwardJob.id.desc()).limit(limit).offset(offset)
    if node_id is not None:
        stmt = stmt.where(ForwardJob.node_id == node_id)
    if state is not None:
        stmt = stmt.where(ForwardJob.state == state)
    return list(uow.session().execute(stmt).scalars())


# -- the worker ----------------------------------------------------------------------------------------------------
def recover_leases() -> int:
    """`sending` jobs whose lease expired (a worker died mid-batch) go back to `pending`."""
    res = uow.session().execute(
        update(ForwardJob)
        .where(ForwardJob.state == "sending", ForwardJob.leased_until < utcnow())
        .values(state="pending", leased_until=None, updated_at=utcnow())
    )
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


def _claim(node_id: int, cfg: Settings) -> list[int]:
    with uow.unit_of_work() as s:
        now = utcnow()
        ids = list(
            s.execute(
                select(ForwardJob.id)
                .where(ForwardJob.node_id == node_id, ForwardJob.state == "pending", ForwardJob.next_attempt_at <= now)
                .order_by(ForwardJob.id)
                .limit(cfg.batch)
            ).scalars()
        )
        if not ids:
            return []
        token = now + timedelta(seconds=cfg.lease_s)
        s.execute(
            update(ForwardJob)
            .where(ForwardJob.id.in_(ids), ForwardJob.state == "pending")
            .values(state="sending", leased_until=token, attempts=ForwardJob.attempts + 1, updated_at=now)
        )
        return list(
            s.execute(
                select(ForwardJob.id).where(
                    ForwardJob.id.in_(ids), ForwardJob.state == "sending", ForwardJob.leased_until == token
                )
            ).scalars()
        )


@dataclass
class _Item:
    job_id: int
    attempts: int
    policy: str
    sop_uid: str
    sop_class: str
    ts: str
    sha256: str
    path: Path


def _load(job_ids: list[int]) -> tuple[DicomNode | None, list[_Item], set[str]]:
    with uow.unit_of_work() as s:
        builtin_id = targets.builtin_target(s).id
        rows = s.execute(
            select(ForwardJob, Instance)
            .join(Instance, Instance.id == ForwardJob.instance_id)
            .where(ForwardJob.id.in_(job_ids))
            .order_by(ForwardJob.id)
        ).all()
        if not rows:
            return None, [], set()
        node = s.get(DicomNode, rows[0][0].node_id)
        assert node is not None
        s.expunge(node)
        stores: dict[int, Any] = {}
        items = []
        for job, inst in rows:
            tid = inst.storage_target_id or builtin_id
            if tid not in stores:
                target = s.get(StorageTarget, tid)
                assert target is not None
                stores[tid] = targets.store_for(target)
            items.append(
                _Item(
                    job.id,
                    job.attempts,
                    job.compression,
                    inst.sop_instance_uid,
                    inst.sop_class_uid,
                    inst.transfer_syntax_uid,
                    inst.sha256,
                    stores[tid].path(inst.storage_key),
                )
            )
        acked = set(
            s.execute(
                select(ForwardAck.sop_instance_uid).where(
                    ForwardAck.node_id == node.id, ForwardAck.sop_instance_uid.in_([i.sop_uid for i in items])
                )
            ).scalars()
        )
        return node, items, acked


def _done(item: _Item, node_id: int, ts: str) -> None:
    with uow.unit_of_work() as s:
        now = utcnow()
        s.execute(
            _insert(s)(ForwardAck)
            .values(
                node_id=node_id, sop_instance_uid=item.sop_uid, sha256=item.sha256, transfer_syntax_uid=ts, acked_at=now
            )
            .on_conflict_do_nothing(index_elements=["node_id", "sop_instance_uid"])
        )
        s.execute(
            update(ForwardJob)
            .where(ForwardJob.id == item.job_id)
            .values(state="done", leased_until=None, last_error="", updated_at=now)
        )


def _retry(items: list[_Item], error: str, cfg: Settings, result: RunResult, permanent: bool = False) -> None:
    if not items:
        return
    with uow.unit_of_work() as s:
        now = utcnow()
        for item in items:
            final = permanent or item.attempts >= cfg.max_attempts
            s.execute(
                update(ForwardJob)
                .where(ForwardJob.id == item.job_id)
                .values(
                    state="failed" if final else "pending",
                    leased_until=None,
                    next_attempt_at=now + timedelta(seconds=backoff_delay(item.attempts, cfg)),
                    last_error=error[:2000],
                    updated_at=now,
                )
            )
            if final:
                result.failed += 1
            else:
                result.retried += 1


def _variant(item: _Item, accepted: set[str], tmp: Path, box: compression.Sandbox | None) -> transcode.Outgoing | None:
    """What to send for what the destination accepted: the policy's transcode when accepted, else the stored
    instance as stored, re-encoded or decoded (transcode.prepare); None when nothing fits.

    Raises:
        transcode.TranscodeError: the stored data could not be decoded.
        OSError, ValueError: a file cannot be read.
    """
    if item.policy:
        want = compression.target_syntax(item.policy)
        if want in accepted and want != item.ts:
            out = tmp / f"{item.job_id}.dcm"
            try:
                compression.transcode_file(item.path, out, item.policy, box)
                return transcode.prepare(out, accepted)
            except compression.TranscodeError as exc:
                log.warning("forward job %s: %s; sending as stored", item.job_id, exc)
    if transcode.choose_syntax(item.ts, accepted) is None:
        return None
    return transcode.prepare(item.path, accepted)


def _send_batch(
    transport: Transport, job_ids: list[int], cfg: Settings, result: RunResult, box: compression.Sandbox | None
) -> bool:
    """Send one claimed batch; False when the destination could not be reached or the association broke."""
    node, items, acked = _load(job_ids)
    if node is None:
        return True
    for item in [i for i in items if i.sop_uid in acked]:  # the destination has it already: never again
        _done(item, node.id, "")
        result.skipped_acked += 1
    items = [i for i in items if i.sop_uid not in acked]
    if not items:
        return True
    if not node.enabled or not node.port:
        _retry(items, f"节点 {node.aet} 未启用或未配置端口", cfg, result)
        return False
    pairs = {(i.sop_class, i.ts) for i in items}
    pairs |= {(i.sop_class, compression.target_syntax(i.policy)) for i in items if i.policy}
    remaining = list(items)
    try:
        with tempfile.TemporaryDirectory(prefix="telerad-fwd-") as tmpdir, transport.open(node, pairs) as channel:
            while remaining:
                item = remaining[0]
                try:
                    chosen = _variant(item, channel.accepted(item.sop_class), Path(tmpdir), box)
                except (compression.TranscodeError, transcode.TranscodeError, OSError, ValueError) as exc:
                    _retry([remaining.pop(0)], f"转码失败：{exc}", cfg, result)
                    continue
                if chosen is None:
                    _retry([remaining.pop(0)], "目标节点不接受该 SOP 类或传输语法", cfg, result, permanent=True)
                    continue
                st = channel.send(chosen)  # raises when the association broke
                remaining.pop(0)
                if chosen.path is not None and chosen.path != item.path:
                    chosen.path.unlink(missing_ok=True)
                if st in STORE_OK:
                    _done(item, node.id, chosen.ts)
                    result.sent += 1
                else:
                    _retry([item], f"目标节点返回状态 0x{st:04X}", cfg, result)
    except Exception as exc:  # refused, unreachable, aborted mid-batch: everything not acknowledged backs off
        log.warning("forward to %s: %s", node.aet, exc)
        result.errors.append(f"{node.aet}: {exc}")
        _retry(remaining, f"发送失败：{exc}", cfg, result)
        return False
    return True


def run_forward_queue(
    transport: Transport, cfg: Settings | None = None, box: compression.Sandbox | None = None
) -> RunResult:
    """Worker job (REQ: IMG-08): recover expired leases, then send due jobs per destination in batches, one
    association per batch, until the queue is empty or the time budget is used. Own units of work."""
    cfg = cfg or Settings()
    deadline = time.monotonic() + cfg.time_budget_s
    result = RunResult()
    with uow.unit_of_work() as s:
        recover_leases()
        nodes = list(
            s.execute(
                select(ForwardJob.node_id)
                .where(ForwardJob.state == "pending", ForwardJob.next_attempt_at <= utcnow())
                .distinct()
            ).scalars()
        )
    for node_id in nodes:
        while time.monotonic() < deadline:
            ids = _claim(node_id, cfg)
            if not ids:
                break
            if not _send_batch(transport, ids, cfg, result, box):
                break  # the destination is down: its other jobs wait for the next run
    if result.sent or result.failed:
        with uow.unit_of_work():
            audit.record(
                Actor.system("worker"),
                "dicom_forwarded",
                details={"sent": result.sent, "failed": result.failed, "retried": result.retried},
            )
    return result


def iter_acked(node_id: int) -> Iterator[str]:
    """The SOP Instance UIDs a node acknowledged."""
    yield from uow.session().execute(select(ForwardAck.sop_instance_uid).where(ForwardAck.node_id == node_id)).scalars()
