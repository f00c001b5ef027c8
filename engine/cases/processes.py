"""Process administration: validate and deploy an edited diagram, migrate running cases (WF-07)."""

from __future__ import annotations

from engine import audit, uow
from engine.actor import Actor
from engine.cases.services import assign, event, lock_case, mirror_status
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.visibility import get_migratable_case
from engine.workflow import runner, specs, spiff, state
from engine.workflow.models import ProcessDeployment


def validate_edit(process_id: str, bpmn_xml: str) -> list[dict[str, str]]:
    _, dmn = specs.read_files(process_id)
    bpmn = {f"{process_id}.bpmn": bpmn_xml}
    try:
        forms = specs.load_forms(process_id, specs.form_names(bpmn))
    except Exception as exc:  # noqa: BLE001 — a broken upload is a validation error, not a 500
        return [{"element": "bpmn", "message": f"BPMN 无法解析：{exc}"}]
    return specs.validate(process_id, bpmn, dmn, forms)


def _central_only(actor: Actor) -> None:
    """Case flows are alliance-wide: only the central hospital's 流程管理员 deploys or migrates (issue 11, AC-03)."""
    if not actor.is_central:
        raise Forbidden("central_only", "业务流程由中心医院的流程管理员统一发布和迁移")


def deploy_edit(actor: Actor, process_id: str, bpmn_xml: str) -> tuple[ProcessDeployment, bool]:
    """Deploy an edited diagram from the modeler (validated first, audited). Returns (deployment, created):
    an unchanged diagram is the existing version, not a new one."""
    _central_only(actor)
    if not (specs.PROCESSES_DIR / process_id).is_dir():
        raise ValidationFailed("unknown_process", "未知的流程")
    dep, created = specs.deploy(process_id, {f"{process_id}.bpmn": bpmn_xml}, source="ui", deployed_by_id=actor.user_id)
    audit.record(
        actor,
        "process_deployed",
        object_type="process_deployment",
        object_id=dep.id,
        details={"process_id": process_id, "version": dep.version, "new": created, "hash": dep.content_hash},
    )
    return dep, created


def migrate(actor: Actor, case_ids: list[int], deployment_id: int) -> int:
    """Move running cases to another deployment of the same process; each case is checked by restoring its
    state against the target spec before anything is written. Cases are taken through the visibility module:
    the running cases of the target's process (engine/visibility.py migratable_cases).

    Raises:
        Forbidden: not the central hospital. NotFound: unknown deployment, or a case id that is unknown, foreign
            (another process, closed) — the same answer. Conflict: a case cannot run on the target version.
    """
    _central_only(actor)
    s = uow.session()
    target = s.get(ProcessDeployment, deployment_id)
    if target is None:
        raise NotFound()
    moved = 0
    for cid in sorted(set(case_ids)):
        get_migratable_case(actor, target.process_id, cid)
        case = lock_case(cid)
        if case.status not in ("open", "incident"):
            raise Conflict("case_closed", f"申请 {case.case_no} 已结束，不能迁移")
        pi = case.process
        source = s.get(ProcessDeployment, pi.deployment_id)
        assert source is not None
        if source.process_id != target.process_id:
            raise Conflict("process_mismatch", "只能迁移到同一流程的其他版本")
        try:
            wf = spiff.restore(
                specs.spec_of(target.id, target.content_hash),
                state.upgrade(pi.state, pi.serializer_version),
                spiff.make_script_engine(lambda *_a: {}),
            )
        except Exception as exc:  # noqa: BLE001 — report which case cannot move
            raise Conflict("migration_failed", f"申请 {case.case_no} 的当前步骤在目标版本中不存在：{exc}") from exc
        pi.deployment_id = target.id
        uow.session().flush()
        uow.session().expire(pi, ["deployment_hash"])  # the column_property follows deployment_id
        runner.save(pi, wf, assign)
        mirror_status(case)
        event(case, actor, "migrated", None, from_version=source.version, to_version=target.version)
        moved += 1
    audit.record(
        actor,
        "cases_migrated",
        object_type="process_deployment",
        object_id=target.id,
        details={"cases": sorted(set(case_ids))},
    )
    return moved
