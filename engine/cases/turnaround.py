"""Report turnaround limits (报告时限): a rule table per requesting hospital × modality × body part × priority ×
patient class, the due time of a case, and the working-hours calendar (REQ: REC-01; UX.md R3).

The case's due time is fixed when the case is created (engine/cases/services.py create_case): the worklists'
countdown and the BPMN timer of the remote-diagnosis process (`sla_timer`, a timeDate reading `tat_due`) both read
that one value, so what the doctor sees counting down is what escalates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine import audit, uow
from engine.accounts.models import Institution
from engine.actor import Actor
from engine.cases.models import TurnaroundRule
from engine.db import utcnow
from engine.errors import Conflict, NotFound, ValidationFailed

LOCAL_TZ = ZoneInfo("Asia/Shanghai")

# The working day of a "working hours" limit (门诊/住院 CT/MR 4 or 6 working hours, UX.md R3): Monday to Friday,
# 08:00–12:00 and 13:30–17:30 local time. Public holidays (调休) are not modelled: a rule over a holiday counts it
# as a working day, which errs on the short side.
WORKING_PERIODS: tuple[tuple[time, time], ...] = ((time(8, 0), time(12, 0)), (time(13, 30), time(17, 30)))
WORKING_WEEKDAYS = frozenset(range(5))

PRIORITIES = {"emergency": "急诊", "routine": "普通"}
PATIENT_CLASSES = {"outpatient": "门诊", "inpatient": "住院"}
XRAY_MODALITIES = ("DR", "CR", "DX", "RF", "MG")

# Used when no rule matches (an empty table, or a modality no rule names): UX.md R3's 复杂 24 h.
FALLBACK_MINUTES = 24 * 60


@dataclass(frozen=True)
class DefaultRule:
    name: str
    priority: str | None
    modality: str | None = None
    body_part_keyword: str | None = None
    patient_class: str | None = None
    limit_minutes: int = FALLBACK_MINUTES
    working_hours: bool = False


def default_rules() -> list[DefaultRule]:
    """UX.md R3's defaults, one row per modality code (X线 covers DR/CR/DX/RF/MG)."""
    rules: list[DefaultRule] = []
    for m in XRAY_MODALITIES:
        rules.append(DefaultRule(f"急诊 X线（{m}）", "emergency", m, limit_minutes=30))
        rules.append(DefaultRule(f"普通 X线（{m}）", "routine", m, limit_minutes=120))
    for m in ("CT", "MR"):
        rules.append(DefaultRule(f"急诊 {m}", "emergency", m, limit_minutes=60))
        rules.append(DefaultRule(f"急诊 {m} 头颅", "emergency", m, body_part_keyword="头", limit_minutes=30))
        rules.append(DefaultRule(f"普通 {m}（门诊）", "routine", m, limit_minutes=240, working_hours=True))
        inpatient = DefaultRule(f"普通 {m}（住院）", "routine", m, patient_class="inpatient", limit_minutes=360)
        rules.append(replace(inpatient, working_hours=True))
    rules.append(DefaultRule("其他检查（复杂）", None, limit_minutes=FALLBACK_MINUTES))
    return rules


@dataclass(frozen=True)
class Limit:
    """The limit that applies to a case: the rule's id (None: the fallback) and its terms."""

    rule_id: int | None
    name: str
    limit_minutes: int
    working_hours: bool


def _specificity(r: TurnaroundRule) -> tuple[int, int]:
    """More criteria named = more specific; among equally specific rules the shorter limit wins (the safe side)."""
    named = sum(v is not None for v in (r.institution_id, r.modality, r.body_part_keyword, r.priority, r.patient_class))
    return named, -r.limit_minutes


def matches(
    r: TurnaroundRule,
    *,
    institution_id: int,
    modality: str,
    body_part: str,
    emergency: bool,
    patient_class: str | None,
) -> bool:
    return (
        (r.institution_id is None or r.institution_id == institution_id)
        and (r.modality is None or r.modality == modality)
        and (not r.body_part_keyword or r.body_part_keyword in body_part)
        and (r.priority is None or r.priority == ("emergency" if emergency else "routine"))
        and (r.patient_class is None or r.patient_class == patient_class)
    )


def pick(
    rules: Iterable[TurnaroundRule],
    *,
    institution_id: int,
    modality: str,
    body_part: str,
    emergency: bool,
    patient_class: str | None = None,
) -> Limit:
    """The most specific enabled rule matching the case, or the 24-hour fallback."""
    found = [
        r
        for r in rules
        if r.enabled
        and matches(
            r,
            institution_id=institution_id,
            modality=modality,
            body_part=body_part,
            emergency=emergency,
            patient_class=patient_class,
        )
    ]
    if not found:
        return Limit(None, "默认时限", FALLBACK_MINUTES, False)
    best = max(found, key=_specificity)
    return Limit(best.id, best.name, best.limit_minutes, best.working_hours)


def add_working_minutes(start: datetime, minutes: int) -> datetime:
    """`start` plus `minutes` of working time (WORKING_PERIODS on WORKING_WEEKDAYS, local time); a start outside
    working time counts from the next working period's beginning. Returned in UTC."""
    local = start.astimezone(LOCAL_TZ)
    left = timedelta(minutes=minutes)
    day = local.date()
    for _ in range(3660):  # ten years of days: a limit is hours, never that long
        if day.weekday() in WORKING_WEEKDAYS:
            for begin, end in WORKING_PERIODS:
                p_begin = datetime.combine(day, begin, LOCAL_TZ)
                p_end = datetime.combine(day, end, LOCAL_TZ)
                if p_end <= local:
                    continue
                cursor = max(p_begin, local)
                room = p_end - cursor
                if left <= room:
                    return (cursor + left).astimezone(UTC)
                left -= room
        day += timedelta(days=1)
    raise ValueError("working-hours limit out of range")


def due_at(start: datetime, limit: Limit) -> datetime:
    if limit.working_hours:
        return add_working_minutes(start, limit.limit_minutes)
    return (start + timedelta(minutes=limit.limit_minutes)).astimezone(UTC)


def case_limit(
    institution_id: int, exams: list[tuple[str, str]], emergency: bool, start: datetime
) -> tuple[int, datetime]:
    """(limit minutes, due time) of a case of several exams (modality, body part): its most urgent exam's."""
    rules = list(uow.session().execute(select(TurnaroundRule).where(TurnaroundRule.enabled.is_(True))).scalars())
    dues = []
    for modality, body_part in exams:
        limit = pick(rules, institution_id=institution_id, modality=modality, body_part=body_part, emergency=emergency)
        dues.append((due_at(start, limit), limit.limit_minutes))
    due, minutes = min(dues)
    return minutes, due


def seed_defaults() -> int:
    """Insert UX.md R3's default rules when the table is empty; returns how many were added. Called by the
    migration that makes the table (so an upgraded install starts with them) and by `telerad demo`; never on
    start-up, so a table an administrator emptied on purpose stays empty (the 24-hour fallback then applies)."""
    s = uow.session()
    if s.execute(select(TurnaroundRule.id).limit(1)).first() is not None:
        return 0
    rows = [
        TurnaroundRule(
            name=d.name,
            priority=d.priority,
            modality=d.modality,
            body_part_keyword=d.body_part_keyword,
            patient_class=d.patient_class,
            limit_minutes=d.limit_minutes,
            working_hours=d.working_hours,
        )
        for d in default_rules()
    ]
    s.add_all(rows)
    s.flush()
    return len(rows)


# --- administration (报告时限规则; permission tat.manage) ----------------------------------------------------------
EDITABLE = (
    "name",
    "institution_id",
    "modality",
    "body_part_keyword",
    "priority",
    "patient_class",
    "limit_minutes",
    "working_hours",
    "enabled",
)
MAX_LIMIT_MINUTES = 30 * 24 * 60


def _bad(field: str, message: str) -> ValidationFailed:
    return ValidationFailed("invalid_turnaround_rule", message, {"fields": {field: [message]}})


def _apply(rule: TurnaroundRule, fields: dict[str, Any]) -> None:
    s = uow.session()
    for name, value in fields.items():
        if name not in EDITABLE:
            raise _bad(name, f"未知字段：{name}")
        if isinstance(value, str):
            value = value.strip() or None
        setattr(rule, name, value)
    if not rule.name:
        raise _bad("name", "规则名称不能为空")
    if rule.priority is not None and rule.priority not in PRIORITIES:
        raise _bad("priority", "优先级只能是急诊或普通")
    if rule.patient_class is not None and rule.patient_class not in PATIENT_CLASSES:
        raise _bad("patient_class", "病人类别只能是门诊或住院")
    if not isinstance(rule.limit_minutes, int) or not 1 <= rule.limit_minutes <= MAX_LIMIT_MINUTES:
        raise _bad("limit_minutes", "时限须在 1 分钟到 30 天之间")
    if rule.institution_id is not None and s.get(Institution, rule.institution_id) is None:
        raise _bad("institution_id", "申请医院不存在")
    rule.updated_at = utcnow()


def create_rule(actor: Actor, fields: dict[str, Any]) -> TurnaroundRule:
    """A new rule; it applies to cases created from now on (a case keeps the limit it was created with). Audited.

    Raises:
        ValidationFailed: ``invalid_turnaround_rule`` with the field at fault.
    """
    rule = TurnaroundRule(working_hours=False, enabled=True, version=1, limit_minutes=0, name="")
    _apply(rule, fields)
    s = uow.session()
    s.add(rule)
    s.flush()
    audit.record(actor, "turnaround_rule_changed", object_type="turnaround_rule", object_id=rule.id, details=fields)
    return rule


def update_rule(actor: Actor, rule_id: int, version: int, fields: dict[str, Any]) -> TurnaroundRule:
    """Change a rule seen at `version`. Audited.

    Raises:
        NotFound: no such rule. Conflict: ``stale_version`` (someone changed it meanwhile).
        ValidationFailed: as create_rule.
    """
    rule = uow.session().get(TurnaroundRule, rule_id)
    if rule is None:
        raise NotFound("turnaround_rule_not_found", "时限规则不存在")
    if rule.version != version:
        raise Conflict("stale_version", "该规则已被他人修改，请刷新后重试")
    _apply(rule, fields)
    rule.version += 1
    audit.record(actor, "turnaround_rule_changed", object_type="turnaround_rule", object_id=rule.id, details=fields)
    return rule


def delete_rule(actor: Actor, rule_id: int) -> None:
    """Remove a rule (cases keep their due times). Audited.

    Raises:
        NotFound: no such rule.
    """
    s = uow.session()
    rule = s.get(TurnaroundRule, rule_id)
    if rule is None:
        raise NotFound("turnaround_rule_not_found", "时限规则不存在")
    s.delete(rule)
    audit.record(
        actor, "turnaround_rule_changed", object_type="turnaround_rule", object_id=rule_id, details={"deleted": True}
    )


def list_rules() -> list[TurnaroundRule]:
    rows = uow.session().execute(select(TurnaroundRule)).unique().scalars()
    # The table reads in the order the rules are picked: the most specific first.
    return sorted(rows, key=lambda r: (_specificity(r), r.id), reverse=True)
