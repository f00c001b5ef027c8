"""Unit tests of engine/accounts/passwords.py: username normalisation and the password policy (AUTH-01, AUTH-02)."""

from __future__ import annotations

import pytest

from engine.accounts.passwords import (
    MAX_PASSWORD_LENGTH,
    generate_temporary_password,
    normalise_username,
    policy_violations,
)

# Each violation message is a Chinese sentence; these fragments name the rule it states.
RULE_FRAGMENTS = {
    "max": "不能超过",
    "nul": "空字符",
    "len": "长度至少",
    "classes": "至少三类",
    "username": "用户名",
    "common": "常见",
}


def rules_of(messages: list[str]) -> set[str]:
    found = {key for key, fragment in RULE_FRAGMENTS.items() if any(fragment in m for m in messages)}
    assert len(found) == len(messages), messages  # every message maps to exactly one rule
    return found


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("admin", "admin"),
        ("Admin", "admin"),
        ("ADMIN", "admin"),
        ("admin ", "admin"),
        ("  admin\t", "admin"),
        ("ａｄｍｉｎ", "admin"),  # full-width letters (NFKC)
        ("ＡＤＭＩＮ", "admin"),
        ("Straße", "strasse"),  # casefold, not lower
        ("ﬁle", "file"),  # ligature (NFKC)
        ("张三", "张三"),
        ("doctor_01", "doctor_01"),
        ("\u2126mega", "ωmega"),  # OHM SIGN → Ω → ω
    ],
)
def test_auth01_normalise_username(raw: str, expected: str) -> None:
    assert normalise_username(raw) == expected


def test_auth01_normalised_variants_collide() -> None:
    variants = {"admin", "Admin", "admin ", "ａｄｍｉｎ", " ADMIN"}
    assert {normalise_username(v) for v in variants} == {"admin"}


LONG_OK = "Aa1!" * 32  # exactly MAX_PASSWORD_LENGTH

POLICY_TABLE: list[tuple[str, str | None, bool, set[str]]] = [
    # (password, username, admin, rules broken — empty set means accepted)
    ("Xk9#mQ2!vR7p", None, False, set()),
    ("Xk9#mQ2!", None, False, set()),  # exactly 8, four classes
    ("Xk9#mQ2", None, False, {"len"}),  # 7 characters
    ("", None, False, {"len", "classes"}),
    ("xk9mq2vr7p", None, False, {"classes"}),  # lower + digit only
    ("XK9MQ2VR7P!", None, False, set()),  # upper + digit + symbol
    ("xk9#mq2!vr7p", None, False, set()),  # lower + digit + symbol
    ("Xk9mQ2vR7p", None, False, set()),  # upper + lower + digit
    ("Xk#mQ!vR?p", None, False, set()),  # upper + lower + symbol
    ("XKMQVRPZ", None, False, {"classes"}),  # one class
    ("Password1!", None, False, {"common"}),  # "password" + digits/punctuation
    ("Qwerty123!", None, False, {"common"}),
    ("Dragon2024!!", None, False, {"common"}),
    ("Monkey!!99", None, False, {"common"}),
    ("iloveyou", None, False, {"classes", "common"}),
    ("12345678", None, False, {"classes", "common"}),
    ("zhangsan#2026A", "zhangsan", False, {"username"}),
    ("ZhangSan#2026A", "zhangsan", False, {"username"}),  # case-insensitive
    ("ｚｈａｎｇｓａｎ#2026A", "zhangsan", False, {"username"}),  # full-width in the password
    ("Xk9#zhangsan", "ZHANGSAN ", False, {"username"}),  # username normalised too
    ("Admin#2026xyz", None, False, set()),  # no username to compare against
    ("Admin#2026xyz", "admin", False, {"username"}),
    ("Admin#2026xyz", "", False, set()),  # empty username is not "contained"
    ("Xk9#mQ2!vR7p", None, True, set()),  # admin: 12 is enough
    ("Xk9#mQ2!vR7", None, True, {"len"}),  # admin: 11 is not
    ("Xk9#mQ2!", None, True, {"len"}),
    (LONG_OK, None, False, set()),  # 128 is the maximum
    (LONG_OK + "x", None, False, {"max"}),  # 129: only the length rule is reported (no hashing)
    ("A" * 1_000_000, None, True, {"max"}),  # 1 MB
    ("Xk9#mQ2!\x00vR", None, False, {"nul"}),
    ("医院Xk9#mQ2", None, False, set()),  # CJK letters count towards length
    ("密码密码密码密码", None, False, {"classes"}),  # CJK only: no class
    ("        ", None, False, {"classes"}),  # spaces: symbol class only
    ("Ab1 Ab1 Ab1", None, False, set()),
    ("Aa1!Aa1!", None, False, set()),
    ("xk9#mq2", "bob", True, {"len"}),  # short admin password, 3 classes, no username
]


def test_auth02_policy_table_has_at_least_30_cases() -> None:
    assert len(POLICY_TABLE) >= 30
    assert any(not expected for *_, expected in POLICY_TABLE)
    assert any(expected for *_, expected in POLICY_TABLE)


@pytest.mark.parametrize(("password", "username", "admin", "expected"), POLICY_TABLE)
def test_auth02_policy_violations(password: str, username: str | None, admin: bool, expected: set[str]) -> None:
    assert rules_of(policy_violations(password, username, admin=admin)) == expected


def test_auth02_max_length_constant() -> None:
    assert MAX_PASSWORD_LENGTH == 128
    assert len(LONG_OK) == MAX_PASSWORD_LENGTH


def test_auth03_temporary_password_always_passes_admin_policy() -> None:
    seen = set()
    for _ in range(300):
        pw = generate_temporary_password()
        assert policy_violations(pw, None, admin=True) == []
        assert 12 <= len(pw) <= MAX_PASSWORD_LENGTH
        seen.add(pw)
    assert len(seen) == 300  # random, never repeated
