"""The phrase library (常用词库, issue 17; UX.md R6): personal and shared phrases, Ctrl+1..9 shortcuts unique per user
among their own and the shared ones, search by text or pinyin initials, template.manage for shared phrases."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask

from tests.factories import Session, as_user, audit_count, make_user


def _items(sess: Session, q: str | None = None) -> list[dict[str, Any]]:
    r = sess.get("/api/phrases", query_string={"q": q} if q else None)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]  # type: ignore[no-any-return]


def test_phrase_crud_search_and_visibility(app: Flask) -> None:
    head = as_user(app, "report_l3")
    doc = as_user(app, "report_l1")
    other = as_user(app, "report_l2")
    r = doc.post("/api/phrases", json={"text": "未见明显异常。", "scope": "private", "shortcut": 1})
    assert r.status_code == 201, r.get_json()
    mine = r.get_json()
    assert mine == {"id": mine["id"], "text": "未见明显异常。", "scope": "private", "shortcut": 1, "pinyin": "wjmxyc"}
    shared = head.post("/api/phrases", json={"text": "请结合临床。", "scope": "shared", "shortcut": 2}).get_json()
    assert [p["text"] for p in _items(doc)] == ["未见明显异常。", "请结合临床。"]  # by shortcut
    assert [p["text"] for p in _items(other)] == ["请结合临床。"]  # another's private phrase is theirs alone
    assert [p["text"] for p in _items(doc, "wj")] == ["未见明显异常。"]  # pinyin initials
    assert [p["text"] for p in _items(doc, "jhlc")] == ["请结合临床。"]
    assert [p["text"] for p in _items(doc, "临床")] == ["请结合临床。"]  # the text itself
    assert _items(doc, "%") == []
    r = doc.put(f"/api/phrases/{mine['id']}", json={"text": "双肺未见明显异常。", "shortcut": None})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["shortcut"] is None
    assert r.get_json()["pinyin"] == "sfwjmxyc"
    assert other.put(f"/api/phrases/{mine['id']}", json={"text": "x"}).status_code == 404
    assert other.delete(f"/api/phrases/{mine['id']}").status_code == 404
    assert doc.delete(f"/api/phrases/{mine['id']}").status_code == 204
    assert [p["id"] for p in _items(doc)] == [shared["id"]]
    assert audit_count(app, "phrase_created") == 2
    assert audit_count(app, "phrase_updated") == 1
    assert audit_count(app, "phrase_deleted") == 1
    member = as_user(app, "requester", institution_code="M01")
    assert member.get("/api/phrases").status_code == 403


def test_shared_phrases_need_template_manage(app: Flask) -> None:
    head = as_user(app, "report_l3")
    doc = as_user(app, "report_l1")
    r = doc.post("/api/phrases", json={"text": "共享短语", "scope": "shared"})
    assert r.status_code == 403
    assert r.get_json()["code"] == "forbidden"
    assert r.get_json()["details"] == {"permission": "template.manage"}
    shared = head.post("/api/phrases", json={"text": "共享短语", "scope": "shared"}).get_json()
    assert doc.put(f"/api/phrases/{shared['id']}", json={"text": "改"}).status_code == 403
    assert doc.delete(f"/api/phrases/{shared['id']}").status_code == 403
    own = doc.post("/api/phrases", json={"text": "我的", "scope": "private"}).get_json()
    assert doc.put(f"/api/phrases/{own['id']}", json={"scope": "shared"}).status_code == 403  # sharing is managing


def test_shortcuts_are_unique_among_own_and_shared(app: Flask) -> None:
    # UX.md R6: Ctrl+1..9 name one phrase each for a user
    head = as_user(app, "report_l3")
    doc = as_user(app, "report_l1")
    other = as_user(app, "report_l1")
    assert doc.post("/api/phrases", json={"text": "一", "shortcut": 1}).status_code == 201
    r = doc.post("/api/phrases", json={"text": "二", "shortcut": 1})
    assert r.status_code == 409
    assert r.get_json()["code"] == "shortcut_taken"
    assert r.get_json()["message"] == "快捷键 Ctrl+1 已用于短语“一”"
    assert other.post("/api/phrases", json={"text": "他的一", "shortcut": 1}).status_code == 201  # per user
    assert head.post("/api/phrases", json={"text": "共享三", "scope": "shared", "shortcut": 3}).status_code == 201
    r = doc.post("/api/phrases", json={"text": "我的三", "shortcut": 3})
    assert r.status_code == 409  # a shared phrase holds Ctrl+3 for everyone
    assert r.get_json()["code"] == "shortcut_taken"
    two = doc.post("/api/phrases", json={"text": "二", "shortcut": 2}).get_json()
    r = doc.put(f"/api/phrases/{two['id']}", json={"shortcut": 1})
    assert r.status_code == 409
    assert doc.put(f"/api/phrases/{two['id']}", json={"shortcut": 2, "text": "二（改）"}).status_code == 200  # own key
    # A shared phrase given a key a user already uses for their own: the user's own keeps it in their list.
    assert head.post("/api/phrases", json={"text": "共享一", "scope": "shared", "shortcut": 1}).status_code == 201
    keys = {p["text"]: p["shortcut"] for p in _items(doc)}
    assert keys == {"一": 1, "二（改）": 2, "共享三": 3, "共享一": None}
    assert {p["text"]: p["shortcut"] for p in _items(head)}["共享一"] == 1
    for bad in (0, 10, "一"):
        r = doc.post("/api/phrases", json={"text": "坏", "shortcut": bad})
        assert r.status_code == 400
        assert r.get_json()["code"] == "validation_error"
    r = doc.post("/api/phrases", json={"text": "长" * 501})
    assert r.status_code == 400
    assert r.get_json()["details"]["fields"]["text"] == ["短语须为 1 到 500 个字"]
    assert doc.post("/api/phrases", json={"text": "   "}).status_code == 400


@pytest.mark.copied_db  # real threads, each request on its own connection
def test_r6_two_requests_taking_one_shortcut_at_once_get_one_201_and_409s_never_a_500(app: Flask) -> None:
    user = make_user(app, "report_l1")
    sessions = [Session(app.test_client(), user) for _ in range(6)]
    barrier = threading.Barrier(len(sessions))
    statuses: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def take(i: int, sess: Session) -> None:
        barrier.wait()
        r = sess.post("/api/phrases", json={"text": f"短语{i}", "scope": "private", "shortcut": 3})
        with lock:
            statuses.append((r.status_code, (r.get_json() or {}).get("code")))

    threads = [threading.Thread(target=take, args=(i, s)) for i, s in enumerate(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses, key=lambda x: x[0]) == [(201, None)] + [(409, "shortcut_taken")] * (len(sessions) - 1)
    assert [p["shortcut"] for p in _items(sessions[0])] == [3]
