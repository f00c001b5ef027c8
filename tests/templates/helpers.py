"""Shared helpers of the template tests (issue 17)."""

from __future__ import annotations

from typing import Any

from tests.factories import Session


def body(name: str, **over: Any) -> dict[str, Any]:
    """A valid single-template body."""
    out: dict[str, Any] = {
        "name": name,
        "kind": "single",
        "scope": "private",
        "category": "normal",
        "modality": "CT",
        "body_part": "胸部",
        "sections": {
            "exam_method": "",
            "findings": f"{name}所见。",
            "impression": f"{name}诊断。",
            "recommendation": "",
            "positive": "阴性",
        },
    }
    out.update(over)
    return out


def create(sess: Session, name: str, **over: Any) -> dict[str, Any]:
    r = sess.post("/api/templates", json=body(name, **over))
    assert r.status_code == 201, r.get_json()
    return r.get_json()  # type: ignore[no-any-return]


def names(sess: Session, query: str = "") -> list[str]:
    r = sess.get(f"/api/templates?page_size=100{query}")
    assert r.status_code == 200, r.get_json()
    return [t["name"] for t in r.get_json()["items"]]
