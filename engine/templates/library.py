"""Loading the starter library (engine/templates/library_data.py) as public templates and shared phrases of the
central hospital: `telerad templates seed` and `telerad demo` (issue 17; REQ: RPT-07, DICT-02).

Idempotent: rows are found by their `library_key`; what exists is left as it is (a department may have edited it),
only what is missing is added, so a second run changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from engine import audit, uow
from engine.accounts.models import Institution
from engine.actor import Actor
from engine.db import utcnow
from engine.errors import NotFound
from engine.templates import library_data, search
from engine.templates.models import COMBINATION, PUBLIC, SINGLE, ReportPhrase, ReportTemplate
from engine.templates.phrases import SHARED
from engine.templates.services import index_name, set_parts


@dataclass
class Seeded:
    singles: int = 0
    combinations: int = 0
    phrases: int = 0
    kept: int = 0

    @property
    def added(self) -> int:
        return self.singles + self.combinations + self.phrases

    def summary(self) -> str:
        return (
            f"报告模板库已就绪：新增单项模板 {self.singles} 个、组合模板 {self.combinations} 个、"
            f"共享短语 {self.phrases} 条，已有 {self.kept} 项保持不变"
        )


def _central() -> Institution:
    inst = (
        uow.session()
        .execute(select(Institution).where(Institution.kind == "central").order_by(Institution.id).limit(1))
        .unique()
        .scalar_one_or_none()
    )
    if inst is None:
        raise NotFound("central_institution_missing", "尚未登记中心医院，无法载入公共模板库")
    return inst


def seed_library() -> Seeded:
    """Add the library's missing templates and phrases to the central hospital.

    Raises:
        NotFound: `central_institution_missing` — no central institution yet.
    """
    s = uow.session()
    inst = _central()
    done = Seeded()
    have = {
        k: i
        for k, i in s.execute(
            select(ReportTemplate.library_key, ReportTemplate.id).where(ReportTemplate.library_key.is_not(None))
        )
    }
    now = utcnow()
    for d in library_data.SINGLES:
        if d.key in have:
            done.kept += 1
            continue
        t = ReportTemplate(
            name=d.name,
            kind=SINGLE,
            scope=PUBLIC,
            category=d.category,
            modality=d.modality,
            body_part=d.body_part,
            exam_method=d.exam_method,
            findings=d.findings,
            impression=d.impression,
            recommendation=d.recommendation,
            positive=d.positive,
            institution_id=inst.id,
            library_key=d.key,
            version=1,
            created_at=now,
            updated_at=now,
        )
        s.add(t)
        s.flush()
        index_name(t)
        have[d.key] = t.id
        done.singles += 1
    for c in library_data.COMBINATIONS:
        if c.key in have:
            done.kept += 1
            continue
        t = ReportTemplate(
            name=c.name,
            kind=COMBINATION,
            scope=PUBLIC,
            category="normal",
            modality=c.modality,
            body_part=c.body_part,
            exam_method="",
            findings="",
            impression="",
            recommendation="",
            institution_id=inst.id,
            library_key=c.key,
            version=1,
            created_at=now,
            updated_at=now,
        )
        s.add(t)
        s.flush()
        index_name(t)
        set_parts(t, [have[p] for p in c.parts])
        done.combinations += 1
    phrase_keys = set(
        s.execute(select(ReportPhrase.library_key).where(ReportPhrase.library_key.is_not(None))).scalars()
    )
    taken = set(
        s.execute(
            select(ReportPhrase.shortcut).where(
                ReportPhrase.scope == SHARED, ReportPhrase.institution_id == inst.id, ReportPhrase.shortcut.is_not(None)
            )
        ).scalars()
    )
    for p in library_data.PHRASES:
        if p.key in phrase_keys:
            done.kept += 1
            continue
        s.add(
            ReportPhrase(
                scope=SHARED,
                text=p.text,
                pinyin=search.initials(p.text, 128),
                shortcut=None if p.shortcut in taken else p.shortcut,  # a department's own shared one keeps it
                institution_id=inst.id,
                library_key=p.key,
                created_at=now,
                updated_at=now,
            )
        )
        done.phrases += 1
    s.flush()
    if done.added:
        audit.record(
            Actor.system("seed"),
            "template_library_seeded",
            object_type="report_template",
            details={"singles": done.singles, "combinations": done.combinations, "phrases": done.phrases},
        )
    return done
