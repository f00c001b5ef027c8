"""The stored workflow state's format: STATE_VERSION and one migration function per older version (STYLE.md §4).

A process instance stores `serializer_version` next to its state. Loading state of an older version runs the
migration functions from that version up to STATE_VERSION, in order; each says in its docstring what changed.
Version history:

1. SpiffWorkflow 3.2's workflow dict without the spec (engine/workflow/spiff.py `state_to_dict`): what
   `remote_case.workflow_state` held before issue 14, moved as is to `process_instance.state` by migration 0009.

When the format changes: bump STATE_VERSION, add `@migration(previous_version)` for the step, and keep every
older step (a database may hold state of any earlier version).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.errors import Conflict

STATE_VERSION = 1

Migration = Callable[[dict[str, Any]], dict[str, Any]]

_MIGRATIONS: dict[int, Migration] = {}


def migration(from_version: int) -> Callable[[Migration], Migration]:
    """Register `fn(state) -> state` that turns state of `from_version` into state of `from_version + 1`."""

    def deco(fn: Migration) -> Migration:
        if from_version in _MIGRATIONS:
            raise ValueError(f"a migration from state version {from_version} is already registered")
        _MIGRATIONS[from_version] = fn
        return fn

    return deco


def upgrade(state: dict[str, Any], version: int, target: int = STATE_VERSION) -> dict[str, Any]:
    """State of `version` brought to `target` (the stored dict is never changed in place).

    Raises:
        Conflict: ``state_version_unknown`` — a version newer than this code knows, or a missing step.
    """
    if version == target:
        return state
    if version > target or version < 1:
        raise Conflict("state_version_unknown", f"流程状态的版本 {version} 无法识别")
    out = state
    for v in range(version, target):
        step = _MIGRATIONS.get(v)
        if step is None:
            raise Conflict("state_version_unknown", f"缺少流程状态从版本 {v} 升级的迁移")
        out = step(dict(out))
    return out
