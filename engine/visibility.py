"""Who sees what: the one place every query of a scoped object goes through (REQ: AC-02, DICT-03).

Anything outside the caller's visibility answers 404 and writes a security-alert audit event.
Central-hospital staff with the right function see every institution's objects of that kind;
staff of a member hospital see their own institution's only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, Select, and_, exists, false, or_, select, true, tuple_
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import False_, True_

from engine import audit, uow
from engine.accounts.models import Institution, Role, User
from engine.actor import Actor
from engine.attachments.models import Attachment
from engine.audit import AuditEvent
from engine.cases.models import Case, CaseEvent, Exam, Patient, WorkGroup, WorkGroupMember
from engine.errors import NotFound
from engine.imaging.exam_models import UnmatchedStudy
from engine.imaging.models import DicomNode, Instance, InstanceConflict, Study
from engine.imaging.routing_models import ForwardJob
from engine.workflow.models import HumanTask, ProcessInstance


class _Identified(Protocol):
    id: Any  # every model loaded through get_visible has an integer primary key `id`


T = TypeVar("T", bound=_Identified)

_RULES: dict[type, Callable[[Actor], ColumnElement[bool]]] = {}


def rule(model: type) -> Callable[[Callable[[Actor], ColumnElement[bool]]], Callable[[Actor], ColumnElement[bool]]]:
    """Register the visibility clause of a model; later domains add theirs here."""

    def deco(fn: Callable[[Actor], ColumnElement[bool]]) -> Callable[[Actor], ColumnElement[bool]]:
        _RULES[model] = fn
        return fn

    return deco


def clause(actor: Actor, model: type) -> ColumnElement[bool]:
    """The WHERE clause limiting `model` to what `actor` may see. Unknown models see nothing."""
    fn = _RULES.get(model)
    if fn is None:
        return false()
    if actor.user_id is None:  # no user: an OAuth client of an institution sees only what _CLIENT_RULES give it
        client_rule = _CLIENT_RULES.get(model) if actor.client_id else None
        return client_rule(actor) if client_rule is not None else false()
    return fn(actor)


def scoped(actor: Actor, model: type[T], stmt: Select[Any] | None = None) -> Select[Any]:
    """`select(model)` (or `stmt`) limited to the actor's visibility."""
    base = stmt if stmt is not None else select(model)
    return base.where(clause(actor, model))


def get_visible(actor: Actor, model: type[T], object_id: Any, *, object_type: str | None = None) -> T:
    """Load one object through the visibility rule.

    Raises:
        NotFound: the object does not exist, or exists outside the caller's visibility — in that case a
            `security_alert` audit event is written (it survives the request's rollback).
    """
    return _get_within(actor, model, clause(actor, model), object_id, object_type)


def _get_within(actor: Actor, model: type[T], where: ColumnElement[bool], object_id: Any, object_type: str | None) -> T:
    s = uow.session()
    pk = model.id
    obj = s.execute(select(model).where(where, pk == object_id)).unique().scalar_one_or_none()
    if obj is not None:
        return obj
    exists = s.execute(select(pk).where(pk == object_id)).first() is not None
    if exists:
        audit.security_alert(
            actor,
            object_type or str(getattr(model, "__tablename__", model.__name__)),
            object_id,
            "访问可见范围之外的对象",
        )
    raise NotFound()


def institution_ids_clause(actor: Actor, column: Any) -> ColumnElement[bool]:
    if actor.is_central:
        return true()
    return column == actor.institution_id


@rule(User)
def _users(actor: Actor) -> ColumnElement[bool]:
    if not (actor.has("user.read") or actor.has("account.review")):
        return User.id == actor.user_id
    return institution_ids_clause(actor, User.institution_id)


@rule(Attachment)
def _attachments(actor: Actor) -> ColumnElement[bool]:
    if actor.has("attachment.view_id_photo"):
        return institution_ids_clause(actor, Attachment.institution_id)
    return Attachment.owner_user_id == actor.user_id


@rule(Role)
def _roles(actor: Actor) -> ColumnElement[bool]:
    if actor.is_central:
        return true()
    return or_(Role.institution_id.is_(None), Role.institution_id == actor.institution_id)


@rule(Institution)
def _institutions(actor: Actor) -> ColumnElement[bool]:
    if actor.is_central:
        return true()
    return Institution.id == actor.institution_id


@rule(AuditEvent)
def _audit(actor: Actor) -> ColumnElement[bool]:
    if not actor.has("audit.read"):
        return false()
    return institution_ids_clause(actor, AuditEvent.institution_id)


# --- clinical objects (issue 3): cases and their human tasks ------------------------------------


def my_groups(actor: Actor) -> Any:
    return (
        select(WorkGroup.code)
        .join(WorkGroupMember, WorkGroupMember.group_id == WorkGroup.id)
        .where(WorkGroupMember.user_id == actor.user_id)
        .scalar_subquery()
    )


def open_candidate(actor: Actor, task: Any = HumanTask) -> ColumnElement[bool]:
    """An open, unassigned task the actor could take (role, group), not counting exclusions."""
    return and_(
        task.completed_at.is_(None),
        task.assignee_id.is_(None),
        task.role_code.in_(sorted(actor.roles)),
        or_(task.group_code.is_(None), task.group_code.in_(my_groups(actor))),
    )


@rule(Case)
def _cases(actor: Actor) -> ColumnElement[bool]:
    """Member hospitals see their own requests; central doctors the cases they hold, could take or worked on;
    dispatchers every case routed to the central hospital."""
    if not actor.has("case.read"):
        return false()
    if not actor.is_central:
        return Case.requesting_institution_id == actor.institution_id
    if actor.has("task.assign"):
        return true()
    holds = exists().where(
        HumanTask.case_id == Case.id, or_(HumanTask.assignee_id == actor.user_id, open_candidate(actor))
    )
    worked = exists().where(CaseEvent.case_id == Case.id, CaseEvent.actor_id == actor.user_id)
    return or_(holds, worked)


def _per_row_doctor_rule(actor: Actor) -> bool:
    return actor.has("task.read") and actor.has("case.read") and actor.is_central and not actor.has("task.assign")


def scoped_tasks(actor: Actor, *, own_or_open_candidate: bool) -> Select[Any]:
    """`scoped(actor, HumanTask)` for a task list. When the list's own filter is one of the doctor rule's first
    two terms (the actor's own tasks, or open tasks they could take), every row it returns is visible by that
    rule, and adding the rule's OR only hid the list's order from the planner: the group list sorted 1,870
    rows instead of walking ix_human_task_open_list (PostgreSQL p95 9.2 → see bench/bench_engine.py)."""
    if own_or_open_candidate and _per_row_doctor_rule(actor):
        other = _other_kinds_tasks(actor)  # the doctor rule's terms are about case tasks only
        return select(HumanTask) if other is None else select(HumanTask).where(or_(_is_case_task(), other))
    return scoped(actor, HumanTask)


# --- process instances of any kind (issue 14) -------------------------------------------------------------------

ProcessRule = Callable[[Actor], ColumnElement[bool]]
_PROCESS_RULES: dict[str, ProcessRule] = {}
REMOTE_DIAGNOSIS = "remote_diagnosis"  # the kind whose tasks carry their case (HumanTask.case_id)


def process_rule(process_id: str) -> Callable[[ProcessRule], ProcessRule]:
    """Register the visibility of one process kind: a clause over `ProcessInstance` (its institution, its
    subject …). A kind nobody registered is visible to nobody. The remote-diagnosis kind's rule is the Case rule."""

    def deco(fn: ProcessRule) -> ProcessRule:
        _PROCESS_RULES[process_id] = fn
        return fn

    return deco


_CANDIDATE_RULES: dict[str, ProcessRule] = {}
_TASK_RULES: dict[str, ProcessRule] = {}


def process_task_rule(process_id: str) -> Callable[[ProcessRule], ProcessRule]:
    """Register who sees the tasks of one process kind other than remote diagnosis, when that is fewer people than
    see its instances (a clause over `ProcessInstance`); without one, its tasks follow its instance rule. An
    actor for whom every kind's clause is `false()` gets the remote-diagnosis task queries unchanged (their
    plans are what bench/bench_engine.py measures)."""

    def deco(fn: ProcessRule) -> ProcessRule:
        _TASK_RULES[process_id] = fn
        return fn

    return deco


def process_candidates(process_id: str) -> Callable[[ProcessRule], ProcessRule]:
    """Register who may take the open tasks of one process kind other than remote diagnosis: a clause over
    `ProcessInstance` (e.g. a permission and the instance's institution). A kind without one offers its tasks to
    nobody. Remote-diagnosis tasks keep their lane-role and group rule (`open_candidate`)."""

    def deco(fn: ProcessRule) -> ProcessRule:
        _CANDIDATE_RULES[process_id] = fn
        return fn

    return deco


def candidate_instances(actor: Actor) -> ColumnElement[bool]:
    """The process instances (of kinds other than remote diagnosis) whose open tasks the actor may take."""
    if actor.user_id is None:
        return false()
    terms = [and_(ProcessInstance.process_id == k, fn(actor)) for k, fn in sorted(_CANDIDATE_RULES.items())]
    return or_(*terms) if terms else false()


def has_process_tasks(actor: Actor) -> bool:
    """Whether any process kind other than remote diagnosis can show or offer the actor a task at all — its task
    rule (or instance rule) or candidate rule is not `false()` for them. Without one, the other kinds' task lists
    are not a function of theirs (REQ: AC-03): /api/process-tasks answers 403, as /api/tasks does without task.read."""
    if actor.user_id is None:
        return False
    if _other_kinds_tasks(actor) is not None:
        return True
    return any(not isinstance(fn(actor), False_) for fn in _CANDIDATE_RULES.values())


def may_take_process_task(actor: Actor, task: HumanTask) -> bool:
    """The candidate check of a task of another kind (engine/cases/tasks.py can_take), by its kind's rule."""
    stmt = select(ProcessInstance.id).where(ProcessInstance.id == task.process_instance_id, candidate_instances(actor))
    return uow.session().execute(stmt).first() is not None


def _kinds_clause(actor: Actor, kinds: list[str]) -> ColumnElement[bool]:
    terms = [and_(ProcessInstance.process_id == k, _PROCESS_RULES[k](actor)) for k in kinds]
    return or_(*terms) if terms else false()


@rule(ProcessInstance)
def _process_instances(actor: Actor) -> ColumnElement[bool]:
    return _kinds_clause(actor, sorted(_PROCESS_RULES))


@process_rule(REMOTE_DIAGNOSIS)
def _remote_diagnosis_processes(actor: Actor) -> ColumnElement[bool]:
    return ProcessInstance.id.in_(select(Case.process_instance_id).where(_cases(actor)))


def _other_kinds_tasks(actor: Actor) -> ColumnElement[bool] | None:
    """Tasks of the other registered kinds (no case of their own): through their instance's rule. None when
    no other kind is registered, so the remote-diagnosis task lists keep exactly their indexed query."""
    terms = []
    for kind in sorted(k for k in _PROCESS_RULES if k != REMOTE_DIAGNOSIS):
        term = _TASK_RULES.get(kind, _PROCESS_RULES[kind])(actor)
        if not isinstance(term, False_):  # a kind that shows this actor none of its tasks adds nothing
            terms.append(and_(ProcessInstance.process_id == kind, term))
    if not terms:
        return None
    visible = select(ProcessInstance.id).where(or_(*terms))
    return and_(HumanTask.case_id.is_(None), HumanTask.process_instance_id.in_(visible))


@rule(HumanTask)
def _tasks(actor: Actor) -> ColumnElement[bool]:
    """Tasks of the remote-diagnosis kind: those of the cases the actor sees (the Case rule), written per task
    row for central doctors — an `IN (visible cases)` list made every task list scan all cases
    (bench/bench_engine.py: 230 ms at 110,000). Tasks of other kinds: their kind's rule (`process_rule`)."""
    other = _other_kinds_tasks(actor)
    if not actor.has("task.read"):  # task.read is about case tasks: another kind's rule says who sees its own
        return false() if other is None else other
    case_tasks = _case_tasks(actor)
    # The doctor rule's first terms (holds it, could take it) say nothing of a task's kind: with other kinds
    # registered they apply to case tasks only, and a task of another kind is seen through its kind's rule alone.
    return case_tasks if other is None else or_(and_(_is_case_task(), case_tasks), other)


def _is_case_task() -> ColumnElement[bool]:
    return HumanTask.case_id.is_not(None)


def _case_tasks(actor: Actor) -> ColumnElement[bool]:
    if not _per_row_doctor_rule(actor):
        return HumanTask.case_id.in_(select(Case.id).where(_cases(actor)))
    peer = aliased(HumanTask)
    holds = exists().where(
        peer.case_id == HumanTask.case_id, or_(peer.assignee_id == actor.user_id, open_candidate(actor, peer))
    )
    worked = exists().where(CaseEvent.case_id == HumanTask.case_id, CaseEvent.actor_id == actor.user_id)
    # The row itself first: a task the actor holds or could take makes its case visible without a subquery.
    return or_(HumanTask.assignee_id == actor.user_id, open_candidate(actor), holds, worked)


# --- DICOM archive (issue 4; REQ: IMG-02, AC-02, AC-08) -------------------------------------------


@rule(DicomNode)
def _dicom_nodes(actor: Actor) -> ColumnElement[bool]:
    """Device administrators see the central hospital's and, at a member hospital, their own devices."""
    if not (actor.has("dicom.node.read") or actor.has("dicom.node.manage") or actor.has("dicom.scu")):
        return false()
    return institution_ids_clause(actor, DicomNode.institution_id)


# Who sees which study (issue 15; ARCHITECTURE.md "Roles and who sees what"). Two kinds of sight:
# - clinical (pixel data, WADO, the viewer): a member hospital's clinical staff (image.read + case.read) their own
#   institution's studies; central clinical staff the studies of the patients of the cases they see (the Case rule):
#   the case's own studies and that patient's priors. "Same patient" = the study's matched exam belongs to the case's
#   patient record, or the study was sent by the case patient's institution under that record's patient number
#   (DICOM PatientID = Patient.patient_no, the key exam matching uses too; engine/imaging/matching.py) — so priors
#   that never matched an exam are found as well;
# - DICOM administration (conflicts, unmatched studies, query/retrieve; 系统管理员): the institution-wide study
#   lists (metadata) of those pages, but no pixel data (`may_read_pixels` is false for them).
# Later kinds of sight (QC experts: the studies of their QC tasks) register a clause with `study_rule_hook`.
StudyRule = Callable[[Actor], ColumnElement[bool]]
_STUDY_HOOKS: list[StudyRule] = []
_DICOM_ADMIN = ("dicom.conflict.manage", "dicom.unmatched.read", "dicom.scu")


def study_rule_hook(fn: StudyRule) -> StudyRule:
    """Register another clause over `Study` that makes studies visible, pixel data included (QC experts' tasks)."""
    _STUDY_HOOKS.append(fn)
    return fn


def _any(terms: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    terms = [t for t in terms if not isinstance(t, False_)]
    if any(isinstance(t, True_) for t in terms):
        return true()
    return or_(*terms) if terms else false()


def _case_patient_studies(actor: Actor) -> ColumnElement[bool]:
    """Studies of the patients of the cases the actor sees. Both terms are uncorrelated subqueries over the visible
    cases (computed once, hashed, then probed per study row by exam_id and by (institution_id, patient_id)): as
    correlated EXISTS, PostgreSQL estimated ~500,000 for 10,000 studies and paid ~250 ms of JIT compilation for a
    12 ms query; this form stays far below the JIT threshold (plan: see the commit message)."""
    cases = _cases(actor)
    by_exam = Study.exam_id.in_(select(Exam.id).join(Case, Case.patient_id == Exam.patient_id).where(cases))
    by_patient_no = tuple_(Study.institution_id, Study.patient_id).in_(
        select(Patient.institution_id, Patient.patient_no).join(Case, Case.patient_id == Patient.id).where(cases)
    )
    return or_(by_exam, and_(Study.patient_id != "", by_patient_no))


def _client_studies(actor: Actor) -> ColumnElement[bool]:
    """A machine client's sight (client-credentials token, engine/oauth): the studies of the institution it is bound
    to, with dicomweb.read (image.read) — DSEC-03/DSEC-11 per-hospital scoping; never another institution's, also
    for a client of the central hospital (an AI system reads what is stored at its own institution)."""
    if not actor.has("image.read") or actor.institution_id is None:
        return false()
    return Study.institution_id == actor.institution_id


def pixel_clause(actor: Actor) -> ColumnElement[bool]:
    """The studies whose pixel data (WADO, viewer) the actor may read: clinical sight and the hooks."""
    if actor.user_id is None:
        return _client_studies(actor) if actor.client_id else false()
    terms: list[ColumnElement[bool]] = [fn(actor) for fn in _STUDY_HOOKS]
    if actor.has("image.read") and actor.has("case.read"):
        if actor.is_central:
            terms.append(_case_patient_studies(actor))
        else:
            terms.append(Study.institution_id == actor.institution_id)
    return _any(terms)


def may_read_pixels(actor: Actor, study: Study) -> bool:
    """Whether the actor may read this (visible) study's pixel data; WADO answers 404 when not (REQ: AC-02).

    Where `pixel_clause` is one institution's studies or nothing (a machine client, a member hospital's clinician,
    anyone without clinical sight; no hook registered) the row decides without a query — every WADO request asks
    (issue 15); a central clinician's sight (cases and priors) is asked of the database."""
    if actor.user_id is None:
        return bool(actor.client_id) and _pixels_of_institution(actor, study)
    if not _STUDY_HOOKS:
        if not (actor.has("image.read") and actor.has("case.read")):
            return False
        if not actor.is_central:
            return _pixels_of_institution(actor, study)
    stmt = select(Study.id).where(Study.id == study.id, pixel_clause(actor))
    return uow.session().execute(stmt).first() is not None


def _pixels_of_institution(actor: Actor, study: Study) -> bool:
    """`_client_studies` / a member's `pixel_clause` term, on a loaded row."""
    return actor.has("image.read") and actor.institution_id is not None and study.institution_id == actor.institution_id


@rule(Study)
def _dicom_studies(actor: Actor) -> ColumnElement[bool]:
    """Clinical sight (`pixel_clause`) and, for DICOM administration, the institution-wide lists."""
    terms = [pixel_clause(actor)]
    if any(actor.has(p) for p in _DICOM_ADMIN):
        terms.append(institution_ids_clause(actor, Study.institution_id))
    return _any(terms)


@rule(Instance)
def _dicom_instances(actor: Actor) -> ColumnElement[bool]:
    """An instance is seen with its study."""
    studies = _dicom_studies(actor)
    if isinstance(studies, (True_, False_)):
        return studies
    if not actor.is_central and not _STUDY_HOOKS:  # member hospital: its own institution, on the instance row
        return Instance.institution_id == actor.institution_id
    return exists(select(Study.id).where(Study.id == Instance.study_id, studies))


def _client_instances(actor: Actor) -> ColumnElement[bool]:
    if not actor.has("image.read") or actor.institution_id is None:
        return false()
    return Instance.institution_id == actor.institution_id


# What a user-less OAuth client may see, per model (`clause`); every other model: nothing.
_CLIENT_RULES: dict[type, Callable[[Actor], ColumnElement[bool]]] = {
    Study: _client_studies,
    Instance: _client_instances,
}


@rule(InstanceConflict)
def _dicom_conflicts(actor: Actor) -> ColumnElement[bool]:
    if not actor.has("dicom.conflict.manage"):
        return false()
    return institution_ids_clause(actor, InstanceConflict.institution_id)


@rule(UnmatchedStudy)
def _unmatched_studies(actor: Actor) -> ColumnElement[bool]:
    """The queue of received studies no exam matched (IMG-06): a member hospital sees its own."""
    if not actor.has("dicom.unmatched.read"):
        return false()
    return institution_ids_clause(actor, UnmatchedStudy.institution_id)


@rule(ForwardJob)
def _forward_jobs(actor: Actor) -> ColumnElement[bool]:
    """The forward queue (IMG-08): a member hospital sees the jobs of its own instances, the central hospital all."""
    if not (actor.has("dicom.forward.read") or actor.has("dicom.forward.manage")):
        return false()
    if actor.is_central:
        return true()
    return ForwardJob.instance_id.in_(select(Instance.id).where(Instance.institution_id == actor.institution_id))


# --- process administration (issue 11; REQ: WF-07, AC-02) ------------------------------------------------------

RUNNING_CASE_STATUSES = ("open", "incident")


def migratable_cases(actor: Actor, process_id: str) -> ColumnElement[bool]:
    """The 流程管理员's scope when migrating: the running cases of the process being migrated, and only at the
    central hospital (ARCHITECTURE.md "Roles and who sees what"). A process administrator sees no clinical data."""
    if actor.user_id is None or not (actor.is_central and actor.has("process.deploy")):
        return false()
    of_process = select(ProcessInstance.id).where(ProcessInstance.process_id == process_id)
    return and_(Case.status.in_(RUNNING_CASE_STATUSES), Case.process_instance_id.in_(of_process))


def get_migratable_case(actor: Actor, process_id: str, case_id: Any) -> Case:
    """A case to migrate, through `migratable_cases`: a foreign or unknown id is the same 404 (and an alert)."""
    return _get_within(actor, Case, migratable_cases(actor, process_id), case_id, "case")
