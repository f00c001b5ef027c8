"""The stored workflow state's version and its migration chain (engine/workflow/state.py, issue 14)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import Conflict
from engine.workflow import state


def test_current_version_state_is_returned_as_is() -> None:
    stored: dict[str, Any] = {"tasks": {}, "root": "x"}
    assert state.upgrade(stored, state.STATE_VERSION) is stored


def test_older_state_runs_every_step_in_order_without_touching_the_stored_dict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps: dict[int, Any] = {}
    monkeypatch.setattr(state, "_MIGRATIONS", steps)

    @state.migration(1)
    def add_marker(s: dict[str, Any]) -> dict[str, Any]:
        """v1 → v2: a marker."""
        s["v2"] = True
        return s

    @state.migration(2)
    def rename(s: dict[str, Any]) -> dict[str, Any]:
        """v2 → v3: needs v2's marker."""
        s["v3"] = s.pop("v2")
        return s

    stored = {"tasks": {}}
    assert state.upgrade(stored, 1, target=3) == {"tasks": {}, "v3": True}
    assert stored == {"tasks": {}}  # the row's own value is never changed in place
    assert state.upgrade({"tasks": {}, "v2": True}, 2, target=3) == {"tasks": {}, "v3": True}
    with pytest.raises(ValueError, match="already registered"):
        state.migration(1)(add_marker)


@pytest.mark.parametrize("version", [0, state.STATE_VERSION + 1])
def test_unknown_versions_are_refused(version: int) -> None:
    with pytest.raises(Conflict) as err:
        state.upgrade({}, version)
    assert err.value.code == "state_version_unknown"


def test_a_missing_step_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "_MIGRATIONS", {})
    with pytest.raises(Conflict) as err:
        state.upgrade({}, 1, target=2)
    assert err.value.code == "state_version_unknown"
