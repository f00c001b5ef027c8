"""The registry of notification kinds: code, Chinese name, default severity, who may see it, delivery channels.

The issues that raise a kind register it here (issue 14): the clinical ones (危急值, 临床资料不全, images awaited,
overdue) are registered now without triggers, so their names and audiences are decided in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.accounts.permissions import CATALOGUE
from engine.actor import Actor

SEVERITIES: dict[str, str] = {"info": "提示", "warning": "提醒", "critical": "紧急"}

# Delivery channels beyond the app (engine/notifications/delivery.py); the names are shown to administrators.
CHANNELS: dict[str, str] = {"sms": "短信", "phone": "电话"}


@dataclass(frozen=True)
class Kind:
    """One kind of notification.

    `audience`: the permissions a reader's session must hold one of to see notifications of this kind, on top of
    being addressed (a user who lost the function no longer sees them); empty means every addressee.
    `channels`: delivery beyond the app after the causing transaction commits.
    """

    code: str
    name: str
    severity: str
    audience: frozenset[str] = frozenset()
    channels: tuple[str, ...] = ()

    def visible_to(self, actor: Actor) -> bool:
        return not self.audience or bool(self.audience & actor.permissions)


_KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Register a kind (once; a second registration with other values is a programming error).

    Raises:
        ValueError: an unknown severity or channel, or a code registered twice with different values.
    """
    if kind.severity not in SEVERITIES:
        raise ValueError(f"unknown severity {kind.severity!r}")
    if unknown := set(kind.channels) - set(CHANNELS):
        raise ValueError(f"unknown delivery channels {sorted(unknown)}")
    old = _KINDS.get(kind.code)
    if old is not None and old != kind:
        raise ValueError(f"notification kind {kind.code!r} registered twice")
    _KINDS[kind.code] = kind
    return kind


def get(code: str) -> Kind:
    """The registered kind.

    Raises:
        KeyError: not registered.
    """
    return _KINDS[code]


def all_kinds() -> list[Kind]:
    return list(_KINDS.values())


def visible_codes(actor: Actor) -> list[str]:
    """The kinds `actor`'s session may see (sorted, for a stable IN list)."""
    return sorted(k.code for k in _KINDS.values() if k.visible_to(actor))


# Security alerts go to the 安全管理员: any permission of the sec domain (三权分立: the 安全管理员 handles security
# events; the 审计管理员 reviews the log itself, where every alert already is).
_SEC_DOMAIN = frozenset(p.code for p in CATALOGUE if p.domain == "sec")
_CLINICAL = frozenset({"case.read", "task.read"})

SECURITY_ALERT = register(Kind("security_alert", "安全告警", "critical", _SEC_DOMAIN, channels=("sms",)))
REPORT_RELEASED = register(Kind("report_released", "报告已发布", "info", frozenset({"case.read"})))
# Registered for the clinical issues (诊断端 part 2, registration, report editor); they add the triggers.
CRITICAL_RESULT = register(Kind("critical_result", "危急值", "critical", _CLINICAL, channels=("sms", "phone")))
CLINICAL_INFO_INCOMPLETE = register(Kind("clinical_info_incomplete", "临床资料不全", "warning", _CLINICAL))
IMAGES_AWAITED = register(Kind("images_awaited", "等待影像", "info", _CLINICAL))
# 补传影像 (engine/cases/clinical_queries.py): the images a doctor asked for arrived (issue 14, events out of ingest).
IMAGES_ARRIVED = register(Kind("images_arrived", "影像已到达", "info", _CLINICAL))
# overdue: raised today by an unanswered 临床资料补充 (engine/cases/clinical_queries.py, its due timer).
OVERDUE = register(Kind("overdue", "超时提醒", "warning", _CLINICAL))
