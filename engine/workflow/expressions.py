"""Safe evaluation of gateway conditions, DMN cells and trivial script tasks (REQ: WF-08).

SpiffWorkflow's stock script engine is `eval`/`exec` with full builtins; restricting builtins does not stop
`().__class__.__base__.__subclasses__()`. Every expression here goes through `simpleeval`, which has no
builtins, refuses dunder attributes and bounds power/string sizes; scripts may only assign names.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

from simpleeval import EvalWithCompoundTypes, InvalidExpression

from engine.errors import ValidationFailed

SAFE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "min": min,
    "max": max,
    "abs": abs,
    "round": round,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "any": any,
    "all": all,
    "sorted": sorted,
    "sum": sum,
}

_FORBIDDEN_NODES = (
    ast.Lambda,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.Await,
    ast.Yield,
    ast.YieldFrom,
    ast.NamedExpr,
    ast.Starred,
)


class ExpressionError(Exception):
    """An expression or script that is not allowed or failed to evaluate."""


def check_expression(expression: str, *, mode: str = "eval") -> None:
    """Static check used at deploy time: the text parses and uses no dunder, lambda or comprehension.

    Raises:
        ExpressionError: the expression is not allowed (names why).
    """
    try:
        tree = ast.parse(expression.strip(), mode=mode)
    except SyntaxError as exc:
        raise ExpressionError(f"语法错误: {exc.msg}") from exc
    for node in ast.walk(tree):
        if isinstance(node, _FORBIDDEN_NODES):
            raise ExpressionError(f"不允许的语法: {type(node).__name__}")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExpressionError(f"不允许访问下划线属性: {node.attr}")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise ExpressionError(f"不允许的名称: {node.id}")
        if isinstance(node, ast.Call):
            func = node.func
            if not (isinstance(func, ast.Name) and func.id in SAFE_FUNCTIONS):
                raise ExpressionError("只允许调用 " + ", ".join(sorted(SAFE_FUNCTIONS)))
        if mode == "exec" and isinstance(node, ast.stmt) and not isinstance(node, (ast.Assign, ast.Expr)):
            raise ExpressionError(f"脚本只允许赋值语句，发现 {type(node).__name__}")
    if mode == "exec":
        for stmt in tree.body:  # type: ignore[attr-defined]
            if isinstance(stmt, ast.Assign) and not all(isinstance(t, ast.Name) for t in stmt.targets):
                raise ExpressionError("脚本只能给变量赋值")


def evaluate(expression: str, names: Mapping[str, Any]) -> Any:
    """Evaluate one expression over `names` (task data) with no builtins beyond SAFE_FUNCTIONS.

    Raises:
        ExpressionError: not allowed, or failed.
    """
    check_expression(expression)
    evaluator = EvalWithCompoundTypes(names=dict(names), functions=dict(SAFE_FUNCTIONS))
    try:
        return evaluator.eval(expression.strip())
    except (InvalidExpression, Exception) as exc:  # noqa: BLE001 — any failure is the expression's fault
        raise ExpressionError(f"表达式求值失败 {expression!r}: {exc}") from exc


def execute(script: str, data: dict[str, Any]) -> None:
    """Run a script task: only `name = expression` lines, evaluated safely, written into `data`."""
    check_expression(script, mode="exec")
    tree = ast.parse(script.strip(), mode="exec")
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            value = evaluate(ast.unparse(stmt.value), data)
            for target in stmt.targets:
                data[target.id] = value  # type: ignore[attr-defined]
        elif isinstance(stmt, ast.Expr):
            evaluate(ast.unparse(stmt.value), data)


def validate_or_raise(expression: str, where: str, *, mode: str = "eval") -> None:
    """Deploy-time check that maps to a DomainError naming the element."""
    try:
        check_expression(expression, mode=mode)
    except ExpressionError as exc:
        raise ValidationFailed(
            "unsafe_expression", f"{where} 的表达式不被允许：{exc}", {"element": where, "expression": expression[:200]}
        ) from exc
