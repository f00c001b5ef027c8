"""我的诊断记录's status chips and filters (issue 17; REQ: REC-02, REC-03, REC-07; UX.md R2): GET /api/cases filters
and GET /api/cases/counts against hand-counted fixtures, dates as the platform's day (Asia/Shanghai)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from engine import uow
from engine.cases.case_filters import LOCAL_TZ
from engine.cases.models import Case
from tests.api.test_cases_flow import new_case, ok, refused
from tests.factories import Session, as_user, institution

NOW = datetime(2026, 12, 8, 10, 0, tzinfo=LOCAL_TZ)  # Tuesday 10:00 in Shanghai, 02:00 UTC


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=LOCAL_TZ)  # type: ignore[misc]


def exams(*spec: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"modality": m, "body_part": p, "exam_item": f"{p}{m}"} for m, p in spec]


# name: (hospital, created (Shanghai), exams (modality, status), emergency, due (Shanghai) or None = far ahead)
FIXTURES: dict[str, tuple[str, datetime, list[tuple[str, str]], bool, datetime | None]] = {
    # One minute before the default window (7天内 = 12-02 … 12-08) opens.
    "old": ("M01", sh(2026, 12, 1, 23, 59), [("DX", "released")], False, None),
    # 30 s after it opens: 12-01 16:00:30 UTC, a day that a UTC-date window would leave out.
    "edge": ("M01", sh(2026, 12, 2, 0, 0, 30), [("DX", "registered")], False, None),
    "ct_urgent": ("M01", sh(2026, 12, 5, 10, 0), [("CT", "awaiting")], True, None),
    # 昨天 late in the evening (15:30 UTC), overdue since 01:00 today.
    "ct_late": ("M01", sh(2026, 12, 7, 23, 30), [("CT", "pending_review")], False, sh(2026, 12, 8, 1, 0)),
    # Two exams in two statuses: counted under both.
    "mr_two": ("M01", sh(2026, 12, 8, 8, 0), [("MR", "preliminary"), ("MR", "examined")], False, None),
    "m2_dx": ("M02", sh(2026, 12, 8, 9, 0), [("DX", "awaiting")], True, None),
    "m2_us": ("M02", sh(2026, 12, 3, 12, 0), [("US", "printed")], False, None),
}


@dataclass
class World:
    ids: dict[str, int]
    m01: int
    m02: int

    def names(self, items: list[dict[str, Any]]) -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return {by_id[i["id"]] for i in items if i["id"] in by_id}


@pytest.fixture
def world(app: Flask) -> World:
    requesters = {code: as_user(app, "requester", institution_code=code) for code in ("M01", "M02")}
    ids: dict[str, int] = {}
    for name, (hospital, _, spec, emergency, _) in FIXTURES.items():
        body = new_case(
            requesters[hospital],
            modality=spec[0][0],
            emergency=emergency,
            exams=exams(*[(m, "胸部") for m, _ in spec]),
        )
        ids[name] = body["id"]
    with app.app_context():
        s = uow.session()
        for name, (_, created, spec, _, due) in FIXTURES.items():
            case = s.execute(select(Case).where(Case.id == ids[name])).unique().scalar_one()
            case.created_at = created
            case.due_at = due or sh(2026, 12, 31, 0, 0)
            for exam, (_, status) in zip(case.exams, spec, strict=True):
                exam.status = status
        uow.commit()
    return World(ids, institution(app, "M01").id, institution(app, "M02").id)


def counts(sess: Session, query: str = "") -> dict[str, Any]:
    return ok(sess.get(f"/api/cases/counts?{query}"))  # type: ignore[no-any-return]


def listed(sess: Session, w: World, query: str) -> set[str]:
    body = ok(sess.get(f"/api/cases?page_size=100&{query}"))
    names = w.names(body["items"])
    assert body["total"] == len(body["items"])  # nothing of this test's outside the fixtures is visible
    return names


ZERO = {
    "registered": 0,
    "in_progress": 0,
    "examined": 0,
    "awaiting": 0,
    "preliminary": 0,
    "pending_review": 0,
    "review_rejected": 0,
    "reviewed": 0,
    "released": 0,
    "printed": 0,
    "corrected": 0,
}


def test_rec07_counts_over_the_default_7_day_window_for_the_dispatcher(app: Flask, world: World) -> None:
    with time_machine.travel(NOW, tick=False):
        dispatcher = as_user(app, "dispatcher")
        body = counts(dispatcher)
    assert body["window"] == {"date_from": "2026-12-02", "date_to": "2026-12-08"}
    assert body["counts"] == ZERO | {
        "registered": 1,  # edge (old is outside the window)
        "examined": 1,
        "preliminary": 1,  # mr_two, under both of its statuses
        "awaiting": 2,
        "pending_review": 1,
        "printed": 1,
        "emergency": 2,
        "overdue": 1,
        "total": 6,
    }
    hospitals = {h["id"]: h["count"] for h in body["institutions"]}
    assert hospitals == {world.m01: 4, world.m02: 2}


def test_rec03_day_windows_follow_the_shanghai_day(app: Flask, world: World) -> None:
    with time_machine.travel(NOW, tick=False):
        dispatcher = as_user(app, "dispatcher")
        today = counts(dispatcher, "date_from=2026-12-08&date_to=2026-12-08")
        yesterday = counts(dispatcher, "date_from=2026-12-07&date_to=2026-12-07")
        first = counts(dispatcher, "date_from=2026-12-01&date_to=2026-12-01")
        assert listed(dispatcher, world, "date_from=2026-12-08&date_to=2026-12-08") == {"mr_two", "m2_dx"}
        assert listed(dispatcher, world, "date_from=2026-12-07&date_to=2026-12-07") == {"ct_late"}
        assert listed(dispatcher, world, "date_from=2026-12-02") == set(FIXTURES) - {"old"}
        assert listed(dispatcher, world, "date_to=2026-12-01") == {"old"}
    assert (today["counts"]["total"], today["counts"]["awaiting"], today["counts"]["examined"]) == (2, 1, 1)
    assert (yesterday["counts"]["total"], yesterday["counts"]["pending_review"]) == (1, 1)
    assert first["counts"] == ZERO | {"released": 1, "emergency": 0, "overdue": 0, "total": 1}
    # Only a start: seven days from it.
    assert counts_window(app, "date_from=2026-11-20") == {"date_from": "2026-11-20", "date_to": "2026-11-26"}


def counts_window(app: Flask, query: str) -> dict[str, str]:
    with time_machine.travel(NOW, tick=False):
        return counts(as_user(app, "dispatcher"), query)["window"]  # type: ignore[no-any-return]


def test_rec02_list_filters_by_exam_status_modality_hospital_and_overdue(app: Flask, world: World) -> None:
    with time_machine.travel(NOW, tick=False):
        d = as_user(app, "dispatcher")
        assert listed(d, world, "exam_status=awaiting") == {"ct_urgent", "m2_dx"}
        assert listed(d, world, "exam_status=examined") == {"mr_two"}
        assert listed(d, world, "exam_status=preliminary") == {"mr_two"}
        assert listed(d, world, "exam_status=released") == {"old"}
        assert listed(d, world, "modality=CT") == {"ct_urgent", "ct_late"}
        assert listed(d, world, f"institution_id={world.m02}") == {"m2_dx", "m2_us"}
        assert listed(d, world, "overdue=true") == {"ct_late"}
        assert listed(d, world, "exam_status=awaiting&emergency=true&modality=DX") == {"m2_dx"}
        # The counts take every filter but the chips' own (exam status, 已超时), which they do not accept.
        refused(d.get("/api/cases/counts?exam_status=awaiting"), 400, "validation_error")
        ct = counts(d, "modality=CT")
        assert ct["counts"] == ZERO | {"awaiting": 1, "pending_review": 1, "emergency": 1, "overdue": 1, "total": 2}
        m2 = counts(d, f"institution_id={world.m02}")["counts"]
        assert (m2["total"], m2["awaiting"], m2["printed"], m2["emergency"]) == (2, 1, 1, 1)
        # Each chip's count is what clicking it lists (within the same window).
        window = "date_from=2026-12-02&date_to=2026-12-08"
        everything = counts(d, window)["counts"]
        for status in ZERO:
            assert len(listed(d, world, f"{window}&exam_status={status}")) == everything[status], status
        assert len(listed(d, world, f"{window}&overdue=true")) == everything["overdue"]
        assert len(listed(d, world, f"{window}&emergency=true")) == everything["emergency"]


def test_rec07_a_member_hospital_counts_only_its_own(app: Flask, world: World) -> None:
    with time_machine.travel(NOW, tick=False):
        registrar = as_user(app, "registrar", institution_code="M01")
        body = counts(registrar)
        assert body["counts"] == ZERO | {
            "registered": 1,
            "examined": 1,
            "preliminary": 1,
            "awaiting": 1,
            "pending_review": 1,
            "emergency": 1,
            "overdue": 1,
            "total": 4,
        }
        assert [(h["id"], h["count"]) for h in body["institutions"]] == [(world.m01, 4)]
        # Another hospital's id narrows nothing open: it finds nothing rather than that hospital's cases.
        assert counts(registrar, f"institution_id={world.m02}")["counts"]["total"] == 0
        assert listed(registrar, world, f"institution_id={world.m02}") == set()
        assert listed(registrar, world, "exam_status=awaiting") == {"ct_urgent"}


def test_rec03_a_window_ending_before_it_starts_is_refused(app: Flask, world: World) -> None:
    d = as_user(app, "dispatcher")
    refused(d.get("/api/cases/counts?date_from=2026-12-08&date_to=2026-12-01"), 400, "date_range_invalid")
    refused(d.get("/api/cases?date_from=2026-12-08&date_to=2026-12-01"), 400, "date_range_invalid")
    refused(d.get("/api/cases?exam_status=bogus"), 400, "validation_error")
