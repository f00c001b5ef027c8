"""The report page's layout setting (REQ: RPT-12, UX R23): 报告 | 报告+影像 and the split, remembered per user through
the settings mechanism (engine/settings/registry.py); a bad value is refused with a Chinese message."""

from __future__ import annotations

from flask import Flask

from tests.factories import as_user

KEY = "report_editor.viewer_layout"


def test_rpt12_viewer_layout_default_save_and_refuse(app: Flask) -> None:
    doc = as_user(app, "report_l1")
    got = {e["key"]: e for e in doc.get("/api/me/settings").get_json()}
    assert got[KEY]["value"] == {"mode": "report", "split": 45}
    assert got[KEY]["source"] == "builtin"

    r = doc.put(f"/api/me/settings/{KEY}", json={"value": {"mode": "split", "split": 60}})
    assert r.status_code == 200, r.get_json()
    got = {e["key"]: e for e in doc.get("/api/me/settings").get_json()}
    assert got[KEY]["value"] == {"mode": "split", "split": 60}
    assert got[KEY]["source"] == "user"

    for bad in ({"mode": "viewer", "split": 50}, {"mode": "split", "split": 90}, {"mode": "split"}):
        r = doc.put(f"/api/me/settings/{KEY}", json={"value": bad})
        assert r.status_code == 400, bad
        assert not r.get_json()["message"].isascii()
    other = as_user(app, "report_l1")  # per user: another doctor still has the default
    got = {e["key"]: e for e in other.get("/api/me/settings").get_json()}
    assert got[KEY]["value"] == {"mode": "report", "split": 45}
