"""The viewer's per-user settings (issue 16; REQ: VIEW-05 presets, VIEW-13 corner text per modality)."""

from __future__ import annotations

from tests.factories import as_user


def test_view13_corner_text_per_modality_is_a_validated_user_setting(app):  # type: ignore[no-untyped-def]
    doc = as_user(app, "report_l1")
    got = {e["key"]: e for e in doc.get("/api/me/settings").get_json()}
    assert got["viewer.corner_text_by_modality"] == {**got["viewer.corner_text_by_modality"], "value": {}}
    us = {
        "top_left": ["modality", "patient_name"],
        "top_right": [],
        "bottom_left": ["instance_number"],
        "bottom_right": [],
    }
    r = doc.put("/api/me/settings/viewer.corner_text_by_modality", json={"value": {"US": us}})
    assert r.status_code == 200, r.get_json()
    got = {e["key"]: e for e in doc.get("/api/me/settings").get_json()}
    assert got["viewer.corner_text_by_modality"]["value"] == {"US": us}
    assert got["viewer.corner_text_by_modality"]["source"] == "user"
    for bad in ({"ct": us}, {"US": {**us, "top_left": ["password"]}}, {"US": {"top_left": []}}):
        r = doc.put("/api/me/settings/viewer.corner_text_by_modality", json={"value": bad})
        assert r.status_code in (400, 422), bad
        assert not r.get_json()["message"].isascii()  # a Chinese message


def test_view05_presets_take_a_key_1_to_9_per_modality(app):  # type: ignore[no-untyped-def]
    doc = as_user(app, "report_l1")
    mine = [{"id": "liver", "name": "肝窗", "modality": "CT", "window_center": 60, "window_width": 160, "key": "6"}]
    assert doc.put("/api/me/settings/viewer.presets", json={"value": mine}).status_code == 200
    bad = [{**mine[0], "key": "0"}]
    assert doc.put("/api/me/settings/viewer.presets", json={"value": bad}).status_code in (400, 422)


def test_bandwidth_mode_is_a_user_setting_with_an_institution_default(app):  # type: ignore[no-untyped-def]
    # issue 16: how the viewer asks for JPEG-lossless frames (web/src/viewer/core/frameSyntax.ts)
    from tests.api.test_settings import _admin, _value

    doc = as_user(app, "report_l1")
    assert _value(doc, "viewer.bandwidth_mode") == ("auto", "builtin")
    admin = _admin(app)
    r = admin.put("/api/settings/defaults/institution/viewer.bandwidth_mode", json={"value": "wan"})
    assert r.status_code == 200, r.get_json()
    assert _value(doc, "viewer.bandwidth_mode") == ("wan", "institution")
    assert doc.put("/api/me/settings/viewer.bandwidth_mode", json={"value": "lan"}).status_code == 200
    assert _value(doc, "viewer.bandwidth_mode") == ("lan", "user")
    r = doc.put("/api/me/settings/viewer.bandwidth_mode", json={"value": "fast"})
    assert r.status_code in (400, 422)
    assert not r.get_json()["message"].isascii()
