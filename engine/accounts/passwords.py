"""Password hashing (Argon2id) and the password policy (REQ: AUTH-02, AUTH-03, AUTH-07)."""

from __future__ import annotations

import functools
import secrets
import string
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from engine import config
from engine.errors import ValidationFailed

MAX_PASSWORD_LENGTH = 128
MIN_LENGTH = 8
MIN_ADMIN_LENGTH = 12


@functools.lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)


def hasher() -> PasswordHasher:
    s = config.current()
    return _hasher(s.argon2_time_cost, s.argon2_memory_kib)


@functools.lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_kib: int) -> str:
    return _hasher(time_cost, memory_kib).hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant-work verify: an unknown user is checked against a dummy hash (REQ: AUTH-04)."""
    if len(password) > MAX_PASSWORD_LENGTH:  # length checked before hashing (AUTH-02)
        return False
    s = config.current()
    target = stored_hash or _dummy_hash(s.argon2_time_cost, s.argon2_memory_kib)
    try:
        ok = hasher().verify(target, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and stored_hash is not None


@functools.lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The 10,000 most common passwords, from the zxcvbn frequency lists."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(w.lower() for w in FREQUENCY_LISTS["passwords"][:10000])


_LEET = str.maketrans(
    {
        "@": "a",
        "4": "a",
        "$": "s",
        "5": "s",
        "0": "o",
        "1": "i",
        "!": "i",
        "3": "e",
        "7": "t",
        "+": "t",
        "8": "b",
        "9": "g",
        "2": "z",
    }
)


def _is_common(lowered: str) -> bool:
    """Common as typed, with digits/symbols appended, or in leetspeak ("Pa$$w0rd!", "iloveyou1A!")."""
    common = common_passwords()
    suffix = string.punctuation + string.digits
    leet = lowered.translate(_LEET)
    candidates = {
        lowered,
        lowered.rstrip(suffix),
        leet,
        leet.rstrip(suffix),
        leet.rstrip(suffix + "iagozbset"),  # trailing "1A!" reads as letters once de-leeted
    }
    return any(len(c) >= 4 and c in common for c in candidates)


def normalise_username(username: str) -> str:
    """NFKC + casefold + trim (REQ: AUTH-01): "Admin", "admin " and full-width "ａｄｍｉｎ" are one name."""
    return unicodedata.normalize("NFKC", username).casefold().strip()


def policy_violations(password: str, username: str | None, *, admin: bool = False) -> list[str]:
    """Every rule the password breaks, as Chinese sentences; empty when it is acceptable (AUTH-02)."""
    problems: list[str] = []
    if len(password) > MAX_PASSWORD_LENGTH:
        return [f"密码长度不能超过 {MAX_PASSWORD_LENGTH} 个字符"]
    if "\x00" in password:
        problems.append("密码不能包含空字符")
    minimum = MIN_ADMIN_LENGTH if admin else MIN_LENGTH
    if len(password) < minimum:
        problems.append(f"密码长度至少 {minimum} 个字符")
    classes = sum(
        [
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        ]
    )
    if classes < 3:
        problems.append("密码须包含大写字母、小写字母、数字、符号中的至少三类")
    if username:
        norm_user = normalise_username(username)
        if norm_user and norm_user in normalise_username(password):
            problems.append("密码不能包含用户名")
    lowered = password.lower()
    if _is_common(lowered):
        problems.append("密码过于常见，请换一个")
    return problems


def check_policy(password: str, username: str | None, *, admin: bool = False) -> None:
    """Raises:
    ValidationFailed: code ``password_policy`` with the broken rules in ``details.rules``.
    """
    problems = policy_violations(password, username, admin=admin)
    if problems:
        raise ValidationFailed("password_policy", "密码不符合安全策略：" + "；".join(problems), {"rules": problems})


def generate_temporary_password() -> str:
    """A random password that satisfies the admin policy; the user must change it at first login."""
    alphabet = string.ascii_letters + string.digits
    while True:
        core = "".join(secrets.choice(alphabet) for _ in range(14))
        candidate = core + secrets.choice("!@#$%^&*") + secrets.choice(string.digits)
        if not policy_violations(candidate, None, admin=True):
            return candidate
