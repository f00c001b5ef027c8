"""Where other engine packages plug into the case engine: the owners of some remote-diagnosis steps (the report
wing, engine/reports/review.py), what happens when a case is created, extra columns of the case rows.

The case engine never imports those packages (import-linter contract ``cases-not-reports`` in pyproject.toml):
they register here when they are imported, which the composition roots do once through engine/handlers.py (like the
service-task handlers of engine/workflow/service_tasks.py). Without a registration the case engine still runs: a
step nobody owns is completed with its form data alone and offered to its lane's role.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from engine.actor import Actor
from engine.cases.models import Case
from engine.workflow.models import HumanTask, ProcessDeployment
from engine.workflow.runner import Assignment, ReadyTask


@dataclass(frozen=True)
class StepOwner:
    """What a package does for the user tasks it owns (by BPMN task id).

    ``assign(case, ready, role)``: who may take the new READY task (``role`` is its lane's role code).
    ``complete(actor, case, deployment, task, data, lock_token)``: carry the completion out under the case lock
    (the form is already validated; the owner advances the workflow) and return the task's outcome; an owner that
    returns ``"rejected"`` logged the round in the case history itself.
    ``form(case, task)``: the prefilled form data and the object shown beside the form (a report), or None.
    """

    assign: Callable[[Case, ReadyTask, str], Assignment]
    complete: Callable[[Actor, Case, ProcessDeployment, HumanTask, dict[str, Any], int | None], str]
    form: Callable[[Case, HumanTask], tuple[dict[str, Any], Any]]


@dataclass(frozen=True)
class RowFields:
    """Columns another package adds to each case row (engine/cases/queries.py ``case_rows``): ``load(case_ids)``
    answers for the cases it knows, in one statement; the others get ``defaults``."""

    defaults: dict[str, Any]
    load: Callable[[list[int]], dict[int, dict[str, Any]]]


_STEPS: dict[str, StepOwner] = {}
_CASE_CREATED: dict[str, Callable[[Case], None]] = {}
_ROW_FIELDS: dict[str, RowFields] = {}


def _key(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def register_steps(names: Iterable[str], owner: StepOwner) -> None:
    """Hand the user tasks `names` to `owner`.

    Raises:
        ValueError: a step already has another owner (two packages must not both carry out one step).
    """
    for name in names:
        if _STEPS.get(name, owner) != owner:
            raise ValueError(f"step {name!r} already has an owner")
        _STEPS[name] = owner


def step_owner(name: str) -> StepOwner | None:
    return _STEPS.get(name)


def on_case_created(fn: Callable[[Case], None]) -> Callable[[Case], None]:
    """Decorator: call `fn(case)` when a case is created (flushed, before its process starts)."""
    _CASE_CREATED[_key(fn)] = fn
    return fn


def case_created(case: Case) -> None:
    for fn in _CASE_CREATED.values():
        fn(case)


def add_row_fields(name: str, fields: RowFields) -> None:
    _ROW_FIELDS[name] = fields


def row_fields(case_ids: list[int]) -> Callable[[int], dict[str, Any]]:
    """The registered columns of the rows of `case_ids`: one statement per registration, then a lookup per case."""
    loaded = [(f.defaults, f.load(case_ids) if case_ids else {}) for f in _ROW_FIELDS.values()]

    def of(case_id: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for defaults, found in loaded:
            out.update(found.get(case_id, defaults))
        return out

    return of
