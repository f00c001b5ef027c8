"""engine/pinyin.py: initials of names (surname readings, mixed scripts), search keys and prefix ranges (issue 14)."""

from __future__ import annotations

import pytest

from engine.pinyin import COMPOUND_SURNAMES, SURNAMES, initials, prefix_range, search_key


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("张三丰", "zsf"),
        ("张三", "zs"),
        ("李 明", "lm"),  # spaces dropped
        ("买买提·艾力", "mmtal"),  # the middle dot of transcribed names dropped
        ("John Smith", "johnsmith"),  # Latin kept whole, lowercased
        ("Ｊｏｈｎ", "john"),  # full-width letters folded
        ("王2号", "w2h"),  # digits kept
        ("第一成员医院", "dycyyy"),
        ("", ""),
        ("   ", ""),
        (None, ""),
    ],
)
def test_initials(name: str | None, expected: str) -> None:
    assert initials(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("单田芳", "stf"),  # pypinyin alone: dan
        ("曾国藩", "zgf"),  # ceng
        ("解缙", "xj"),  # jie
        ("仇英", "qy"),  # chou
        ("区志强", "ozq"),  # qu
        ("朴信惠", "pxh"),  # pu
        ("查良镛", "zly"),  # cha
        ("翟志刚", "zzg"),  # di
        ("尉迟恭", "ycg"),  # 复姓
        ("万俟卨", "mqx"),
        ("单于", "cy"),  # 复姓 单于 (chanyu), not 单 shan + 于
    ],
)
def test_polyphonic_surnames_read_as_surnames(name: str, expected: str) -> None:
    assert initials(name) == expected


def test_surname_reading_applies_only_to_the_first_character() -> None:
    # 单 inside a given name keeps pypinyin's reading (简单 jiandan); 曾 after the surname is ceng (曾经 cengjing)
    assert initials("李简单") == "ljd"
    assert initials("王曾经") == "wcj"


def test_surname_tables_hold_one_lowercase_reading_each() -> None:
    assert all(len(k) == 1 and v.isascii() and v.isalpha() and v.islower() for k, v in SURNAMES.items())
    assert all(len(k) == 2 and len(v) == 2 for k, v in COMPOUND_SURNAMES.items())


def test_initials_respect_the_column_length() -> None:
    assert initials("张" * 200, 64) == "z" * 64
    assert initials("a" * 200, 128) == "a" * 128


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("zs", "zs"),
        ("ZS", "zs"),
        ("Z S", "zs"),
        ("Ｚｓ", "zs"),
        ("12", "12"),
        ("张", None),  # a name, matched by the name column
        ("zs张", None),
        ("zs%", None),  # punctuation: matched literally by the name column only (WEB-03)
        ("z_s", None),
        ("'", None),
        ("", None),
        ("  ", None),
        (None, None),
    ],
)
def test_search_key(q: str | None, expected: str | None) -> None:
    assert search_key(q) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [("zs", ("zs", "zt")), ("z9", ("z9", "za")), ("az", ("az", "b")), ("a", ("a", "b")), ("zz", ("zz", None))],
)
def test_prefix_range(key: str, expected: tuple[str, str | None]) -> None:
    assert prefix_range(key) == expected


def test_prefix_range_means_starts_with() -> None:
    keys = ["z", "zs", "zs0", "zsf", "zsz", "zt", "zr9", "zszz", "zz", "zzz", "a", "ys"]
    for prefix in ("zs", "z", "zz", "zsz", "y"):
        low, high = prefix_range(prefix)
        inside = sorted(k for k in keys if low <= k and (high is None or k < high))
        assert inside == sorted(k for k in keys if k.startswith(prefix)), prefix
