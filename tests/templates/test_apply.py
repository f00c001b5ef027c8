"""Combinations and applying a template to a report — the server representation the tests check (issue 17;
REQ: RPT-03 single and combination templates, RPT-06 insert or replace; UX.md R5)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from engine.errors import ValidationFailed
from engine.templates.apply import apply_template
from tests.factories import Session, as_user
from tests.templates.helpers import body, create

CHEST = {
    "exam_method": "胸部CT平扫。",
    "findings": "双肺纹理清晰，未见实变。",
    "impression": "胸部CT平扫未见明显异常。",
    "recommendation": "",
    "positive": "阴性",
}
ABDOMEN = {
    "exam_method": "上腹部CT平扫。",
    "findings": "肝右叶见囊状低密度影。",
    "impression": "1. 肝囊肿\n2. 胆囊结石",
    "recommendation": "建议定期复查。",
    "positive": "阳性",
}


def _combination(sess: Session) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    chest = create(sess, "CT胸部", scope="public", sections=CHEST)
    abdomen = create(sess, "CT上腹部", scope="public", body_part="上腹部", sections=ABDOMEN)
    r = sess.post(
        "/api/templates",
        json=body("CT胸腹部平扫", kind="combination", scope="public", body_part="胸腹部", sections=None,
                  parts=[chest["id"], abdomen["id"]]),
    )  # fmt: skip
    assert r.status_code == 201, r.get_json()
    return chest, abdomen, r.get_json()


def _apply(sess: Session, tid: int, mode: str, report: dict[str, Any], cursor: Any = None) -> dict[str, Any]:
    r = sess.post(f"/api/templates/{tid}/apply", json={"mode": mode, "report": report, "cursor": cursor})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["report"]  # type: ignore[no-any-return]


def test_combination_sections_are_its_parts_joined_in_order(app: Flask) -> None:
    # REQ: RPT-03 — a combination = ordered single templates; impression lines numbered across the parts
    head = as_user(app, "report_l3")
    chest, abdomen, combo = _combination(head)
    assert combo["kind"] == "combination"
    assert [p["id"] for p in combo["parts"]] == [chest["id"], abdomen["id"]]
    assert combo["sections"] == {
        "exam_method": "胸部CT平扫。\n上腹部CT平扫。",
        "findings": "双肺纹理清晰，未见实变。\n肝右叶见囊状低密度影。",
        "impression": "1. 胸部CT平扫未见明显异常。\n2. 肝囊肿\n3. 胆囊结石",
        "recommendation": "建议定期复查。",
        "positive": "阳性",
    }
    # Editing a part changes the combination; deleting a part in use is refused with the combination's name.
    edited = body("CT胸部", scope="public", version=1, sections=dict(CHEST, findings="双肺未见异常。"))
    r = head.put(f"/api/templates/{chest['id']}", json=edited)
    assert r.status_code == 200, r.get_json()
    assert head.get(f"/api/templates/{combo['id']}").get_json()["sections"]["findings"].startswith("双肺未见异常。\n")
    r = head.put(f"/api/templates/{abdomen['id']}", json=body("CT上腹部", version=1, sections=ABDOMEN))
    assert r.status_code == 409  # made private, the shared combination's readers could no longer use it
    assert r.get_json()["code"] == "template_in_use"
    r = head.delete(f"/api/templates/{abdomen['id']}")
    assert r.status_code == 409
    assert r.get_json()["code"] == "template_in_use"
    assert r.get_json()["details"] == {"combinations": ["CT胸腹部平扫"]}
    assert "CT胸腹部平扫" in r.get_json()["message"]
    assert head.delete(f"/api/templates/{combo['id']}").status_code == 204
    assert head.delete(f"/api/templates/{abdomen['id']}").status_code == 204
    # The tree counts combinations under their own part.
    tree = head.get("/api/templates/tree?tab=shared").get_json()["tree"]
    assert tree == [{"modality": "CT", "label": "CT", "count": 1, "parts": [{"body_part": "胸部", "count": 1}]}]


def test_apply_insert_at_the_cursor_and_numbering_continues(app: Flask) -> None:
    # REQ: RPT-06 insert mode; UX.md R5 "Click inserts at the cursor"
    head = as_user(app, "report_l3")
    _chest, abdomen, combo = _combination(head)
    report = {
        "findings": "胆囊不大。脾脏大小正常。",
        "impression": "1. 脾脏未见异常\n2. 胆囊未见异常",
        "recommendation": "",
        "positive": None,
    }
    out = _apply(head, abdomen["id"], "insert", report, {"field": "findings", "offset": 5})
    assert out["findings"] == "胆囊不大。上腹部CT平扫。\n肝右叶见囊状低密度影。脾脏大小正常。"
    assert out["impression"] == "1. 脾脏未见异常\n2. 胆囊未见异常\n3. 肝囊肿\n4. 胆囊结石"
    assert out["recommendation"] == "建议定期复查。"
    assert out["positive"] == "阳性"
    # The cursor in the impression: the template's lines go in there, numbering stays consecutive.
    out = _apply(head, abdomen["id"], "insert", report, {"field": "impression", "offset": len("1. 脾脏未见异常")})
    assert out["impression"] == "1. 脾脏未见异常\n2. 肝囊肿\n3. 胆囊结石\n4. 胆囊未见异常"
    assert out["findings"] == "胆囊不大。脾脏大小正常。\n上腹部CT平扫。\n肝右叶见囊状低密度影。"
    # No cursor: every section appended on a new line; a combination inserts all of its parts.
    empty = {"findings": "", "impression": "", "recommendation": "", "positive": None}
    out = _apply(head, combo["id"], "insert", empty)
    assert out == {
        "findings": "胸部CT平扫。\n上腹部CT平扫。\n双肺纹理清晰，未见实变。\n肝右叶见囊状低密度影。",
        "impression": "1. 胸部CT平扫未见明显异常。\n2. 肝囊肿\n3. 胆囊结石",
        "recommendation": "建议定期复查。",
        "positive": "阳性",
    }
    # A 阴性 template never turns a 阳性 report negative.
    chest_only = create(head, "胸部阴性", sections=CHEST)
    out = _apply(head, chest_only["id"], "insert", dict(report, positive="阳性"))
    assert out["positive"] == "阳性"
    past_the_end = {"mode": "insert", "report": report, "cursor": {"field": "findings", "offset": 999}}
    r = head.post(f"/api/templates/{abdomen['id']}/apply", json=past_the_end)
    assert r.status_code == 400
    assert r.get_json()["code"] == "validation_error"
    assert r.get_json()["message"] == "光标位置超出了该段文字的长度"


def test_apply_replace(app: Flask) -> None:
    # REQ: RPT-06 replace mode; UX.md R5 "Alt+click replaces both sections"
    head = as_user(app, "report_l3")
    chest, _abdomen, _combo = _combination(head)
    report = {"findings": "旧所见", "impression": "1. 旧\n2. 诊断", "recommendation": "旧建议", "positive": "阳性"}
    out = _apply(head, chest["id"], "replace", report)
    assert out == {
        "findings": "胸部CT平扫。\n双肺纹理清晰，未见实变。",
        "impression": "胸部CT平扫未见明显异常。",
        "recommendation": "",
        "positive": "阴性",
    }
    no_mark = create(head, "无阴阳性", sections=dict(CHEST, positive=None))
    assert _apply(head, no_mark["id"], "replace", report)["positive"] == "阳性"  # kept when the template has none


def test_apply_offsets_are_utf16_units() -> None:
    # The browser's selectionStart counts UTF-16 code units: a character outside the BMP counts two.
    sections = {"exam_method": "", "findings": "X", "impression": "", "recommendation": "", "positive": None}
    report = {"findings": "𠀀甲", "impression": "", "recommendation": "", "positive": None}
    assert apply_template(sections, "insert", report, {"field": "findings", "offset": 2})["findings"] == "𠀀X甲"
    with pytest.raises(ValidationFailed):
        apply_template(sections, "insert", report, {"field": "findings", "offset": 1})  # inside the pair
    # "1.5cm" at the start of a line is a size, not a number to strip.
    sections = dict(sections, impression="1.5cm结节")
    out = apply_template(sections, "insert", dict(report, impression="肺气肿"), None)
    assert out["impression"] == "1. 肺气肿\n2. 1.5cm结节"
