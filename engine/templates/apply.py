"""Applying a template to a report: insert at the cursor or replace (issue 17; REQ: RPT-06; UX.md R5).

This is the server's representation of what the editor does (the web editor may do the same locally for speed; the
tests check this one). The template's 检查方法 goes in front of its 影像所见 (the report form has no field of its own
for it yet). Offsets are those of the browser: UTF-16 code units.
"""

from __future__ import annotations

from typing import Any

from engine.errors import ValidationFailed
from engine.templates.queries import impression_lines, number_lines

TEXT_FIELDS = ("findings", "impression", "recommendation")


def template_texts(sections: dict[str, Any]) -> dict[str, str]:
    """What a template contributes to each report field."""
    findings = "\n".join(t for t in ((sections.get("exam_method") or "").strip(), sections.get("findings") or "") if t)
    return {
        "findings": findings,
        "impression": number_lines(impression_lines(sections.get("impression") or "")),
        "recommendation": sections.get("recommendation") or "",
    }


def _index(text: str, utf16_offset: int) -> int:
    """The Python index of a UTF-16 offset into `text`.

    Raises:
        ValidationFailed: `validation_error` — the offset is outside the text.
    """
    units = 0
    for i, ch in enumerate(text):
        if units >= utf16_offset:
            if units == utf16_offset:
                return i
            break  # inside a surrogate pair
        units += 2 if ord(ch) > 0xFFFF else 1
    else:
        if units == utf16_offset:
            return len(text)
    raise ValidationFailed("validation_error", "光标位置超出了该段文字的长度", {"cursor.offset": ["超出范围"]})


def _append(current: str, add: str) -> str:
    if not current:
        return add
    return current + ("" if current.endswith("\n") else "\n") + add


def _insert_lines(current: str, at: int, add: str) -> str:
    """Insert whole lines at `at`, breaking the line the cursor is in where needed."""
    before, after = current[:at], current[at:]
    if before and not before.endswith("\n"):
        add = "\n" + add
    if after and not after.startswith("\n"):
        add = add + "\n"
    return before + add + after


def apply_template(
    sections: dict[str, Any], mode: str, report: dict[str, Any], cursor: dict[str, Any] | None
) -> dict[str, Any]:
    """The report after applying a template's sections.

    replace: the template's sections replace the report's; its 阴性/阳性 is taken when it has one.
    insert: each section goes in at the cursor when the cursor is in its field, else on a new line at the end of
    its field; the 诊断意见 lines are numbered consecutively afterwards; 阳性 wins, else the report keeps its mark.

    Raises:
        ValidationFailed: `validation_error` — the cursor's offset is outside its field.
    """
    texts = template_texts(sections)
    current = {f: report.get(f) or "" for f in TEXT_FIELDS}
    mark = sections.get("positive")
    if mode == "replace":
        out: dict[str, Any] = dict(texts)
        out["positive"] = mark or report.get("positive")
        return out
    out = {}
    for field in TEXT_FIELDS:
        add, cur = texts[field], current[field]
        if not add:
            out[field] = cur
        elif cursor is not None and cursor.get("field") == field:
            at = _index(cur, int(cursor.get("offset") or 0))
            out[field] = _insert_lines(cur, at, add) if field == "impression" else cur[:at] + add + cur[at:]
        else:
            out[field] = _append(cur, add)
    if texts["impression"]:
        out["impression"] = number_lines(impression_lines(out["impression"]))
    out["positive"] = "阳性" if mark == "阳性" else (report.get("positive") or mark)
    return out
