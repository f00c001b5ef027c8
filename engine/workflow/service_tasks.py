"""Registry of service-task handlers: BPMN operation name → Python function (ARCHITECTURE.md "Script safety")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any] | None]

_HANDLERS: dict[str, Handler] = {}


class ServiceTaskError(Exception):
    """A handler failed; the case becomes an incident until retried."""


def register(name: str) -> Callable[[Handler], Handler]:
    """Register `fn(params, task_data) -> dict | None` under the BPMN operation `name`."""

    def deco(fn: Handler) -> Handler:
        _HANDLERS[name] = fn
        return fn

    return deco


def registered() -> frozenset[str]:
    return frozenset(_HANDLERS)


def call(name: str, params: dict[str, Any], task_data: dict[str, Any]) -> dict[str, Any]:
    """Run the handler registered as `name`.

    Raises:
        ServiceTaskError: unknown operation, or the handler failed.
    """
    fn = _HANDLERS.get(name)
    if fn is None:
        raise ServiceTaskError(f"未注册的服务任务 {name}")
    try:
        return fn(params, task_data) or {}
    except ServiceTaskError:
        raise
    except Exception as exc:  # noqa: BLE001 — any handler failure becomes an incident with its message
        raise ServiceTaskError(f"{name}: {exc}") from exc
