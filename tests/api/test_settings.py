"""Per-user settings (issue 14): effective values user > role > institution > built-in, validation with Chinese
messages and machine codes, isolation between users, institution/role defaults that need setting.default.manage
and are audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine import uow
from engine.audit import AuditEvent
from tests.factories import Session, as_user, make_user, role_id

COLS = "list.tasks.columns"


def _value(sess: Session, key: str) -> tuple[Any, str]:
    r = sess.get(f"/api/me/settings/{key}")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert set(body) == {"key", "value", "source"}
    return body["value"], body["source"]


def _admin(app: Any, institution_code: str = "CENTRAL") -> Session:
    return as_user(app, "sys_admin", institution_code=institution_code)


def _audit(app: Any, event_type: str) -> list[AuditEvent]:
    with app.app_context():
        rows = uow.session().execute(select(AuditEvent).where(AuditEvent.event_type == event_type)).scalars().all()
        for row in rows:
            uow.session().expunge(row)
        return list(rows)


def test_all_keys_have_builtin_defaults_and_a_name(app):  # type: ignore[no-untyped-def]
    doc = as_user(app, "report_l1")
    r = doc.get("/api/me/settings")
    assert r.status_code == 200
    got = {e["key"]: e for e in r.get_json()}
    for key in (
        "list.tasks.columns",
        "list.pool.columns",
        "list.cases.columns",
        "landing_page",
        "viewer.presets",
        "viewer.corner_text",
        "window.positions",
        "report_editor.font_mode",
    ):
        assert got[key]["source"] == "builtin", key
    assert got["report_editor.font_mode"]["value"] == "standard"
    assert [p["name"] for p in got["viewer.presets"]["value"]][:2] == ["肺窗", "纵隔窗"]
    keys = doc.get("/api/settings/keys").get_json()
    assert all(k["name"] and not k["name"].isascii() for k in keys)


def test_defaults_resolution_user_over_role_over_institution_over_builtin(app):  # type: ignore[no-untyped-def]
    admin = _admin(app)
    doc = as_user(app, "report_l1")
    assert _value(doc, "report_editor.font_mode") == ("standard", "builtin")

    r = admin.put("/api/settings/defaults/institution/report_editor.font_mode", json={"value": "large"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["role"] is None
    assert _value(doc, "report_editor.font_mode") == ("large", "institution")

    rid = role_id(app, "report_l1")
    r = admin.put(f"/api/settings/defaults/roles/{rid}/report_editor.font_mode", json={"value": "extra_large"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["role"]["code"] == "report_l1"
    assert _value(doc, "report_editor.font_mode") == ("extra_large", "role")

    # A user of another role keeps the institution default; of another institution, the built-in one.
    dispatcher = as_user(app, "dispatcher")
    assert _value(dispatcher, "report_editor.font_mode") == ("large", "institution")
    member = as_user(app, "requester", institution_code="M01")
    assert _value(member, "report_editor.font_mode") == ("standard", "builtin")

    r = doc.put("/api/me/settings/report_editor.font_mode", json={"value": "standard"})
    assert r.status_code == 200
    assert r.get_json() == {
        "key": "report_editor.font_mode",
        "value": "standard",
        "source": "user",
    }
    assert _value(doc, "report_editor.font_mode") == ("standard", "user")

    # DELETE = back to the default now in effect; removing defaults walks back down the chain.
    r = doc.delete("/api/me/settings/report_editor.font_mode")
    assert r.status_code == 200
    assert r.get_json()["source"] == "role"
    assert admin.delete(f"/api/settings/defaults/roles/{rid}/report_editor.font_mode").status_code == 204
    assert _value(doc, "report_editor.font_mode") == ("large", "institution")
    assert admin.delete("/api/settings/defaults/institution/report_editor.font_mode").status_code == 204
    assert _value(doc, "report_editor.font_mode") == ("standard", "builtin")
    r = admin.delete("/api/settings/defaults/institution/report_editor.font_mode")
    assert r.status_code == 404
    assert r.get_json()["code"] == "setting_default_not_found"


def test_several_roles_the_oldest_roles_default_wins(app):  # type: ignore[no-untyped-def]
    admin = _admin(app)
    for code, mode in (("report_l1", "large"), ("report_l2", "extra_large")):
        r = admin.put(
            f"/api/settings/defaults/roles/{role_id(app, code)}/report_editor.font_mode", json={"value": mode}
        )
        assert r.status_code == 200
    both = Session(app.test_client(), make_user(app, "report_l2", "report_l1"))
    assert _value(both, "report_editor.font_mode") == ("large", "role")


def test_list_columns_round_trip_and_validation(app):  # type: ignore[no-untyped-def]
    doc = as_user(app, "report_l1")
    cols = [{"id": "patient_name", "shown": True, "width": 120}, {"id": "case_no", "shown": False, "width": None}]
    r = doc.put(f"/api/me/settings/{COLS}", json={"value": cols})
    assert r.status_code == 200, r.get_json()
    assert _value(doc, COLS) == (cols, "user")

    bad: list[tuple[Any, str]] = [
        ([{"id": "case_no", "shown": "yes"}], "类型不正确"),
        ([{"id": "case_no", "shown": True, "width": 5}], "数值过小"),
        ([{"id": "case_no", "shown": True, "colour": "red"}], "含有不允许的字段"),
        ([{"id": "Case No", "shown": True}], "格式不正确"),
        ([{"id": "case_no", "shown": True}, {"id": "case_no", "shown": False}], "含有重复项"),
        ({"case_no": True}, "类型不正确"),
    ]
    for value, message in bad:
        r = doc.put(f"/api/me/settings/{COLS}", json={"value": value})
        assert r.status_code == 400, value
        body = r.get_json()
        assert body["code"] == "setting_invalid"
        assert body["message"].startswith("“我的任务列表的列")
        assert message in body["message"], (value, body)
        assert body["details"]["key"] == COLS
    assert _value(doc, COLS) == (cols, "user")  # nothing stored by a refused value

    for key, value in (
        ("report_editor.font_mode", "huge"),
        ("landing_page", "../admin"),
        ("viewer.presets", [{"id": "lung", "name": "肺窗", "window_center": -600, "window_width": 0}]),
        ("viewer.corner_text", {"top_left": ["password"], "top_right": [], "bottom_left": [], "bottom_right": []}),
        ("window.positions", {"Main Window": {"x": 0, "y": 0, "width": 800, "height": 600}}),
    ):
        r = doc.put(f"/api/me/settings/{key}", json={"value": value})
        assert r.status_code == 400, key
        assert r.get_json()["code"] == "setting_invalid", (key, r.get_json())

    r = doc.put(
        "/api/me/settings/window.positions",
        json={"value": {"viewer": {"x": -1920, "y": 0, "width": 1920, "height": 1080}}},
    )
    assert r.status_code == 200
    r = doc.put("/api/me/settings/landing_page", json={"value": "menu.tasks"})
    assert r.status_code == 200

    # Strict body: the value is required, nothing else is accepted; an oversized value is refused.
    r = doc.put("/api/me/settings/landing_page", json={"value": None, "user_id": 1})
    assert r.status_code == 400
    assert "user_id" in r.get_json()["details"]["fields"]
    r = doc.put("/api/me/settings/landing_page", json={})
    assert r.status_code == 400
    big = [{"id": f"c{i}", "shown": True, "width": 100} for i in range(40)]
    assert doc.put(f"/api/me/settings/{COLS}", json={"value": big}).status_code == 200
    r = doc.put(f"/api/me/settings/{COLS}", json={"value": [*big, {"id": "c40", "shown": True}]})
    assert r.status_code == 400
    assert "条目过多" in r.get_json()["message"]
    r = doc.put(
        "/api/me/settings/window.positions",
        json={"value": {"a": {"x": 0, "y": 0, "width": 100, "height": 100, "screen": 1, "pad": "x" * 17000}}},
    )
    assert r.status_code == 400
    assert r.get_json()["code"] == "setting_too_large"


def test_unknown_key_is_404_everywhere(app):  # type: ignore[no-untyped-def]
    doc = as_user(app, "report_l1")
    admin = _admin(app)
    for r in (
        doc.get("/api/me/settings/no.such.key"),
        doc.put("/api/me/settings/no.such.key", json={"value": 1}),
        doc.delete("/api/me/settings/no.such.key"),
        admin.put("/api/settings/defaults/institution/no.such.key", json={"value": 1}),
        admin.delete("/api/settings/defaults/institution/no.such.key"),
    ):
        assert r.status_code == 404
        assert r.get_json()["code"] == "setting_unknown"
        assert r.get_json()["message"] == "没有这项设置"


def test_isolation_between_users(app):  # type: ignore[no-untyped-def]
    a = as_user(app, "report_l1")
    b = as_user(app, "report_l1")
    assert a.put("/api/me/settings/landing_page", json={"value": "menu.tasks"}).status_code == 200
    assert a.put(f"/api/me/settings/{COLS}", json={"value": [{"id": "case_no", "shown": False}]}).status_code == 200
    assert _value(a, "landing_page") == ("menu.tasks", "user")
    # b sees only defaults, and b's own changes and resets never touch a's values.
    assert _value(b, "landing_page") == (None, "builtin")
    assert _value(b, COLS) == ([], "builtin")
    assert b.put("/api/me/settings/landing_page", json={"value": "menu.pool"}).status_code == 200
    assert b.delete(f"/api/me/settings/{COLS}").status_code == 200
    assert _value(a, "landing_page") == ("menu.tasks", "user")
    assert _value(a, COLS) == ([{"id": "case_no", "shown": False}], "user")
    assert _value(b, "landing_page") == ("menu.pool", "user")
    # Anonymous callers get nothing.
    assert app.test_client().get("/api/me/settings").status_code == 401


def test_admin_defaults_need_the_permission_and_stay_in_the_institution(app):  # type: ignore[no-untyped-def]
    doc = as_user(app, "report_l1")
    sec = as_user(app, "sec_admin")
    rid = role_id(app, "report_l1")
    for sess in (doc, sec):
        for r in (
            sess.get("/api/settings/defaults"),
            sess.put("/api/settings/defaults/institution/landing_page", json={"value": "menu.home"}),
            sess.put(f"/api/settings/defaults/roles/{rid}/landing_page", json={"value": "menu.home"}),
            sess.delete("/api/settings/defaults/institution/landing_page"),
        ):
            assert r.status_code == 403
            assert r.get_json()["details"]["permission"] == "setting.default.manage"

    # A member hospital's 系统管理员 sets defaults for that hospital only.
    m01_admin = _admin(app, "M01")
    r = m01_admin.put("/api/settings/defaults/institution/landing_page", json={"value": "menu.cases"})
    assert r.status_code == 200
    assert _value(as_user(app, "requester", institution_code="M01"), "landing_page") == ("menu.cases", "institution")
    assert _value(as_user(app, "requester", institution_code="M02"), "landing_page") == (None, "builtin")
    assert _value(doc, "landing_page") == (None, "builtin")
    central = _admin(app)
    assert central.get("/api/settings/defaults").get_json() == []
    listed = m01_admin.get("/api/settings/defaults").get_json()
    assert [(d["key"], d["name"], d["value"], d["role"]) for d in listed] == [
        ("landing_page", "登录后首页", "menu.cases", None)
    ]
    # Unknown role ids are 404, a bad value is 400 with the key's Chinese name.
    r = central.put("/api/settings/defaults/roles/999999/landing_page", json={"value": "menu.home"})
    assert r.status_code == 404
    assert r.get_json()["code"] == "role_not_found"
    r = central.put("/api/settings/defaults/institution/landing_page", json={"value": 3})
    assert r.status_code == 400
    assert r.get_json()["message"] == "“登录后首页”的设置不正确：类型不正确"


def test_custom_role_of_another_institution_is_not_found(app):  # type: ignore[no-untyped-def]
    from engine.accounts.models import Institution, Role

    with app.app_context():
        s = uow.session()
        m02 = s.execute(select(Institution).where(Institution.code == "M02")).unique().scalar_one()
        role = Role(code="m02_reader", name="二院阅读", institution_id=m02.id, builtin=False, enabled=True)
        s.add(role)
        s.flush()
        custom_id = role.id
        uow.commit()
    r = _admin(app, "M01").put(f"/api/settings/defaults/roles/{custom_id}/landing_page", json={"value": "menu.home"})
    assert r.status_code == 404
    assert r.get_json()["code"] == "role_not_found"
    r = _admin(app, "M02").put(f"/api/settings/defaults/roles/{custom_id}/landing_page", json={"value": "menu.home"})
    assert r.status_code == 200
    assert r.get_json()["role"]["name"] == "二院阅读"


def test_defaults_are_audited_user_settings_are_not(app):  # type: ignore[no-untyped-def]
    admin = _admin(app)
    rid = role_id(app, "report_l2")
    assert (
        admin.put("/api/settings/defaults/institution/report_editor.font_mode", json={"value": "large"}).status_code
        == 200
    )
    assert (
        admin.put(
            "/api/settings/defaults/institution/report_editor.font_mode", json={"value": "extra_large"}
        ).status_code
        == 200
    )
    assert (
        admin.put(f"/api/settings/defaults/roles/{rid}/landing_page", json={"value": "menu.tasks"}).status_code == 200
    )
    assert admin.delete(f"/api/settings/defaults/roles/{rid}/landing_page").status_code == 204

    changed = _audit(app, "setting_default_changed")
    assert [(e.details["key"], e.details["role_id"], e.details["before"], e.details["after"]) for e in changed] == [
        ("report_editor.font_mode", None, None, "large"),
        ("report_editor.font_mode", None, "large", "extra_large"),
        ("landing_page", rid, None, "menu.tasks"),
    ]
    assert all(e.username == admin.user.username and e.outcome == "success" for e in changed)
    assert changed[0].reason == "本机构默认设置：报告编辑器字号"
    assert changed[2].reason == "角色“报告医生”的默认设置：登录后首页"
    removed = _audit(app, "setting_default_removed")
    assert len(removed) == 1
    assert removed[0].details == {
        "key": "landing_page",
        "role_id": rid,
        "institution_id": changed[2].details["institution_id"],
        "before": "menu.tasks",
    }
    # A refused change leaves no success event behind.
    admin.put("/api/settings/defaults/institution/report_editor.font_mode", json={"value": "tiny"})
    assert len(_audit(app, "setting_default_changed")) == 3

    doc = as_user(app, "report_l1")
    doc.put("/api/me/settings/report_editor.font_mode", json={"value": "large"})
    assert len(_audit(app, "setting_default_changed")) == 3
    from engine.audit import EVENT_TYPES

    assert EVENT_TYPES["setting_default_changed"] == "修改默认个人设置"
    assert EVENT_TYPES["setting_default_removed"] == "删除默认个人设置"


def test_roles_offered_for_defaults_are_the_institutions_with_their_menus(app):  # type: ignore[no-untyped-def]
    from engine.accounts.models import Institution, Role

    with app.app_context():
        s = uow.session()
        m01 = s.execute(select(Institution).where(Institution.code == "M01")).unique().scalar_one()
        m02 = s.execute(select(Institution).where(Institution.code == "M02")).unique().scalar_one()
        s.add(Role(code="m01_reader", name="一院阅读", institution_id=m01.id, builtin=False, enabled=True))
        s.add(Role(code="m02_reader", name="二院阅读", institution_id=m02.id, builtin=False, enabled=True))
        uow.commit()
    for sess in (as_user(app, "report_l1"), as_user(app, "sec_admin")):
        r = sess.get("/api/settings/roles")
        assert r.status_code == 403
        assert r.get_json()["details"]["permission"] == "setting.default.manage"

    central = {r["code"]: r for r in _admin(app).get("/api/settings/roles").get_json()}
    assert set(central["report_l1"]) == {"id", "code", "name", "menus"}
    assert central["report_l1"]["name"] == "初级报告医生"
    assert central["report_l1"]["menus"][:2] == ["menu.home", "menu.profile"]
    assert {"menu.tasks", "menu.pool", "menu.cases"} <= set(central["report_l1"]["menus"])
    assert "menu.users" not in central["report_l1"]["menus"]
    assert "m01_reader" not in central
    assert "m02_reader" not in central

    member = {r["code"]: r for r in _admin(app, "M01").get("/api/settings/roles").get_json()}
    assert "report_l1" not in member  # a central-only role is never held at a member hospital
    assert member["m01_reader"]["name"] == "一院阅读"
    assert "m02_reader" not in member
    assert "menu.dicom_storage" not in member["sys_admin"]["menus"]  # central-only menus stay central
    assert "menu.dicom_storage" in central["sys_admin"]["menus"]
