"""Deployments: parse and validate BPMN + DMN + forms, store each version once by content hash.

REQ: WF-07 (cases stay on the version they started with), WF-08 (no unsafe expression is ever deployed).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from lxml import etree
from sqlalchemy import func, select

from engine import uow
from engine.errors import ValidationFailed
from engine.workflow import expressions, service_tasks, spiff
from engine.workflow.models import ProcessDeployment

ROOT = Path(__file__).resolve().parents[2]
PROCESSES_DIR = ROOT / "processes"
FORMS_DIR = ROOT / "forms"
NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "spiff": "http://spiffworkflow.org/bpmn/schema/1.0/core",
    "dmn": "https://www.omg.org/spec/DMN/20191111/MODEL/",
}
FORM_PROPERTY = "formJsonSchemaFilename"
MAX_XML_BYTES = 2 * 1024 * 1024


def read_files(process_id: str) -> tuple[dict[str, str], dict[str, str]]:
    folder = PROCESSES_DIR / process_id
    bpmn = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.bpmn"))}
    dmn = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.dmn"))}
    return bpmn, dmn


def _parse_xml(text: str, name: str) -> Any:
    if len(text.encode()) > MAX_XML_BYTES:
        raise ValidationFailed("deploy_invalid", f"{name} 过大", {"errors": [{"element": name, "message": "文件过大"}]})
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    return etree.fromstring(text.encode(), parser=parser)


def form_names(bpmn: dict[str, str]) -> dict[str, str]:
    """user task id → form file name, from the spiff `formJsonSchemaFilename` property (resolved here only)."""
    out: dict[str, str] = {}
    for name, text in bpmn.items():
        root = _parse_xml(text, name)
        for task in root.iterfind(".//bpmn:userTask", NS):
            prop = task.find(f".//spiff:property[@name='{FORM_PROPERTY}']", NS)
            out[task.get("id")] = prop.get("value") if prop is not None else ""
    return out


def load_forms(process_id: str, names: dict[str, str]) -> dict[str, Any]:
    forms: dict[str, Any] = {}
    folder = FORMS_DIR / process_id
    for filename in sorted(set(names.values())):
        path = folder / filename
        if filename and path.is_file():
            ui = path.with_name(filename.replace(".schema.json", ".ui.json"))
            forms[filename] = {
                "schema": json.loads(path.read_text(encoding="utf-8")),
                "ui": json.loads(ui.read_text(encoding="utf-8")) if ui.is_file() else None,
            }
    return forms


def validate(process_id: str, bpmn: dict[str, str], dmn: dict[str, str], forms: dict[str, Any]) -> list[dict[str, str]]:
    """Every problem that would make the deployment unsafe or unusable; empty means deployable."""
    errors: list[dict[str, str]] = []
    try:
        names = form_names(bpmn)
    except (etree.XMLSyntaxError, ValidationFailed) as exc:
        return [{"element": "bpmn", "message": f"BPMN 无法解析：{exc}"}]
    for task_id, filename in names.items():
        if not filename:
            errors.append({"element": task_id, "message": "用户任务没有指定表单（formJsonSchemaFilename）"})
        elif filename not in forms:
            errors.append({"element": task_id, "message": f"表单 forms/{process_id}/{filename} 不存在"})
    for filename, form in forms.items():
        try:
            jsonschema.Draft202012Validator.check_schema(form["schema"])
        except jsonschema.SchemaError as exc:
            errors.append({"element": filename, "message": f"表单 JSON Schema 无效：{exc.message}"})
    for name, text in bpmn.items():
        root = _parse_xml(text, name)
        for node in root.iterfind(".//bpmn:conditionExpression", NS):
            _check(errors, node.getparent().get("id"), node.text or "", "eval")
        for tag in ("timeDuration", "timeDate", "timeCycle"):
            for node in root.iterfind(f".//bpmn:{tag}", NS):
                _check(errors, node.getparent().getparent().get("id"), node.text or "", "eval")
        for node in root.iterfind(".//bpmn:script", NS):
            _check(errors, node.getparent().get("id"), node.text or "", "exec")
        for node in root.iterfind(".//spiff:serviceTaskOperator", NS):
            op = node.get("id", "")
            if op not in service_tasks.registered():
                errors.append({"element": node.getparent().getparent().get("id"), "message": f"服务任务 {op} 未注册"})
            for param in node.iterfind(".//spiff:parameter", NS):
                _check(errors, op, param.get("value", ""), "eval")
    for name, text in dmn.items():
        try:
            root = _parse_xml(text, name)
        except etree.XMLSyntaxError as exc:
            errors.append({"element": name, "message": f"DMN 无法解析：{exc}"})
            continue
        for cell in root.iterfind(".//dmn:text", NS):
            raw = (cell.text or "").strip()
            if raw:
                owner = cell.getparent().get("id") or name
                expr = raw.replace("?", "dmninputexpr")
                if not expr.startswith("dmninputexpr") and _needs_operand(expr):
                    expr = "dmninputexpr " + expr
                _check(errors, owner, expr, "eval")
    if errors:
        return errors
    try:
        spiff.parse(bpmn, dmn, process_id)
    except Exception as exc:  # noqa: BLE001 — any parser failure is reported to the process admin
        errors.append({"element": process_id, "message": f"流程解析失败：{exc}"})
    return errors


def _needs_operand(expr: str) -> bool:
    try:
        expressions.check_expression(expr)
        return False
    except expressions.ExpressionError:
        return True


def _check(errors: list[dict[str, str]], element: str | None, text: str, mode: str) -> None:
    try:
        expressions.check_expression(text, mode=mode)
    except expressions.ExpressionError as exc:
        errors.append({"element": element or "?", "message": f"表达式不被允许：{exc}（{text.strip()[:80]}）"})


def content_hash(process_id: str, bpmn: dict[str, str], dmn: dict[str, str], forms: dict[str, Any]) -> str:
    blob = json.dumps({"p": process_id, "b": bpmn, "d": dmn, "f": forms}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def deploy(
    process_id: str,
    bpmn: dict[str, str],
    dmn: dict[str, str] | None = None,
    *,
    source: str = "files",
    deployed_by_id: int | None = None,
) -> tuple[ProcessDeployment, bool]:
    """Validate and store a deployment; an identical one (same hash) is returned as is. Returns (row, created).

    Raises:
        ValidationFailed: ``deploy_invalid`` with ``details.errors`` naming each element.
    """
    if dmn is None:
        dmn = read_files(process_id)[1]
    forms = load_forms(process_id, form_names(bpmn))
    errors = validate(process_id, bpmn, dmn, forms)
    if errors:
        raise ValidationFailed("deploy_invalid", "流程校验未通过", {"errors": errors})
    digest = content_hash(process_id, bpmn, dmn, forms)
    s = uow.session()
    existing = s.execute(select(ProcessDeployment).where(ProcessDeployment.content_hash == digest)).scalar()
    if existing is not None:
        return existing, False
    spec, subs = spiff.parse(bpmn, dmn, process_id)
    version = (
        s.execute(
            select(func.max(ProcessDeployment.version)).where(ProcessDeployment.process_id == process_id)
        ).scalar()
        or 0
    ) + 1
    row = ProcessDeployment(
        process_id=process_id,
        version=version,
        content_hash=digest,
        bpmn=bpmn,
        dmn=dmn,
        forms=forms,
        spec=spiff.spec_to_dict(spec, subs),
        source=source,
        deployed_by_id=deployed_by_id,
    )
    s.add(row)
    s.flush()
    return row, True


def deploy_from_files() -> list[ProcessDeployment]:
    """Deploy every process folder whose content hash is new (start-up and `telerad db upgrade`)."""
    out = []
    for folder in sorted(p for p in PROCESSES_DIR.iterdir() if p.is_dir()):
        bpmn, dmn = read_files(folder.name)
        if bpmn:
            out.append(deploy(folder.name, bpmn, dmn)[0])
    return out


def latest(process_id: str) -> ProcessDeployment:
    s = uow.session()
    row = s.execute(
        select(ProcessDeployment)
        .where(ProcessDeployment.process_id == process_id)
        .order_by(ProcessDeployment.version.desc())
        .limit(1)
    ).scalar()
    if row is None:
        row = deploy(process_id, *read_files(process_id))[0]
    return row


@lru_cache(maxsize=64)
def _spec_cache(deployment_id: int, digest: str) -> spiff.CompiledSpec:
    row = uow.session().get(ProcessDeployment, deployment_id)
    assert row is not None
    return spiff.CompiledSpec(row.spec)


def spec_of(deployment_id: int, digest: str) -> spiff.CompiledSpec:
    """A deployment's spec restored once and cached: a deployment never changes (its content hash is part of
    the key), and its spec objects are shared by all its workflows (spiff.CompiledSpec)."""
    return _spec_cache(deployment_id, digest)
