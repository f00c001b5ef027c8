"""Pinyin search keys of template names (issue 17; REQ: DICT-02; UX.md R5 "search by name or pinyin initials").

A name is read as syllables: each Han character gives its pinyin (pypinyin, the phrase reading), each run of Latin
letters or digits is one syllable of its own ("CT", "T2", "3D"); punctuation and spaces are dropped. For every
syllable position the suffix of the initials and the suffix of the full pinyin are keys, so a query typed from the
start of any word of the name is a prefix of some key:

    "CT头颅平扫" -> syllables ct tou lu ping sao
    initials keys  cttlps, tlps, lps, ps, s      full keys  cttoulupingsao…, toulupingsao, lupingsao, pingsao, sao

"tl", "toulu", "ctt" and "ps" all find it, and so do "头颅", "颅平" and "CT头颅": the name's own text is keyed from
each Han character and each Latin word on. Every search is one range over the key table's primary key (key_range; a
B-tree range, no scan of names). Unlike people's names (engine/pinyin.py `initials`), no surname reading is
applied: 重度 is zhong du here, not chong.
"""

from __future__ import annotations

import re
import unicodedata

from pypinyin import Style, lazy_pinyin

from engine.templates.models import KEY_MAX

_HAN_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKENS = re.compile(f"[{_HAN_CLASS}]+|[a-z0-9]+")


def syllables(name: str) -> list[tuple[str, str]]:
    """(initials part, full part) per syllable: a Han character's first letter and pinyin, a Latin run twice."""
    text = unicodedata.normalize("NFKC", name or "").lower()
    out: list[tuple[str, str]] = []
    for token in _TOKENS.findall(text):
        if token[0].isascii():
            out.append((token, token))
            continue
        for syl in lazy_pinyin(token, style=Style.NORMAL):
            syl = "".join(ch for ch in syl if ch.isascii() and ch.isalnum())
            if syl:
                out.append((syl[0], syl))
    return out


def initials(name: str, max_length: int = KEY_MAX) -> str:
    """The name's pinyin initials ("CT头颅平扫" -> "cttlps"), as shown to the client (`pinyin`)."""
    return "".join(i for i, _ in syllables(name))[:max_length]


def text_key(text: str) -> str:
    """A name or search term as compared with text keys: Han characters, letters and digits, lowercased."""
    return "".join(_TOKENS.findall(unicodedata.normalize("NFKC", text or "").lower()))


def keys(name: str) -> set[str]:
    """Every search key of a name: the initials and full-pinyin suffixes from each syllable on, and the name's own
    text (text_key) from each Han character and each Latin word on, so "头颅", "颅平扫" and "ct头颅" are prefixes."""
    syls = syllables(name)
    out: set[str] = set()
    for start in range(len(syls)):
        rest = syls[start:]
        out.add("".join(i for i, _ in rest)[:KEY_MAX])
        out.add("".join(f for _, f in rest)[:KEY_MAX])
    text = text_key(name)
    for pos, ch in enumerate(text):
        if not ch.isascii() or pos == 0 or not text[pos - 1].isascii():
            out.add(text[pos:][:KEY_MAX])
    out.discard("")
    return out


def key_range(term: str) -> tuple[str, str] | None:
    """[low, high) of the keys a search term is a prefix of, or None when the term holds nothing to search by.

    Keys compare by code point (the column's collation is "C" on PostgreSQL, binary on SQLite), so every string that
    starts with `low` sorts below `low` + U+10FFFF."""
    low = text_key(term)
    return (low, low + "\U0010ffff") if low else None
