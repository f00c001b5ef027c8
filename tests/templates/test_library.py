"""The starter library and `telerad templates seed` (issue 17; REQ: RPT-07, DICT-02): at least 60 real-world single
templates for CT, MR, DR and US (normal and abnormal), 3 combinations, 16 shared phrases; a second seed changes
nothing."""

from __future__ import annotations

import re
from collections import Counter

from click.testing import CliRunner
from flask import Flask
from sqlalchemy import func, select

from engine import uow
from engine.templates import library_data
from engine.templates.models import ReportPhrase, ReportTemplate, ReportTemplateKey, ReportTemplatePart
from telerad.cli import main
from tests.factories import as_user


def test_library_content() -> None:
    singles = library_data.SINGLES
    assert len(singles) >= 60
    assert len({s.key for s in singles}) == len(singles)
    assert len({s.name for s in singles}) == len(singles)
    by = Counter((s.modality, s.category) for s in singles)
    for modality in ("CT", "MR", "DR", "US"):
        assert by[(modality, "normal")] >= 3, modality
        assert by[(modality, "abnormal")] >= 3, modality
    parts = {(s.modality, s.body_part) for s in singles}
    for need in (("CT", "头颅"), ("CT", "胸部"), ("CT", "上腹部"), ("CT", "盆腔"), ("CT", "颈椎"), ("CT", "腰椎"),
                 ("MR", "头颅"), ("MR", "腰椎"), ("MR", "膝关节"), ("DR", "胸部"), ("DR", "膝关节"),
                 ("US", "肝胆脾胰"), ("US", "甲状腺"), ("US", "乳腺"), ("US", "泌尿系")):  # fmt: skip
        assert need in parts, need
    choice = re.compile(r"\[[^\[\]/]+(?:/[^\[\]/]+)+\]")  # [A/B…]: no empty option, no nesting
    for s in singles:
        text = s.exam_method + s.findings + s.impression + s.recommendation
        assert s.findings
        assert s.impression
        assert text.count("[") == text.count("]") == len(choice.findall(text)), s.key
        if s.category == "abnormal":
            assert "___" in text or choice.search(text), s.key  # something for the doctor to fill in or choose
    keys = {s.key for s in singles}
    assert len(library_data.COMBINATIONS) >= 3
    for c in library_data.COMBINATIONS:
        assert len(c.parts) >= 2
        assert set(c.parts) <= keys
    assert len(library_data.PHRASES) == 16
    assert sorted(p.shortcut for p in library_data.PHRASES if p.shortcut) == [1, 2, 3, 4, 5]


def _counts(app: Flask) -> tuple[int, ...]:
    with app.app_context():
        s = uow.session()
        return tuple(
            int(s.execute(select(func.count()).select_from(m)).scalar_one())
            for m in (ReportTemplate, ReportTemplatePart, ReportTemplateKey, ReportPhrase)
        ) + (int(s.execute(select(func.max(ReportTemplate.version))).scalar_one() or 0),)


def test_seed_cli_is_idempotent_and_doctors_see_the_library(app: Flask, database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"TELERAD_DATABASE_URL": database_url, "TELERAD_INSTANCE_DIR": str(tmp_path), "TELERAD_MODE": "demo"}
    first = CliRunner().invoke(main, ["templates", "seed"], env=env)
    assert first.exit_code == 0, first.output
    singles, combos, phrases = len(library_data.SINGLES), len(library_data.COMBINATIONS), len(library_data.PHRASES)
    assert first.output.strip() == (
        f"报告模板库已就绪：新增单项模板 {singles} 个、组合模板 {combos} 个、共享短语 {phrases} 条，已有 0 项保持不变"
    )
    after_first = _counts(app)
    assert after_first[0] == singles + combos
    assert after_first[3] == phrases
    second = CliRunner().invoke(main, ["templates", "seed"], env=env)
    assert second.exit_code == 0, second.output
    kept = singles + combos + phrases
    assert (
        second.output.strip()
        == f"报告模板库已就绪：新增单项模板 0 个、组合模板 0 个、共享短语 0 条，已有 {kept} 项保持不变"
    )
    assert _counts(app) == after_first
    # A doctor sees the library as public templates of the central hospital, searchable by pinyin.
    doc = as_user(app, "report_l1")
    page = doc.get("/api/templates?tab=shared&page_size=100").get_json()
    assert page["total"] == singles + combos
    assert {t["scope"] for t in page["items"]} == {"public"}
    tree = {m["modality"]: m["count"] for m in doc.get("/api/templates/tree").get_json()["tree"]}
    assert tree == dict(
        Counter(s.modality for s in library_data.SINGLES) + Counter(c.modality for c in library_data.COMBINATIONS)
    )
    found = [t["name"] for t in doc.get("/api/templates", query_string={"q": "xbzw"}).get_json()["items"]]
    assert sorted(found) == sorted(s.name for s in library_data.SINGLES if s.name.startswith("DR胸部正位"))
    assert len(found) == 4
    combo = next(t for t in page["items"] if t["name"] == "CT胸腹部平扫（正常）")
    sections = doc.get(f"/api/templates/{combo['id']}").get_json()["sections"]
    assert sections["impression"] == "1. 胸部CT平扫未见明显异常。\n2. 上腹部CT平扫未见明显异常。"
    assert [p["shortcut"] for p in doc.get("/api/phrases").get_json()["items"]][:5] == [1, 2, 3, 4, 5]
