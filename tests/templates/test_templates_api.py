"""Report templates over HTTP (issue 17; REQ: RPT-03, RPT-07, DICT-02; UX.md R5): CRUD, who sees which (private /
institution / public; a member hospital sees none), template.manage for shared ones, stale versions, stars and tabs,
the tree against a hand-counted set, pinyin search, and bad input answered 400 in Chinese with a code."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select

from engine import uow
from engine.accounts.permissions import BUILTIN_BY_CODE
from engine.actor import Actor
from engine.audit import AuditEvent
from engine.templates import queries
from tests.factories import as_user, audit_count
from tests.templates.helpers import body, create, names


def _events(app: Flask, event_type: str) -> list[dict[str, Any]]:
    with app.app_context():
        rows = uow.session().execute(select(AuditEvent).where(AuditEvent.event_type == event_type)).scalars().all()
        return [{"object_id": r.object_id, "user_id": r.user_id, "outcome": r.outcome} for r in rows]


def test_permissions_of_the_report_roles() -> None:
    # REQ: RPT-07 — every report writer keeps private templates; the 审核医生 manages the shared ones.
    for code in ("report_l1", "report_l2", "report_l3"):
        assert "menu.templates" in BUILTIN_BY_CODE[code].permissions
    assert "template.manage" in BUILTIN_BY_CODE["report_l3"].permissions
    assert "template.manage" not in BUILTIN_BY_CODE["report_l1"].permissions
    assert "template.manage" not in BUILTIN_BY_CODE["report_l2"].permissions
    assert "menu.templates" not in BUILTIN_BY_CODE["requester"].permissions


def test_private_template_crud_round_trip_is_audited(app: Flask) -> None:
    # REQ: RPT-03, RPT-07
    doc = as_user(app, "report_l1")
    t = create(doc, "CT胸部平扫正常", sections={"exam_method": "胸部CT平扫。", "findings": "双肺纹理清晰。",
                                                "impression": "胸部CT平扫未见明显异常。", "recommendation": "",
                                                "positive": "阴性"})  # fmt: skip
    assert t["kind"] == "single"
    assert t["scope"] == "private"
    assert t["version"] == 1
    assert t["owner"] == {"id": doc.user.id, "full_name": f"测试{doc.user.username}"}
    assert t["institution"]["code"] == "CENTRAL"
    assert t["pinyin"] == "ctxbpszc"
    assert t["parts"] == []
    assert t["fields"] == []
    got = doc.get(f"/api/templates/{t['id']}").get_json()
    assert got["sections"] == {
        "exam_method": "胸部CT平扫。",
        "findings": "双肺纹理清晰。",
        "impression": "胸部CT平扫未见明显异常。",
        "recommendation": "",
        "positive": "阴性",
    }
    r = doc.put(f"/api/templates/{t['id']}", json=body("CT胸部平扫（正常）", version=1, category="normal"))
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["version"] == 2
    assert r.get_json()["name"] == "CT胸部平扫（正常）"
    assert doc.delete(f"/api/templates/{t['id']}").status_code == 204
    assert doc.get(f"/api/templates/{t['id']}").status_code == 404
    assert names(doc) == []
    for event in ("template_created", "template_updated", "template_deleted"):
        assert [e["object_id"] for e in _events(app, event)] == [str(t["id"])], event


def test_visibility_private_institution_public_and_member_hospital(app: Flask) -> None:
    # REQ: RPT-07, DICT-02 (per institution); ARCHITECTURE.md "Roles and who sees what"
    head = as_user(app, "report_l3")
    a = as_user(app, "report_l1")
    b = as_user(app, "report_l2")
    mine = create(a, "甲的个人模板")
    inst = create(head, "科室模板", scope="institution")
    pub = create(head, "公共模板", scope="public")
    assert sorted(names(a)) == sorted(["甲的个人模板", "科室模板", "公共模板"])
    assert sorted(names(b)) == sorted(["科室模板", "公共模板"])
    before = audit_count(app, "security_alert")
    assert b.get(f"/api/templates/{mine['id']}").status_code == 404
    assert b.put(f"/api/templates/{mine['id']}", json=body("改", version=1)).status_code == 404
    assert b.delete(f"/api/templates/{mine['id']}").status_code == 404
    assert audit_count(app, "security_alert") == before + 3
    # A central doctor of another institution sees public templates, not this institution's.
    with app.app_context():
        other = Actor(b.user.id, b.user.username, institution_id=999, institution_kind="central",
                      permissions=frozenset({"menu.templates", "report.write"}))  # fmt: skip
        assert [x.template.id for x in queries.list_templates(other).items] == [pub["id"]]
        # A member hospital's user sees none, even holding the menu permission.
        member = Actor(b.user.id, b.user.username, institution_id=inst["institution"]["id"], institution_kind="member",
                       permissions=frozenset({"menu.templates", "report.write"}))  # fmt: skip
        assert queries.list_templates(member).total == 0
        assert queries.tree(member) == []
    requester = as_user(app, "requester", institution_code="M01")
    for url in ("/api/templates", "/api/templates/tree", f"/api/templates/{pub['id']}", "/api/phrases"):
        r = requester.get(url)
        assert (r.status_code, r.get_json()["code"]) == (403, "forbidden"), url


def test_shared_templates_need_template_manage(app: Flask) -> None:
    # REQ: RPT-07 — public templates per institution and category, permission template.manage
    head = as_user(app, "report_l3")
    doc = as_user(app, "report_l1")
    before = audit_count(app, "permission_denied")
    for scope in ("institution", "public"):
        r = doc.post("/api/templates", json=body("共享模板", scope=scope))
        assert r.status_code == 403, r.get_json()
        assert r.get_json()["code"] == "forbidden"
        assert r.get_json()["details"] == {"permission": "template.manage"}
        assert "公共模板" in r.get_json()["message"]
    shared = create(head, "科室共享模板", scope="institution")
    r = doc.put(f"/api/templates/{shared['id']}", json=body("改名", scope="institution", version=1))
    assert r.status_code == 403
    assert doc.delete(f"/api/templates/{shared['id']}").status_code == 403
    own = create(doc, "个人模板")
    r = doc.put(f"/api/templates/{own['id']}", json=body("个人模板", scope="public", version=1))
    assert r.status_code == 403  # publishing one's own template is a manager's act too
    assert audit_count(app, "permission_denied") == before + 5
    # The manager may edit and delete another manager's shared template.
    head2 = as_user(app, "report_l3")
    r = head2.put(f"/api/templates/{shared['id']}", json=body("科室共享模板（修订）", scope="institution", version=1))
    assert r.status_code == 200, r.get_json()
    assert head2.delete(f"/api/templates/{shared['id']}").status_code == 204


def test_stale_version_is_refused_409(app: Flask) -> None:
    # REQ: RPT-07 — two editors of one template: the second save is told, nothing is overwritten
    head = as_user(app, "report_l3")
    t = create(head, "CT头颅平扫", scope="public")
    first = head.put(f"/api/templates/{t['id']}", json=body("CT头颅平扫（甲）", scope="public", version=1))
    assert first.status_code == 200
    second = head.put(f"/api/templates/{t['id']}", json=body("CT头颅平扫（乙）", scope="public", version=1))
    assert second.status_code == 409
    assert second.get_json()["code"] == "stale_version"
    assert second.get_json()["message"] == "模板已被修改，请刷新后再保存"
    assert head.get(f"/api/templates/{t['id']}").get_json()["name"] == "CT头颅平扫（甲）"


def test_favorites_use_counts_and_tabs(app: Flask) -> None:
    # UX.md R5: tabs 常用★ / 个人 / 科室共享 / 全部; 常用 ordered by the user's use count
    head = as_user(app, "report_l3")
    doc = as_user(app, "report_l1")
    other = as_user(app, "report_l1")
    p1 = create(doc, "个人一")
    p2 = create(doc, "个人二")
    s1 = create(head, "科室一", scope="institution")
    s2 = create(head, "公共一", scope="public")
    for t in (p1, s1, s2):
        assert doc.put(f"/api/templates/{t['id']}/favorite").status_code == 204
    assert doc.put(f"/api/templates/{s1['id']}/favorite").status_code == 204  # idempotent
    for _ in range(3):
        assert doc.post(f"/api/templates/{s2['id']}/use").status_code == 204
    assert doc.post(f"/api/templates/{p1['id']}/use").status_code == 204
    assert doc.post(f"/api/templates/{p2['id']}/use").status_code == 204  # used but not starred: not in 常用★
    assert names(doc, "&tab=favorite") == ["公共一", "个人一", "科室一"]
    assert sorted(names(doc, "&tab=private")) == ["个人一", "个人二"]
    assert sorted(names(doc, "&tab=shared")) == ["公共一", "科室一"]
    assert len(names(doc, "&tab=all")) == 4
    items = {t["name"]: t["favorite"] for t in doc.get("/api/templates").get_json()["items"]}
    assert items == {"个人一": True, "个人二": False, "科室一": True, "公共一": True}
    assert names(other, "&tab=favorite") == []  # stars are per user
    assert doc.delete(f"/api/templates/{s2['id']}/favorite").status_code == 204
    assert names(doc, "&tab=favorite") == ["个人一", "科室一"]
    assert doc.get(f"/api/templates/{s1['id']}").get_json()["favorite"] is True
    assert other.put(f"/api/templates/{p1['id']}/favorite").status_code == 404  # not theirs to see


def test_tree_counts_against_a_hand_counted_set(app: Flask) -> None:
    # UX.md R5: 设备类型 → 检查部位 with counts, per tab and search
    head = as_user(app, "report_l3")
    doc = as_user(app, "report_l1")
    stranger = as_user(app, "report_l1")
    # CT 胸部 ×3 (2 public, 1 private), CT 头颅 ×1 (institution), MR 腰椎 ×2 (public), US 甲状腺 ×1 (private)
    create(head, "CT胸部甲", scope="public")
    create(head, "CT胸部乙", scope="public")
    create(doc, "CT胸部个人")
    create(head, "CT头颅科室", scope="institution", body_part="头颅")
    create(head, "MR腰椎甲", scope="public", modality="MR", body_part="腰椎")
    create(head, "MR腰椎乙", scope="public", modality="MR", body_part="腰椎")
    create(doc, "甲状腺个人", modality="US", body_part="甲状腺")
    create(stranger, "别人的", modality="DR", body_part="胸部")  # never counted for doc
    deleted = create(head, "已删除", scope="public", modality="DR", body_part="膝关节")
    assert head.delete(f"/api/templates/{deleted['id']}").status_code == 204

    def tree(query: str = "") -> list[dict[str, Any]]:
        r = doc.get(f"/api/templates/tree{query}")
        assert r.status_code == 200, r.get_json()
        return r.get_json()["tree"]  # type: ignore[no-any-return]

    assert tree() == [
        {"modality": "CT", "label": "CT", "count": 4,
         "parts": [{"body_part": "胸部", "count": 3}, {"body_part": "头颅", "count": 1}]},
        {"modality": "MR", "label": "MR", "count": 2, "parts": [{"body_part": "腰椎", "count": 2}]},
        {"modality": "US", "label": "超声", "count": 1, "parts": [{"body_part": "甲状腺", "count": 1}]},
    ]  # fmt: skip
    assert tree("?tab=private") == [
        {"modality": "CT", "label": "CT", "count": 1, "parts": [{"body_part": "胸部", "count": 1}]},
        {"modality": "US", "label": "超声", "count": 1, "parts": [{"body_part": "甲状腺", "count": 1}]},
    ]
    assert [(m["modality"], m["count"]) for m in tree("?tab=shared")] == [("CT", 3), ("MR", 2)]
    assert tree("?modality=MR") == [
        {"modality": "MR", "label": "MR", "count": 2, "parts": [{"body_part": "腰椎", "count": 2}]}
    ]
    assert tree("?q=yz") == tree("?modality=MR")  # 腰椎: y z
    assert tree("?tab=favorite") == []
    paged = doc.get("/api/templates?page_size=3&page=3").get_json()
    assert (paged["total"], len(paged["items"])) == (7, 1)
    past = doc.get("/api/templates?page_size=3&page=9").get_json()
    assert (past["total"], past["items"]) == (7, [])
    page = doc.get("/api/templates?modality=CT&body_part=胸部").get_json()
    assert page["total"] == 3
    assert {t["name"] for t in page["items"]} == {"CT胸部甲", "CT胸部乙", "CT胸部个人"}


def test_pinyin_search_by_initials_full_pinyin_and_name(app: Flask) -> None:
    # REQ: DICT-02; UX.md R5 "Search by name or pinyin initials"
    head = as_user(app, "report_l3")
    create(head, "CT头颅平扫（正常）", scope="public", body_part="头颅")
    create(head, "MR腰椎间盘突出", scope="public", modality="MR", body_part="腰椎")
    create(head, "超声甲状腺结节", scope="public", modality="US", body_part="甲状腺")
    create(head, "重度脂肪肝", scope="public", body_part="上腹部")

    def q(term: str) -> list[str]:
        r = head.get("/api/templates", query_string={"q": term})
        assert r.status_code == 200, r.get_json()
        return sorted(t["name"] for t in r.get_json()["items"])

    assert q("tl") == ["CT头颅平扫（正常）"]  # initials from a word inside the name
    assert q("cttl") == ["CT头颅平扫（正常）"]  # initials from the start
    assert q("toulu") == ["CT头颅平扫（正常）"]  # full pinyin
    assert q("TouLu") == ["CT头颅平扫（正常）"]  # case folded
    assert q("toulupingsao") == ["CT头颅平扫（正常）"]
    assert q("yzjp") == ["MR腰椎间盘突出"]
    assert q("jiazhuangxian") == ["超声甲状腺结节"]
    assert q("zdzfg") == ["重度脂肪肝"]  # 重 read as zhong in a term, not as the surname chong
    assert q("头颅") == ["CT头颅平扫（正常）"]  # the name itself
    assert q("ct") == ["CT头颅平扫（正常）"]  # a Latin word of the name is a syllable of its own
    assert q("jj") == ["超声甲状腺结节"]  # 结节 jie jie
    assert q("xq") == []
    assert q("颅平") == ["CT头颅平扫（正常）"]  # the name's text from inside a Han run
    assert q("ct头颅") == ["CT头颅平扫（正常）"]
    assert q("头颅平扫（正常") == ["CT头颅平扫（正常）"]  # punctuation ignored
    assert q("腰椎 间盘") == ["MR腰椎间盘突出"]
    assert q("%") == []
    assert q("_") == []


def test_bad_input_is_400_with_a_chinese_message_and_code(app: Flask) -> None:
    # WEB-05 / issue 17: over-long text, unknown modality, a part that is not a single template, a combination
    # containing another user's private template
    head = as_user(app, "report_l3")
    doc = as_user(app, "report_l1")
    other = as_user(app, "report_l1")

    def bad(resp: Any, field: str | None = None) -> dict[str, Any]:
        assert resp.status_code == 400, resp.get_json()
        out = resp.get_json()
        assert out["code"] == "validation_error"
        assert not out["message"].isascii()
        if field:
            assert field in out["details"]["fields"], out
            assert all(not m.isascii() for m in out["details"]["fields"][field])
        return out  # type: ignore[no-any-return]

    bad(doc.post("/api/templates", json=body("长" * 101)), "name")
    long_text = body("长文", sections={"findings": "见" * 20001})
    bad(doc.post("/api/templates", json=long_text), "sections.findings")
    bad(doc.post("/api/templates", json=body("未知设备", modality="XX")), "modality")
    bad(doc.post("/api/templates", json=body("未知范围", scope="world")), "scope")
    bad(doc.post("/api/templates", json=body("空白", sections={"findings": "  "})))
    bad(doc.post("/api/templates", json=body("   ")), "name")
    bad(doc.post("/api/templates", json=body("多余", owner_id=1)), "owner_id")
    a = create(doc, "胸部")
    b = create(doc, "上腹部", body_part="上腹部")
    combo = doc.post("/api/templates", json=body("胸腹", kind="combination", sections=None, parts=[a["id"], b["id"]]))
    assert combo.status_code == 201, combo.get_json()
    nested = body("组合套组合", kind="combination", sections=None, parts=[a["id"], combo.get_json()["id"]])
    out = bad(doc.post("/api/templates", json=nested))
    assert out["message"] == "组合模板只能由您可以使用的单项模板组成"
    theirs = create(other, "别人的个人模板")
    out = bad(doc.post("/api/templates", json=body("偷用", kind="combination", sections=None,
                                                    parts=[a["id"], theirs["id"]])))  # fmt: skip
    assert out["message"] == "组合模板只能由您可以使用的单项模板组成"
    shared_with_private = body("共享组合", kind="combination", scope="public", sections=None, parts=[a["id"], b["id"]])
    out = bad(head.post("/api/templates", json=shared_with_private))
    assert out["message"] == "组合模板只能由您可以使用的单项模板组成"  # doc's private parts: the head cannot see them
    mine_head = [create(head, f"科室部件{i}", scope="institution")["id"] for i in range(2)]
    own_private = create(head, "主任个人")
    out = bad(head.post("/api/templates", json=body("公共组合", kind="combination", scope="public", sections=None,
                                                     parts=[mine_head[0], own_private["id"]])))  # fmt: skip
    assert out["message"] == "共享的组合模板不能包含个人模板“主任个人”"
    bad(doc.post("/api/templates", json=body("一个部件", kind="combination", sections=None, parts=[a["id"]])))
    bad(doc.post("/api/templates", json=body("重复", kind="combination", sections=None, parts=[a["id"], a["id"]])))
    bad(doc.post("/api/templates", json=body("无部件", kind="combination", sections=None)), "parts")
    bad(doc.get("/api/templates?modality=XX"), "modality")
    bad(doc.get("/api/templates?tab=everything"), "tab")
    bad(doc.put(f"/api/templates/{a['id']}", json=body("改", kind="combination", parts=[b["id"], mine_head[0]],
                                                        sections=None, version=1)))  # fmt: skip


def test_search_is_one_range_over_the_key_index(app: Flask) -> None:
    # issue 17: 5,000 templates searched in a few ms on both databases — the plan starts from the key index
    from sqlalchemy import func, text

    head = as_user(app, "report_l3")
    create(head, "CT头颅平扫（正常）", scope="public", body_part="头颅")
    actor = Actor(head.user.id, head.user.username, institution_id=1, institution_kind="central",
                  permissions=frozenset({"menu.templates"}))  # fmt: skip
    with app.app_context():
        s = uow.session()
        for term in ("tl", "头颅"):
            stmt = queries.scoped(select(func.count()).select_from(queries.T), actor, q=term)
            sql = str(stmt.compile(s.get_bind(), compile_kwargs={"literal_binds": True}))
            if s.get_bind().dialect.name == "postgresql":
                s.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table: make the planner show its option
                plan = " ".join(s.execute(text(f"EXPLAIN {sql}")).scalars())
                assert "pk_report_template_key" in plan, plan
            else:
                plan = " ".join(str(r[-1]) for r in s.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
                assert "SEARCH report_template_key USING COVERING INDEX" in plan, plan
                assert "SEARCH report_template USING INTEGER PRIMARY KEY" in plan, plan
            assert s.execute(stmt).scalar_one() == 1
        s.rollback()
