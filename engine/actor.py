"""Who is acting: passed into every service instead of reading the request (STYLE.md §2)."""

from __future__ import annotations

from dataclasses import dataclass, field

ADMIN_ROLES = frozenset({"sys_admin", "sec_admin", "audit_admin"})


@dataclass(frozen=True)
class Actor:
    """The authenticated (or anonymous) caller of a service, with request metadata for the audit log."""

    user_id: int | None
    username: str | None
    institution_id: int | None = None
    institution_kind: str | None = None
    institution_code: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    permissions: frozenset[str] = field(default_factory=frozenset)
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    session_id: str | None = None
    client_id: str | None = None  # an OAuth client's token (engine/oauth/tokens.py): the client it was issued to

    @classmethod
    def anonymous(cls, ip: str | None = None, user_agent: str | None = None, request_id: str | None = None) -> Actor:
        return cls(user_id=None, username=None, ip=ip, user_agent=user_agent, request_id=request_id)

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(user_id=None, username=name)

    @property
    def is_central(self) -> bool:
        return self.institution_kind == "central"

    def has(self, permission: str) -> bool:
        return permission in self.permissions
