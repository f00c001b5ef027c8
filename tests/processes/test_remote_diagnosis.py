"""Walk processes/remote_diagnosis without a database, saving and restoring the state between every step.

REQ: DISP-01/02 (DMN dispatch rows), RPT-10/11 (three levels, rollback by reset), WF-08 (safe expressions).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.workflow import expressions, spiff

ROOT = Path(__file__).resolve().parents[2] / "processes" / "remote_diagnosis"
CASE = {
    "emergency": False,
    "requesting_institution": "M01",
    "modality": "DX",
    "body_part": "胸部",
    "case_id": 7,
    "configured_mode": "",
    "configured_group": "",
    "configured_user": 0,
    "tat_due": "2099-01-01T00:00:00+00:00",  # engine/cases/turnaround.py: the 报告时限 timer's due time
}


@pytest.fixture(scope="module")
def spec_dict() -> dict[str, Any]:
    spec, subs = spiff.parse(
        {"remote_diagnosis.bpmn": (ROOT / "remote_diagnosis.bpmn").read_text()},
        {"dispatch_rules.dmn": (ROOT / "dispatch_rules.dmn").read_text()},
        "remote_diagnosis",
    )
    return json.loads(json.dumps(spiff.spec_to_dict(spec, subs)))  # as stored: plain JSON


class Walk:
    """A case's workflow with a service-call log; every step ends with save → JSON → load."""

    def __init__(self, spec_dict: dict[str, Any], **data: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.engine = spiff.make_script_engine(lambda op, params, ctx: self.calls.append((op, params)) or {"ok": 1})
        self.spec = spec_dict
        self.wf = spiff.new_workflow(spec_dict, self.engine)
        for t in self.wf.get_tasks(state=spiff.TaskState.READY):
            t.data.update({**CASE, **data})
        self.wf.do_engine_steps()
        self.roundtrip()

    def roundtrip(self) -> int:
        blob = json.dumps(spiff.state_to_dict(self.wf))
        self.wf = spiff.restore(self.spec, json.loads(blob), self.engine)
        return len(blob)

    def ready(self) -> list[str]:
        return [t.task_spec.name for t in self.wf.get_tasks(state=spiff.TaskState.READY)]

    def complete(self, name: str, **data: Any) -> None:
        (task,) = [t for t in self.wf.get_tasks(state=spiff.TaskState.READY) if t.task_spec.name == name]
        task.data.update(data)
        task.run()
        self.wf.do_engine_steps()
        self.roundtrip()

    def reject_to(self, target: str) -> None:
        """How the runner carries out a 驳回: reset to the target's last completed instance (tree stays small)."""
        done = self.wf.get_tasks(spec_name=target, state=spiff.TaskState.COMPLETED)
        self.wf.reset_from_task_id(done[-1].id)
        self.wf.do_engine_steps()
        self.roundtrip()


@pytest.mark.parametrize(
    ("data", "mode", "group", "first"),
    [
        ({"emergency": True}, "directed", "emergency_team", "draft_report"),
        ({"modality": "CT", "body_part": "头颅"}, "rule", "neuro_group", "draft_report"),
        ({"modality": "MR", "body_part": "头颅"}, "rule", "neuro_group", "draft_report"),
        ({"requesting_institution": "M05"}, "manual", "", "assign_case"),
        ({"modality": "CT", "body_part": "胸部"}, "pool", "", "draft_report"),
        (
            {"configured_mode": "directed", "configured_group": "chest_team", "emergency": True},
            "directed",
            "chest_team",
            "draft_report",
        ),
        ({"configured_mode": "manual", "modality": "CT", "body_part": "头颅"}, "manual", "", "assign_case"),
    ],
    ids=["emergency", "neuro_ct", "neuro_mr", "manual_m05", "pool", "configured_directed", "configured_manual"],
)
def test_dmn_rows_choose_the_dispatch_mode(spec_dict, data, mode, group, first) -> None:  # type: ignore[no-untyped-def]
    w = Walk(spec_dict, **data)
    assert w.ready() == [first]
    task = w.wf.get_tasks(state=spiff.TaskState.READY)[0]
    assert (task.data["dispatch_mode"], task.data["target_group"]) == (mode, group)


def test_happy_path_three_levels_then_publish(spec_dict) -> None:  # type: ignore[no-untyped-def]
    w = Walk(spec_dict)
    assert w.ready() == ["draft_report"]
    w.complete("draft_report")
    assert w.ready() == ["report_level2"]
    w.complete("report_level2", decision="approve")
    assert w.ready() == ["review_level3"]
    w.complete("review_level3", decision="approve")
    assert w.ready() == []
    assert w.wf.completed
    assert w.calls == [("reports.publish", {"case_id": 7})]


def test_manual_dispatch_goes_through_the_dispatcher(spec_dict) -> None:  # type: ignore[no-untyped-def]
    w = Walk(spec_dict, requesting_institution="M05")
    w.complete("assign_case", assignee_id=42)
    assert w.ready() == ["draft_report"]


def test_each_level_rolls_back_to_the_level_before(spec_dict) -> None:  # type: ignore[no-untyped-def]
    w = Walk(spec_dict)
    w.complete("draft_report")
    w.reject_to("draft_report")  # 报告医生 驳回
    assert w.ready() == ["draft_report"]
    w.complete("draft_report")
    w.complete("report_level2", decision="approve")
    w.reject_to("report_level2")  # 审核医生 驳回
    assert w.ready() == ["report_level2"]
    w.complete("report_level2", decision="approve")
    w.complete("review_level3", decision="approve")
    assert w.wf.completed
    assert len(w.calls) == 1


def test_200_rollbacks_keep_state_and_tree_flat(spec_dict) -> None:  # type: ignore[no-untyped-def]
    w = Walk(spec_dict)
    sizes, tree = [], []
    for _ in range(200):
        w.complete("draft_report")
        w.reject_to("draft_report")
        sizes.append(w.roundtrip())
        tree.append(len(w.wf.tasks))
    assert max(sizes) - min(sizes) < 64  # bytes: only counters/timestamps vary
    assert max(tree) == min(tree)
    assert w.ready() == ["draft_report"]


def test_drawn_reject_flows_exist_in_the_diagram(spec_dict) -> None:  # type: ignore[no-untyped-def]
    text = (ROOT / "remote_diagnosis.bpmn").read_text()
    assert 'id="f_l2_reject" name="驳回" sourceRef="gw_l2" targetRef="draft_report"' in text
    assert 'id="f_l3_reject" name="驳回" sourceRef="gw_l3" targetRef="report_level2"' in text
    assert "bpmndi:BPMNDiagram" in text  # opens in bpmn.io / Camunda Modeler


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os').system('id')",
        "().__class__.__base__.__subclasses__()",
        "open('/etc/passwd').read()",
        "(lambda: 1)()",
        "[x for x in range(10**9)]",
        "decision.__class__",
    ],
)
def test_wf08_unsafe_conditions_are_refused(expr: str) -> None:
    with pytest.raises(expressions.ExpressionError):
        expressions.check_expression(expr)
    with pytest.raises(expressions.ExpressionError):
        expressions.evaluate(expr, {"decision": "approve"})


def test_wf08_scripts_may_only_assign() -> None:
    data: dict[str, Any] = {"a": 2}
    expressions.execute('b = a * 3\nlabel = "急诊" if a > 1 else "普通"', data)
    assert data == {"a": 2, "b": 6, "label": "急诊"}
    for bad in ("import os", "def f():\n    pass", "a.__dict__['x'] = 1", "del a"):
        with pytest.raises(expressions.ExpressionError):
            expressions.execute(bad, {"a": 1})


def test_wf08_a_deployed_condition_with_import_fails_at_run_time_too(spec_dict) -> None:  # type: ignore[no-untyped-def]
    w = Walk(spec_dict)
    w.complete("draft_report")
    task = w.wf.get_tasks(state=spiff.TaskState.READY)[0]
    with pytest.raises(Exception) as info:  # noqa: PT011 — SpiffWorkflow wraps our error; check the chain
        w.engine.evaluate(task, "__import__('os').getcwd()")
    chain, exc = [], info.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert any(isinstance(e, expressions.ExpressionError) for e in chain), chain
