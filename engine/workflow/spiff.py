"""Typed wrapper around SpiffWorkflow: parser, safe script engine, state-only serializer.

Nothing outside engine/workflow imports SpiffWorkflow; these few functions are its whole surface.

Facts measured on SpiffWorkflow 3.2.0 while writing this (tests/processes/test_remote_diagnosis.py):
- `task_spec.lane` is the lane's *name*, not its id; our lanes carry the role code as id and the Chinese role
  name as name, so assignment maps either to the role code.
- A decision table with hitPolicy UNIQUE returns the first matching row (it behaves as FIRST): order the rows
  and end with a catch-all. List cells need the `? in [...]` form.
- A drawn reject flow makes the engine predict a future instance of the target task; a 驳回 must reset to the
  target's last COMPLETED instance. Done that way, 200 rollbacks keep the state at ~5 KB and ~2 ms per step.
- The stock `call_service` refers to an undefined name on its error path (SafeScriptEngine overrides it), and
  the script engine is not serialised (`restore` sets it after every load).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn.script_engine.python_environment import (  # type: ignore[import-untyped]
    BasePythonScriptEngineEnvironment,
)
from SpiffWorkflow.bpmn.serializer.default.workflow import (  # type: ignore[import-untyped]
    BpmnWorkflowConverter,
    WorkflowConverter,
)
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn.specs.event_definitions.message import (  # type: ignore[import-untyped]
    MessageEventDefinition,
)
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn.util import BpmnEvent  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow  # type: ignore[import-untyped]
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser  # type: ignore[import-untyped]
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG  # type: ignore[import-untyped]
from SpiffWorkflow.task import Task as SpiffTask  # type: ignore[import-untyped]
from SpiffWorkflow.util.task import TaskState  # type: ignore[import-untyped]

from engine.workflow import expressions

ServiceCaller = Callable[[str, dict[str, Any], dict[str, Any]], Any]

__all__ = ["BpmnWorkflow", "CompiledSpec", "SpiffTask", "TaskState", "make_script_engine", "parse", "serializer"]


class SafeEnvironment(BasePythonScriptEngineEnvironment):  # type: ignore[misc]
    """Conditions, DMN cells and scripts through `engine.workflow.expressions`; services by registered name."""

    def __init__(self, call: ServiceCaller) -> None:
        super().__init__({})
        self._call = call

    def evaluate(self, expression: str, context: Mapping[str, Any], external_context: Any = None) -> Any:
        names = dict(context)
        if external_context:
            names.update(external_context)
        return expressions.evaluate(expression, names)

    def execute(self, script: str, context: dict[str, Any], external_context: Any = None) -> bool:
        expressions.execute(script, context)
        return True

    def call_service(self, context: dict[str, Any], **kwargs: Any) -> str:
        params = {k: v["value"] for k, v in (kwargs.get("operation_params") or {}).items()}
        return json.dumps(self._call(kwargs["operation_name"], params, context))


class SafeScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    def call_service(self, task: Any, **kwargs: Any) -> Any:
        # The stock method refers to an undefined `script` on its error path; let our errors through as-is.
        return self.environment.call_service(task.data, **kwargs)


def make_script_engine(call: ServiceCaller) -> SafeScriptEngine:
    return SafeScriptEngine(environment=SafeEnvironment(call))


def parse(bpmn: Mapping[str, str], dmn: Mapping[str, str], process_id: str) -> tuple[Any, dict[str, Any]]:
    """Parse BPMN and DMN texts; return (top spec, subprocess specs)."""
    from lxml import etree  # SpiffWorkflow's own dependency

    parser = SpiffBpmnParser()
    for name, text in bpmn.items():
        parser.add_bpmn_xml(etree.fromstring(text.encode()), filename=name)
    for name, text in dmn.items():
        parser.add_dmn_xml(etree.fromstring(text.encode()), filename=name)
    spec = parser.get_spec(process_id)
    subs = parser.get_subprocess_specs(process_id)
    return spec, subs


class StateOnlyWorkflowConverter(BpmnWorkflowConverter):  # type: ignore[misc]
    """The stock workflow converter without the spec: `to_dict` leaves it out (it is stored once per deployment)
    and `from_dict` takes the deployment's already restored spec objects. Converting the spec to dicts and back
    was most of a step's engine time (bench/bench_engine.py, cProfile): ~40 task specs rebuilt on every load,
    and converted on every save only to be dropped."""

    def to_dict(self, workflow: Any) -> dict[str, Any]:
        dct: dict[str, Any] = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any], spec: Any = None, subprocess_specs: Any = None) -> Any:
        if spec is None:  # a full document (spec included), as the stock converter reads it
            return super().from_dict(dct)
        dct.pop("spec", None)
        dct.pop("subprocess_specs", None)
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


_serializer: Any = None


def serializer() -> Any:
    global _serializer
    if _serializer is None:
        config = {**SPIFF_CONFIG, BpmnWorkflow: StateOnlyWorkflowConverter}
        _serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config))
    return _serializer


def spec_to_dict(spec: Any, subs: dict[str, Any]) -> dict[str, Any]:
    """The deployment's spec as JSON-able dicts, stored once per content hash."""
    reg = serializer().registry
    return {"spec": reg.convert(spec), "subprocess_specs": {k: reg.convert(v) for k, v in subs.items()}}


class CompiledSpec:
    """A deployment's spec restored to SpiffWorkflow objects once, shared by every workflow of that deployment.

    Task specs hold no per-instance state (a workflow's state lives in its tasks), so one set of spec objects
    serves any number of workflows and threads; `dict` keeps the stored JSON form."""

    def __init__(self, spec_dict: Mapping[str, Any]) -> None:
        reg = serializer().registry
        self.dict = spec_dict
        self.spec = reg.restore(_copy(spec_dict["spec"]))
        self.subprocess_specs = {k: reg.restore(_copy(v)) for k, v in spec_dict["subprocess_specs"].items()}


def compile_spec(spec: Mapping[str, Any] | CompiledSpec) -> CompiledSpec:
    return spec if isinstance(spec, CompiledSpec) else CompiledSpec(spec)


def state_to_dict(workflow: Any) -> dict[str, Any]:
    """State-only JSON: the spec is stored once per deployment, not per case."""
    dct: dict[str, Any] = serializer().to_dict(workflow)
    return dct


def _copy(value: Any) -> Any:
    """A deep copy of JSON data; a pickle round trip is about 4x faster than copy.deepcopy (bench_engine.py)."""
    return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))  # noqa: S301 — our own bytes, just made


def restore(spec: Mapping[str, Any] | CompiledSpec, state: Mapping[str, Any], engine: Any) -> Any:
    compiled = compile_spec(spec)
    dct = _copy(dict(state))  # the converters pop keys: never hand them the stored state itself
    wf = serializer().from_dict(dct, spec=compiled.spec, subprocess_specs=compiled.subprocess_specs)
    wf.script_engine = engine  # the script engine is not serialised: set it after every load
    return wf


def new_workflow(spec: Mapping[str, Any] | CompiledSpec, engine: Any) -> Any:
    compiled = compile_spec(spec)
    return BpmnWorkflow(compiled.spec, compiled.subprocess_specs, script_engine=engine)


def is_timer(task: Any) -> bool:
    definition = getattr(task.task_spec, "event_definition", None)
    return isinstance(definition, TimerEventDefinition)


def timer_due(event_value: Any) -> datetime:
    """The due time SpiffWorkflow stored for a waiting timer (ISO string, or a cycle's `next`)."""
    raw = event_value["next"] if isinstance(event_value, dict) else event_value
    return TimerEventDefinition.get_datetime(raw).astimezone(UTC)


def waiting_messages(wf: Any) -> dict[str, str]:
    """task id → message name of every WAITING message catch (intermediate catch event, receive task, boundary
    event). Read from the workflow's event manager, which holds exactly its waiting catching tasks — no walk of
    the task tree (this runs on every load and save, bench/bench_engine.py)."""
    out: dict[str, str] = {}
    for t in wf.event_manager.tasks.values():
        definition = getattr(t.task_spec, "event_definition", None)
        if isinstance(definition, MessageEventDefinition) and t.state == TaskState.WAITING:
            out[str(t.id)] = definition.name
    return out


def catch_message(wf: Any, name: str, payload: dict[str, Any]) -> int:
    """Deliver the message `name` with `payload` to every task of `wf` waiting for it; returns how many caught it
    (0: nothing waits, the workflow is unchanged). A catch with a ``messageVariable`` finds the payload there.

    The event is built from the waiting task's own definition: SpiffWorkflow matches an event by its definition's
    class and name, and the spiff parser makes its own MessageEventDefinition subclass."""
    waiting = [
        t
        for t in wf.event_manager.tasks.values()
        if t.state == TaskState.WAITING
        and isinstance(getattr(t.task_spec, "event_definition", None), MessageEventDefinition)
        and t.task_spec.event_definition.name == name
    ]
    if not waiting:
        return 0
    wf.send_event(BpmnEvent(waiting[0].task_spec.event_definition, payload=dict(payload)))
    return len(waiting)
