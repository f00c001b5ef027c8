"""Routing rules: which storage target holds an incoming instance, which nodes it is forwarded to, and with which
compression (REQ: DCM-02, IMG-03, IMG-07).

Rules are read once per process and re-read only when their version (count, newest change, highest id) moved, checked
at most every RULES_TTL_S seconds; decisions are memoised per (device, institution, series, SOP class). With no
rules, the ingest hook costs one dictionary lookup. Applied by the receive service (engine/imaging/receive.py) in
the ingest's own unit of work, whatever the source (C-STORE, telerad's own C-GET/C-MOVE, later STOW-RS and
uploads), so an instance is never indexed without its forward jobs and placement, and never acknowledged before
both are committed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select

from engine import audit, uow
from engine.actor import Actor
from engine.db import utcnow
from engine.errors import NotFound, ValidationFailed
from engine.imaging import compression, forwarding
from engine.imaging.ingest import STORED, IngestResult, InstanceMeta
from engine.imaging.models import DicomNode
from engine.imaging.routing_models import BUILTIN_TARGET_CODE, RoutingRule, StoragePlacement, StorageTarget
from engine.imaging.source import Source

RULES_TTL_S = 2.0
_MEMO_SIZE = 4096


@dataclass(frozen=True)
class Subject:
    """What rules look at: the sending device (none for a user's or a client's upload), its institution and a few
    indexed tags."""

    node_id: int | None
    institution_id: int | None
    modality: str = ""
    body_part: str = ""
    sop_class_uid: str = ""
    study_description: str = ""
    series_description: str = ""


@dataclass(frozen=True)
class CompiledRule:
    id: int
    stop: bool
    node_ids: frozenset[int]
    institution_ids: frozenset[int]
    modalities: frozenset[str]
    body_parts: frozenset[str]
    sop_classes: frozenset[str]
    study_contains: str
    series_contains: str
    storage_target_id: int | None
    storage_compression: str
    forward_node_ids: tuple[int, ...]
    forward_compression: str

    def matches(self, x: Subject) -> bool:
        return (
            (not self.node_ids or x.node_id in self.node_ids)
            and (not self.institution_ids or x.institution_id in self.institution_ids)
            and (not self.modalities or x.modality.upper() in self.modalities)
            and (not self.body_parts or x.body_part.upper() in self.body_parts)
            and (not self.sop_classes or x.sop_class_uid in self.sop_classes)
            and (not self.study_contains or self.study_contains in x.study_description.casefold())
            and (not self.series_contains or self.series_contains in x.series_description.casefold())
        )


@dataclass(frozen=True)
class Decision:
    """The combined actions of every matching rule."""

    storage_target_id: int | None = None  # None: leave it where it was received
    storage_compression: str = ""
    forwards: tuple[tuple[int, int, str], ...] = ()  # (node_id, rule_id, compression)

    @property
    def empty(self) -> bool:
        return self.storage_target_id is None and not self.storage_compression and not self.forwards


def _compile(r: RoutingRule) -> CompiledRule:
    return CompiledRule(
        id=r.id,
        stop=r.stop,
        node_ids=frozenset(int(x) for x in r.node_ids or []),
        institution_ids=frozenset(int(x) for x in r.institution_ids or []),
        modalities=frozenset(str(x).upper() for x in r.modalities or []),
        body_parts=frozenset(str(x).upper() for x in r.body_parts or []),
        sop_classes=frozenset(str(x) for x in r.sop_classes or []),
        study_contains=(r.study_description_contains or "").casefold(),
        series_contains=(r.series_description_contains or "").casefold(),
        storage_target_id=r.storage_target_id,
        storage_compression=r.storage_compression or "",
        forward_node_ids=tuple(int(x) for x in r.forward_node_ids or []),
        forward_compression=r.forward_compression or "",
    )


def decide(rules: list[CompiledRule], x: Subject) -> Decision:
    """Apply rules in priority order: the first matching rule that names a storage target wins the target;
    forward destinations accumulate (once per node); a matching `stop` rule ends the evaluation."""
    target: int | None = None
    storage_policy = ""
    forwards: dict[int, tuple[int, int, str]] = {}
    for rule in rules:
        if not rule.matches(x):
            continue
        if target is None and rule.storage_target_id is not None:
            target, storage_policy = rule.storage_target_id, rule.storage_compression
        elif target is None and rule.storage_compression and not storage_policy:
            storage_policy = rule.storage_compression
        for node_id in rule.forward_node_ids:
            forwards.setdefault(node_id, (node_id, rule.id, rule.forward_compression))
        if rule.stop:
            break
    return Decision(target, storage_policy, tuple(forwards.values()))


class RuleCache:
    """The enabled rules of this process, refreshed when their version changes (checked at most every TTL)."""

    def __init__(self, ttl_s: float = RULES_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._checked = 0.0
        self._version: tuple[Any, ...] | None = None
        self._rules: list[CompiledRule] = []
        self._builtin_id: int | None = None
        self._bind = ""
        self._memo: OrderedDict[tuple[Any, ...], Decision] = OrderedDict()

    def invalidate(self) -> None:
        with self._lock:
            self._checked = 0.0
            self._version = None

    def rules(self) -> list[CompiledRule]:
        now = time.monotonic()
        s = uow.session()
        bind = str(s.get_bind().engine.url)
        if now - self._checked < self.ttl_s and bind == self._bind:
            return self._rules
        version = tuple(
            s.execute(select(func.count(), func.max(RoutingRule.updated_at), func.max(RoutingRule.id))).one()
        )
        with self._lock:
            if version != self._version or bind != self._bind:
                enabled = select(RoutingRule).where(RoutingRule.enabled.is_(True))
                rows = s.execute(enabled.order_by(RoutingRule.priority, RoutingRule.id)).scalars()
                self._rules = [_compile(r) for r in rows]
                self._builtin_id = s.execute(
                    select(StorageTarget.id).where(StorageTarget.code == BUILTIN_TARGET_CODE)
                ).scalar()
                self._version = version
                self._bind = bind
                self._memo.clear()
            self._checked = now
        return self._rules

    def decision(self, key: tuple[Any, ...], x: Subject) -> Decision:
        found = self._memo.get(key)
        if found is None:
            found = decide(self._rules, x)
            with self._lock:
                self._memo[key] = found
                if len(self._memo) > _MEMO_SIZE:
                    self._memo.popitem(last=False)
        return found

    @property
    def builtin_id(self) -> int | None:
        return self._builtin_id


CACHE = RuleCache()


def apply_at_ingest(source: Source, meta: InstanceMeta, result: IngestResult) -> Decision | None:
    """The ingest hook (REQ: DCM-02, IMG-07): for a newly stored instance, queue its forward jobs and its placement
    on another storage target, in the caller's unit of work. Duplicates and conflicts are not routed again."""
    if result.outcome != STORED or result.instance_id is None:
        return None
    if not CACHE.rules():
        return None
    subject = Subject(
        node_id=source.node_id,
        institution_id=source.institution_id,
        modality=meta.modality,
        body_part=meta.body_part,
        sop_class_uid=meta.sop_class_uid,
        study_description=meta.study_description,
        series_description=meta.series_description,
    )
    key = (source.node_id, source.institution_id, meta.series_instance_uid, meta.sop_class_uid)
    decision = CACHE.decision(key, subject)
    if decision.empty:
        return decision
    for node_id, rule_id, policy in decision.forwards:
        forwarding.enqueue([result.instance_id], node_id, rule_id=rule_id, policy=policy)
    moves = decision.storage_target_id is not None and decision.storage_target_id != CACHE.builtin_id
    if moves or decision.storage_compression:
        uow.session().add(
            StoragePlacement(
                instance_id=result.instance_id,
                target_id=decision.storage_target_id or CACHE.builtin_id,
                compression=decision.storage_compression,
                attempts=0,
                next_attempt_at=utcnow(),
                last_error="",
            )
        )
    return decision


# -- rule administration -------------------------------------------------------------------------------------------
_LIST_FIELDS = ("node_ids", "institution_ids", "modalities", "body_parts", "sop_classes", "forward_node_ids")
_FIELDS = {
    "name",
    "priority",
    "enabled",
    "stop",
    "study_description_contains",
    "series_description_contains",
    "storage_target_id",
    "storage_compression",
    "forward_compression",
    *_LIST_FIELDS,
}


def _apply(rule: RoutingRule, changes: dict[str, Any]) -> None:
    s = uow.session()
    for name, value in changes.items():
        if name not in _FIELDS:
            raise ValidationFailed("invalid_field", f"不能设置字段 {name}")
        if name in _LIST_FIELDS:
            value = list(value or [])
            if name in ("modalities", "body_parts"):
                value = [str(v).strip().upper() for v in value if str(v).strip()]
            elif name == "sop_classes":
                value = [str(v).strip() for v in value if str(v).strip()]
            else:
                value = [int(v) for v in value]
        if name in ("storage_compression", "forward_compression"):
            value = value or ""
            if value and value not in compression.POLICIES:
                raise ValidationFailed("invalid_policy", f"未知的压缩策略：{value}")
        if name == "name" and not str(value or "").strip():
            raise ValidationFailed("invalid_name", "规则名称不能为空")
        setattr(rule, name, value)
    for node_id in set(rule.forward_node_ids or []) | set(rule.node_ids or []):
        if s.get(DicomNode, node_id) is None:
            raise ValidationFailed("invalid_node", f"节点 {node_id} 不存在")
    if rule.storage_target_id is not None and s.get(StorageTarget, rule.storage_target_id) is None:
        raise ValidationFailed("invalid_target", "存储目标不存在")
    rule.updated_at = utcnow()


def create_rule(actor: Actor, **fields: Any) -> RoutingRule:
    """Create a routing rule (REQ: DCM-02, IMG-03, IMG-07). Audited.

    Raises:
        ValidationFailed: unknown field, empty name, unknown node, target or compression policy.
    """
    s = uow.session()
    rule = RoutingRule(
        name="",
        priority=100,
        enabled=True,
        stop=False,
        study_description_contains="",
        series_description_contains="",
        storage_compression="",
        forward_compression="",
        **{f: [] for f in _LIST_FIELDS},
    )
    _apply(rule, fields)
    s.add(rule)
    s.flush()
    audit.record(actor, "routing_rule_changed", object_type="routing_rule", object_id=rule.id, details=_audit(fields))
    CACHE.invalidate()
    return rule


def update_rule(actor: Actor, rule_id: int, **changes: Any) -> RoutingRule:
    """Change a rule; every process sees it within RULES_TTL_S. Audited.

    Raises:
        NotFound: no such rule.
        ValidationFailed: as create_rule.
    """
    s = uow.session()
    rule = s.get(RoutingRule, rule_id)
    if rule is None:
        raise NotFound("rule_not_found", "路由规则不存在")
    _apply(rule, changes)
    s.flush()
    audit.record(actor, "routing_rule_changed", object_type="routing_rule", object_id=rule.id, details=_audit(changes))
    CACHE.invalidate()
    return rule


def delete_rule(actor: Actor, rule_id: int) -> None:
    """Delete a rule (queued jobs it created stay). Audited.

    Raises:
        NotFound: no such rule.
    """
    s = uow.session()
    if s.get(RoutingRule, rule_id) is None:
        raise NotFound("rule_not_found", "路由规则不存在")
    s.execute(delete(RoutingRule).where(RoutingRule.id == rule_id))
    audit.record(
        actor, "routing_rule_changed", object_type="routing_rule", object_id=rule_id, details={"deleted": True}
    )
    CACHE.invalidate()


def list_rules() -> list[RoutingRule]:
    return list(uow.session().execute(select(RoutingRule).order_by(RoutingRule.priority, RoutingRule.id)).scalars())


def _audit(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k in _FIELDS}
