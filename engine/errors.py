"""Domain errors: a machine code plus a Chinese message; api/errors.py maps them to HTTP."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base error of the engine layer. `code` is stable, `message` is shown to users (Chinese)."""

    status = 400

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or {}


class ValidationFailed(DomainError):
    status = 400


class AuthenticationFailed(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404

    def __init__(self, code: str = "not_found", message: str = "对象不存在", details: dict[str, Any] | None = None):
        super().__init__(code, message, details)


class Conflict(DomainError):
    status = 409


class Locked(DomainError):
    status = 423


class RateLimited(DomainError):
    status = 429


class ServiceUnavailable(DomainError):
    status = 503
