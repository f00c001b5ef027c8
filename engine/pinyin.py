"""Pinyin initials of names (拼音首字母), stored next to a name so lists find 张三 by typing "zs" (issue 14).

`initials("张三丰") == "zsf"`. Han characters give the first letter of their pinyin; letters and digits of any
other script are kept, lowercased ("John Smith 2号" -> "johnsmith2h"); spaces, the middle dot of transcribed names
(买买提·艾力) and other punctuation are dropped, so the stored key holds only letters and digits.

A name's first character is read as a surname: pypinyin reads 单 as dan, 曾 as ceng, 解 as jie, but as surnames
they are shan, zeng, xie. pypinyin 0.55 has no surname mode, so the polyphonic surnames are listed here
(SURNAMES, COMPOUND_SURNAMES); the rest of the name is read by pypinyin on its own, so a surname is never glued
to the given name as a phrase.

`keep_initials(Model.name, "name_pinyin")` keeps the stored key current on every ORM path (constructor, rename,
seed, demo, admin edit): an attribute "set" listener, so the key is right as soon as the name is assigned, without
each service having to remember it. Bulk SQL that bypasses the ORM (benchmark seeding) gets the column's server
default '' and is simply not found by initials.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from pypinyin import Style, lazy_pinyin
from sqlalchemy import event
from sqlalchemy.orm import InstrumentedAttribute

# Single-character surnames whose surname reading differs from pypinyin's default reading (initial letter of the
# surname reading is what is stored; the full reading documents the choice). Where both readings are common
# surnames (乐 le/yue, 覃 tan/qin, 沈), pypinyin's default is kept, except for the few listed with their common
# surname reading.
SURNAMES: dict[str, str] = {
    "单": "shan",
    "曾": "zeng",
    "解": "xie",
    "仇": "qiu",
    "区": "ou",
    "朴": "piao",
    "查": "zha",
    "盖": "ge",
    "翟": "zhai",
    "缪": "miao",
    "秘": "bi",
    "种": "chong",
    "召": "shao",
    "繁": "po",
    "员": "yun",
    "句": "gou",
    "阚": "kan",
    "隗": "wei",
    "薄": "bo",
    "祭": "zhai",
    "洗": "xian",
    "折": "she",
    "能": "nai",
    "蕃": "pi",
    "长": "chang",
    "重": "chong",
    "藏": "zang",
    "都": "du",
    "宓": "fu",
    "颉": "xie",
    "佴": "nai",
    "卜": "bu",
    "便": "pian",
    "黑": "he",
}

# Two-character surnames (复姓), read as one.
COMPOUND_SURNAMES: dict[str, tuple[str, str]] = {
    "尉迟": ("yu", "chi"),
    "万俟": ("mo", "qi"),
    "单于": ("chan", "yu"),
    "澹台": ("tan", "tai"),
    "长孙": ("zhang", "sun"),
    "令狐": ("ling", "hu"),
}

_HAN_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_HAN = re.compile(f"[{_HAN_CLASS}]")
_RUNS = re.compile(f"[{_HAN_CLASS}]+|[^{_HAN_CLASS}]+")
# What a search term must look like to be matched against stored initials (see search_key).
_KEY = re.compile(r"^[a-z0-9]+$")
# Order of the characters a stored key holds, for the upper bound of a prefix range (see prefix_range).
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _is_han(ch: str) -> bool:
    return _HAN.match(ch) is not None


def _keep(text: str) -> str:
    """Letters and digits of `text`, lowercased; everything else dropped."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def initials(name: str | None, max_length: int = 64) -> str:
    """The pinyin initials of a name, lowercased, letters and digits only, at most `max_length` characters.

    "张三丰" -> "zsf", "单田芳" -> "stf" (surname reading), "李 明" -> "lm", "John Smith" -> "johnsmith"."""
    if not name:
        return ""
    text = unicodedata.normalize("NFKC", name).strip()
    parts: list[str] = []
    if text[:2] in COMPOUND_SURNAMES:
        parts.extend(s[0] for s in COMPOUND_SURNAMES[text[:2]])
        text = text[2:]
    elif text[:1] in SURNAMES:
        parts.append(SURNAMES[text[0]][0])
        text = text[1:]
    # Han runs are read by pypinyin as phrases (one syllable per character); other runs are kept as they are.
    for run in _RUNS.findall(text):
        if _is_han(run[0]):
            parts.extend(syllable[0] for syllable in lazy_pinyin(run, style=Style.NORMAL) if syllable.isalpha())
        else:
            parts.append(_keep(run))
    return "".join(parts)[:max_length]


def search_key(q: str | None) -> str | None:
    """The form of a search term compared with stored initials, or None when it cannot be initials.

    Only Latin letters and digits (spaces ignored, case folded: "Z S" -> "zs") can be initials. A term with Han
    characters is a name, and one with punctuation ('%', '_', quotes) is matched literally by the name column
    alone (WEB-03), so neither is compared with initials."""
    if not q:
        return None
    key = "".join(unicodedata.normalize("NFKC", q).split()).lower()
    return key if _KEY.match(key) else None


def prefix_range(key: str) -> tuple[str, str | None]:
    """[low, high) such that a stored key starts with `key` exactly when low <= stored < high.

    The bound is the next string in the keys' own alphabet ("zs" -> "zt", "z9" -> "za", "az" -> "b"), not "zs"
    followed by a sentinel character, so the range means "starts with" under any collation that orders letters
    and digits the usual way (PostgreSQL's default collation included) and a plain B-tree index serves it.
    high is None when every character is the last of the alphabet ("zz": everything from "zz" on)."""
    chars = list(key)
    while chars:
        pos = _ALPHABET.find(chars[-1])
        if 0 <= pos < len(_ALPHABET) - 1:
            chars[-1] = _ALPHABET[pos + 1]
            return key, "".join(chars)
        chars.pop()
    return key, None


def matches_prefix(column: Any, key: str) -> Any:
    """SQL condition: `column` (a stored initials key) starts with `key` (from search_key), as an index range."""
    low, high = prefix_range(key)
    return (column >= low) if high is None else ((column >= low) & (column < high))


def keep_initials(source: InstrumentedAttribute[str], target: str, max_length: int = 64) -> None:
    """Whenever `source` (a name attribute) is assigned through the ORM, set attribute `target` to its initials."""

    def _on_set(obj: Any, value: str | None, _old: Any, _initiator: Any) -> None:
        setattr(obj, target, initials(value, max_length))

    event.listen(source, "set", _on_set)
