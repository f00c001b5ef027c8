"""Demo imaging cases (demo mode only): remote-diagnosis requests from member hospital M01 with synthetic studies.

`load_demo_cases` is what `telerad demo` runs after the demo accounts exist (engine/accounts/demo.py). For each
`DemoCase` it:

1. creates the request the way M01's 申请医生 does through the API — `services.create_case` as m01_requester, so
   the case's process starts and the dispatch rules put its first task in the pool (抢单池) or a work group;
2. generates the exam's synthetic study (engine/demo/images.py) and stores every instance through the one receive
   path (`Receiver.receive`, engine/imaging/receive.py) with m01_requester as the source (institution M01, as a
   browser upload would be); the study carries the exam's AccessionNumber, so the worker's exam match (IMG-06,
   engine/imaging/matching.py) links it to the exam — applied here at once (`events.drain`);
3. lets doctor_l1 grab the CT case from the pool (`tasks.claim`, the same atomic claim as 抢单), so opening 阅片
   from his task shows images right away.

Idempotent: a case whose accession number already has an exam at M01 is not created again, a study already in the
archive for that accession is not generated again, and the claim is only made while the task is unclaimed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from pydicom.dataset import Dataset
from sqlalchemy import select

from engine import uow
from engine.accounts import auth
from engine.accounts.models import Institution, User
from engine.accounts.passwords import normalise_username
from engine.accounts.queries import effective_permissions
from engine.actor import Actor
from engine.cases import services, tasks
from engine.cases.models import Exam, case_exam
from engine.demo import images
from engine.imaging import events
from engine.imaging.ingest import IngestState
from engine.imaging.models import Study
from engine.imaging.receive import Receiver
from engine.imaging.source import Source
from engine.imaging.worklist import LOCAL_TZ
from engine.workflow.models import HumanTask

DEMO = Actor.system("demo")
INSTITUTION = "M01"
REQUESTER = "m01_requester"
ASSIGNED_DOCTOR = "doctor_l1"

Generator = Callable[[images.Patient, images.StudyInfo], list[Dataset]]


@dataclass(frozen=True)
class DemoCase:
    accession: str  # the idempotency key: one exam per accession number at M01
    patient: images.Patient
    modality: str  # the exam category (services.MODALITIES)
    body_part: str  # 检查部位 (Chinese, as registered)
    exam_item: str
    dicom_body_part: str
    clinical_info: str
    days_ago: int
    generate: Generator
    emergency: bool = False
    claim_by: str | None = None  # a demo doctor who has already grabbed it from the pool


DEMO_CASES: tuple[DemoCase, ...] = (
    DemoCase(
        "DEMO-CT-0001",
        images.Patient("M01P100001", "张伟明", "M", "19650312"),
        "CT",
        "胸部",
        "胸部CT平扫",
        "CHEST",
        "咳嗽、咳痰两周，偶有痰中带血；吸烟 30 年。",
        1,
        images.ct_chest,
        claim_by=ASSIGNED_DOCTOR,
    ),
    DemoCase(
        "DEMO-DX-0002",
        images.Patient("M01P100002", "李秀英", "F", "19780826"),
        "DX",
        "胸部",
        "胸部正侧位",
        "CHEST",
        "发热三天，体温 38.5 ℃，右下肺可闻及湿啰音。",
        1,
        images.dx_chest,
    ),
    DemoCase(
        "DEMO-MR-0003",
        images.Patient("M01P100003", "王建国", "M", "19590105"),
        "MR",
        "颅脑",
        "颅脑MR平扫",
        "HEAD",
        "反复头晕一月，伴左侧肢体麻木。",
        2,
        images.mr_brain,
    ),
    DemoCase(
        "DEMO-US-0004",
        images.Patient("M01P100004", "陈静", "F", "19900418"),
        "US",
        "心脏",
        "超声心动图",
        "HEART",
        "活动后胸闷、心悸半年。",
        2,
        images.us_cine,
    ),
    DemoCase(
        "DEMO-DX-0005",
        images.Patient("M01P100005", "刘洋", "M", "19821130"),
        "DX",
        "腰椎",
        "腰椎正位",
        "LSPINE",
        "腰痛伴右下肢放射痛一周，外伤后加重。",
        0,
        images.dx_spine_overlay,
        emergency=True,
    ),
)


@dataclass
class DemoCasesResult:
    cases_added: int = 0
    studies_added: int = 0
    instances_stored: int = 0


def _user_actor(username: str) -> Actor:
    user = uow.session().execute(select(User).where(User.username_norm == normalise_username(username))).scalar_one()
    return auth.actor_for(user, DEMO, permissions=effective_permissions(user))


def _institution_id(code: str) -> int:
    return int(uow.session().execute(select(Institution.id).where(Institution.code == code)).scalar_one())


def _exam_time(c: DemoCase, now: datetime) -> datetime:
    """A recent exam time: `days_ago` days back, a few hours before now (never in the future), to the minute."""
    when = now - timedelta(days=c.days_ago, hours=1 + DEMO_CASES.index(c))
    return when.replace(second=0, microsecond=0)


def _create_case(c: DemoCase, when: datetime) -> bool:
    """The request as M01's 申请医生 makes it (REG-12); False when it exists already."""
    s = uow.session()
    inst = _institution_id(INSTITUTION)
    if s.execute(select(Exam.id).where(Exam.institution_id == inst, Exam.accession_no == c.accession)).first():
        return False
    p = c.patient
    services.create_case(
        _user_actor(REQUESTER),
        services.PatientIn(p.patient_no, p.name, p.sex, _date(p.birth_date)),
        [services.ExamIn(c.modality, c.body_part, c.exam_item, when, c.accession)],
        c.emergency,
        c.clinical_info,
        auth.cipher(),
    )
    return True


def _date(yyyymmdd: str) -> date:
    return date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))


def _has_study(accession: str) -> bool:
    inst = _institution_id(INSTITUTION)
    stmt = select(Study.id).where(Study.institution_id == inst, Study.accession_number == accession)
    return uow.session().execute(stmt).first() is not None


def _store(rx: Receiver, source: Source, datasets: list[Dataset]) -> int:
    """Every instance through the receive path, as STOW-RS hands them over (a Part-10 file in the store's tmp/)."""
    state = IngestState(source)
    stored = 0
    for ds in datasets:
        with tempfile.NamedTemporaryFile(dir=rx.store.tmp_dir, suffix=".dcm", delete=False) as f:
            path = Path(f.name)
        try:
            ds.save_as(path, enforce_file_format=True)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        rx.receive(state, path)  # consumes the file; refusals raise (a demo study must be valid)
        stored += 1
    return stored


def _claim(c: DemoCase) -> None:
    """The doctor grabs the case's open first-report task (抢单, DISP-04) while nobody holds it and he may take it."""
    if c.claim_by is None:
        return
    stmt = (
        select(HumanTask)
        .join(case_exam, case_exam.c.case_id == HumanTask.case_id)
        .join(Exam, Exam.id == case_exam.c.exam_id)
        .where(
            Exam.institution_id == _institution_id(INSTITUTION),
            Exam.accession_no == c.accession,
            HumanTask.task_name == "draft_report",
            HumanTask.completed_at.is_(None),
            HumanTask.assignee_id.is_(None),
        )
    )
    doctor = _user_actor(c.claim_by)
    for task in uow.session().execute(stmt).scalars().all():
        if tasks.can_take(doctor, task):
            tasks.claim(doctor, task.id)


def load_demo_cases(rx: Receiver, now: datetime | None = None) -> DemoCasesResult:
    """Create the demo cases and store their studies once (module docstring). Runs its own units of work: the
    receive path commits each instance itself, so no transaction may be open around it (SQLite's one writer)."""
    now = now or datetime.now(LOCAL_TZ)
    result = DemoCasesResult()
    for c in DEMO_CASES:
        when = _exam_time(c, now)
        with uow.unit_of_work():
            if _create_case(c, when):
                result.cases_added += 1
            need_study = not _has_study(c.accession)
            source = Source.user(_user_actor(REQUESTER), via="upload")
        if need_study:
            info = images.StudyInfo(c.accession, when, c.exam_item, c.dicom_body_part)
            rx.store.tmp_dir.mkdir(parents=True, exist_ok=True)
            result.instances_stored += _store(rx, source, c.generate(c.patient, info))
            result.studies_added += 1
    events.drain()  # the exam match (IMG-06) and images_received, as the worker would shortly after
    for c in DEMO_CASES:
        with uow.unit_of_work():
            _claim(c)
    return result
