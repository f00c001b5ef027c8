"""Unit tests of small security helpers: masking, field encryption, JSON depth, log neutralising, ID numbers, paging."""

from __future__ import annotations

import base64

import pytest
from cryptography.exceptions import InvalidTag

from api.security import MAX_JSON_DEPTH, json_depth_ok
from engine.accounts.queries import MAX_PAGE_SIZE, clamp_page, like_pattern
from engine.accounts.services import valid_id_number
from engine.audit import neutralise
from engine.crypto import FieldCipher, mask_id_number, mask_phone
from tests.factories import VALID_ID_NUMBERS

KEY = "unit-test-secret-key-0123456789abcdef-0123456789"


# --- PII-02 masking ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("11010519491231002X", "110105********002X"),
        ("440524188001010014", "440524********0014"),
        ("12345", "*****"),
        ("", None),
        (None, None),
    ],
)
def test_pii02_mask_id_number(value: str | None, expected: str | None) -> None:
    assert mask_id_number(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("13912345678", "139****5678"), ("13800000000", "138****0000"), ("12345", "*****"), ("", None), (None, None)],
)
def test_pii02_mask_phone(value: str | None, expected: str | None) -> None:
    assert mask_phone(value) == expected


def test_pii02_masks_hide_the_middle_digits() -> None:
    masked = mask_id_number("110101199003074477")
    assert masked is not None
    assert "19900307" not in masked
    phone = mask_phone("13912345678")
    assert phone is not None
    assert "1234" not in phone


# --- CRY-03 field encryption -------------------------------------------------------------------


def test_cry03_field_cipher_round_trip() -> None:
    c = FieldCipher(KEY)
    for text in ("JBSWY3DPEHPK3PXP", "11010519491231002X", "中文姓名 张三", "x" * 5000):
        token = c.encrypt_str(text)
        assert token is not None
        assert text not in token
        assert c.decrypt_str(token) == text
    blob = c.encrypt_bytes(b"\x00\xffphoto", aad=b"key1")
    assert c.decrypt_bytes(blob, aad=b"key1") == b"\x00\xffphoto"


def test_cry03_field_cipher_uses_fresh_nonce() -> None:
    c = FieldCipher(KEY)
    assert c.encrypt_str("same") != c.encrypt_str("same")
    assert c.encrypt_str(None) is None
    assert c.encrypt_str("") is None
    assert c.decrypt_str(None) is None
    assert c.decrypt_str("") is None


def test_cry03_field_cipher_detects_tampering() -> None:
    c = FieldCipher(KEY)
    blob = bytearray(c.encrypt_bytes(b"secret data", aad=b"k"))
    for pos in (5, len(blob) // 2, len(blob) - 1):  # nonce, body, tag
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        with pytest.raises(InvalidTag):
            c.decrypt_bytes(bytes(bad), aad=b"k")
    with pytest.raises(InvalidTag):
        c.decrypt_bytes(bytes(blob), aad=b"other")  # bound to its storage key
    with pytest.raises(InvalidTag):
        FieldCipher(KEY + "x").decrypt_bytes(bytes(blob), aad=b"k")
    with pytest.raises(ValueError, match="unknown ciphertext format"):
        c.decrypt_bytes(b"XX1" + bytes(blob[3:]), aad=b"k")
    token = c.encrypt_str("hello")
    assert token is not None
    raw = bytearray(base64.b64decode(token))
    raw[-1] ^= 0x80
    with pytest.raises(InvalidTag):
        c.decrypt_str(base64.b64encode(bytes(raw)).decode())


def test_cry03_blind_index_is_keyed_and_deterministic() -> None:
    a, b = FieldCipher(KEY), FieldCipher(KEY + "other")
    assert a.blind_index("13912345678") == a.blind_index("13912345678")
    assert a.blind_index("13912345678") != a.blind_index("13912345679")
    assert a.blind_index("13912345678") != b.blind_index("13912345678")
    assert len(a.blind_index("x")) == 64


# --- WEB-06 JSON nesting -----------------------------------------------------------------------


def nested(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        (b'{"a": [1, 2, {"b": null}]}', True),
        (nested(MAX_JSON_DEPTH), True),
        (nested(MAX_JSON_DEPTH + 1), False),
        (b'{"a":' * 40 + b"1" + b"}" * 40, False),
        (b'{"s": "' + b"[" * 100 + b'"}', True),  # brackets inside a string do not count
        (b'{"s": "\\"' + b"{" * 100 + b'"}', True),  # an escaped quote does not end the string
        (b'["\\\\", ' + nested(MAX_JSON_DEPTH) + b"]", False),  # an escaped backslash does end it
        (b'["\\\\"' + b"]", True),
        (b"]]]]]]" + nested(10), True),  # stray closers do not unlock deeper nesting
        (b'"\\u005b\\u005b"', True),
        (b"", True),
    ],
)
def test_web06_json_depth_ok(raw: bytes, ok: bool) -> None:
    assert json_depth_ok(raw) is ok


def test_web06_json_depth_custom_limit() -> None:
    assert json_depth_ok(nested(3), limit=3)
    assert not json_depth_ok(nested(4), limit=3)


# --- AUD-07 log neutralising -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("bob", "bob"),
        ("bob\r\nINFO login success", "bob\\x0d\\x0aINFO login success"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("tab\there", "tab\\x09here"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f", "del\\x7f"),
        ("abc\u202egpj.exe", "abc\\x202egpj.exe"),  # bidi override
        ("\u2066iso\u2069", "\\x2066iso\\x2069"),
        ("张三（放射科）", "张三（放射科）"),
        (None, None),
    ],
)
def test_aud07_neutralise(raw: str | None, expected: str | None) -> None:
    assert neutralise(raw) == expected


def test_aud07_neutralise_truncates_after_encoding() -> None:
    out = neutralise("\n" * 100, limit=10)
    assert out is not None
    assert len(out) == 10
    assert "\n" not in out
    assert neutralise("a" * 300) == "a" * 256


# --- ACCT-04 resident ID check digit ---------------------------------------------------------


@pytest.mark.parametrize("value", VALID_ID_NUMBERS)
def test_acct04_valid_id_numbers(value: str) -> None:
    assert valid_id_number(value)


@pytest.mark.parametrize(
    "value",
    [
        "11010519491231002x",  # lower-case check letter is accepted
        "110101199003074477",
    ],
)
def test_acct04_valid_id_number_variants(value: str) -> None:
    assert valid_id_number(value)


@pytest.mark.parametrize(
    "value",
    [
        "110105194912310021",  # wrong check digit
        "440524188001010015",
        "11010519491231002",  # 17 characters
        "1101051949123100200",  # 19 characters
        "11010519491231002Y",
        "X10105194912310021",
        "11010519491231 02X",
        "１１０１０５１９４９１２３１００２X",  # full-width digits (\d matches any Unicode digit without re.ASCII)
        "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X",  # Arabic-Indic digits
        "",
    ],
)
def test_acct04_invalid_id_numbers(value: str) -> None:
    assert not valid_id_number(value)


# --- WEB-03 LIKE patterns, WEB-06 paging -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("张三", "%张三%"),
        ("100%", "%100\\%%"),
        ("a_b", "%a\\_b%"),
        ("c:\\x", "%c:\\\\x%"),
        ("\\%_", "%\\\\\\%\\_%"),
        ("", "%%"),
    ],
)
def test_web03_like_pattern_escapes_wildcards(text: str, pattern: str) -> None:
    assert like_pattern(text) == pattern


@pytest.mark.parametrize(
    ("page", "size", "expected"),
    [
        (None, None, (1, 20)),
        (1, 20, (1, 20)),
        (0, 0, (1, 20)),
        (-5, -5, (1, 1)),
        (3, 1000, (3, MAX_PAGE_SIZE)),
        (2, 100, (2, 100)),
        (7, 1, (7, 1)),
    ],
)
def test_web06_clamp_page(page: int | None, size: int | None, expected: tuple[int, int]) -> None:
    assert clamp_page(page, size) == expected
