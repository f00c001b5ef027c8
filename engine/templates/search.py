"""Pinyin search keys of template names (issue 17; REQ: DICT-02; UX.md R5 "search by name or pinyin initials").

A name is read as syllables: each Han character gives its pinyin (pypinyin, the phrase reading), each run of Latin
letters or digits is one syllable of its own ("CT", "T2", "3D"); punctuation and spaces are dropped. For every
syllable position the suffix of the initials and the suffix of the full pinyin are keys, so a query typed from the
start of any word of the name is a prefix of some key:

    "CT头颅平扫" -> syllables ct tou lu ping sao
    initials keys  cttlps, tlps, lps, ps, s      full keys  cttoulupingsao…, toulupingsao, lupingsao, pingsao, sao

"tl", "toulu", "ctt" and "ps" all find it, each through `engine.pinyin.matches_prefix` over the key table's primary
key (a B-tree range; no scan of names). Unlike people's names (engine/pinyin.py `initials`), no surname reading is
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


def keys(name: str) -> set[str]:
    """Every search key of a name: the initials and full-pinyin suffixes from each syllable on."""
    syls = syllables(name)
    out: set[str] = set()
    for start in range(len(syls)):
        rest = syls[start:]
        out.add("".join(i for i, _ in rest)[:KEY_MAX])
        out.add("".join(f for _, f in rest)[:KEY_MAX])
    out.discard("")
    return out
