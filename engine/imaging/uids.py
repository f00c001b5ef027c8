"""DICOM UID validation and normalisation (PS3.5 §9.1; REQ: DSEC-04)."""

from __future__ import annotations

import re

# PS3.5 §9.1: components of digits separated by "."; a component is "0" or has no leading zero; at most 64 chars.
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
MAX_UID_LENGTH = 64


def normalise_uid(value: object) -> str | None:
    """The UID in `value` with its legal padding (trailing NUL or space) removed, or None when it does not conform.

    Only ASCII digits count: full-width or Arabic-Indic digits, letters, slashes, `..`, empty components, a
    trailing dot, leading zeros and anything longer than 64 characters are refused.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    text = str(value).rstrip("\x00 ")
    if not text or len(text) > MAX_UID_LENGTH or not text.isascii():
        return None
    if not _UID.fullmatch(text):
        return None
    return text


def is_valid_uid(value: object) -> bool:
    return normalise_uid(value) is not None
