"""Institutions, departments, users, roles, permissions and server-side sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base, UTCDateTime, utcnow
from engine.pinyin import keep_initials

INSTITUTION_KINDS = ("central", "member")
REVIEW_STATUSES = ("pending", "approved", "rejected")


class Institution(Base):
    """A hospital of the alliance: the central hospital or a member hospital (上级/下级医院)."""

    __tablename__ = "institution"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    name_pinyin: Mapped[str] = mapped_column(String(128), default="", server_default=text("''"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("institution.id"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    departments: Mapped[list[Department]] = relationship(
        back_populates="institution", order_by="Department.id", lazy="selectin"
    )


keep_initials(Institution.name, "name_pinyin", 128)


class Department(Base):
    """A department (科室) of an institution."""

    __tablename__ = "department"
    __table_args__ = (UniqueConstraint("institution_id", "code", name="uq_department_institution_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128))

    institution: Mapped[Institution] = relationship(back_populates="departments")


user_role = Table(
    "user_role",
    Base.metadata,
    Column("user_id", ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("role.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Permission(Base):
    """A menu or function permission; the catalogue lives in engine/accounts/permissions.py."""

    __tablename__ = "permission"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # menu | function
    parent_code: Mapped[str | None] = mapped_column(String(64))
    domain: Mapped[str] = mapped_column(String(16))  # common | sys | sec | audit | clinical
    sort: Mapped[int] = mapped_column(Integer, default=0)


class RolePermission(Base):
    __tablename__ = "role_permission"

    role_id: Mapped[int] = mapped_column(ForeignKey("role.id", ondelete="CASCADE"), primary_key=True)
    permission_code: Mapped[str] = mapped_column(ForeignKey("permission.code", ondelete="CASCADE"), primary_key=True)


class Role(Base):
    """A role: built-in (the catalogue of ARCHITECTURE.md) or defined per institution (REQ: ACCT-01/02)."""

    __tablename__ = "role"
    __table_args__ = (UniqueConstraint("institution_id", "code", name="uq_role_institution_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institution.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    institution: Mapped[Institution | None] = relationship(lazy="joined")
    permissions: Mapped[list[RolePermission]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    @property
    def permission_codes(self) -> list[str]:
        return sorted(p.permission_code for p in self.permissions)


class User(Base):
    """A person's account. PII is stored encrypted with a masked copy for display (REQ: PII-02, CRY-03)."""

    __tablename__ = "user_account"
    __table_args__ = (
        # Match the ORDER BY of the lists (migration 0002, measured by bench/bench_api.py): review lists sort by
        # submission time, centrally and per hospital; a member hospital's user list sorts by id.
        Index("ix_user_account_review_submitted", "review_status", "submitted_at", "id"),
        Index("ix_user_account_inst_review_submitted", "institution_id", "review_status", "submitted_at", "id"),
        Index("ix_user_account_inst_id", "institution_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    username_norm: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(64), index=True)
    name_pinyin: Mapped[str] = mapped_column(String(64), default="", server_default=text("''"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    title: Mapped[str] = mapped_column(String(64), default="")
    phone_enc: Mapped[str | None] = mapped_column(Text)
    phone_masked: Mapped[str | None] = mapped_column(String(32))
    id_number_enc: Mapped[str | None] = mapped_column(Text)
    id_number_masked: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    must_change_password: Mapped[str | None] = mapped_column(String(32))  # first_login | admin_reset | None
    review_status: Mapped[str] = mapped_column(String(16), default="pending")
    registration_source: Mapped[str] = mapped_column(String(16), default="self")  # self | admin | cli | demo
    reject_reason: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(32))
    totp_secret_enc: Mapped[str | None] = mapped_column(Text)
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_ip: Mapped[str | None] = mapped_column(String(64))
    failed_logins_since_last: Mapped[int] = mapped_column(Integer, default=0)
    last_active_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    institution: Mapped[Institution] = relationship(lazy="joined")
    department: Mapped[Department | None] = relationship(lazy="joined")
    roles: Mapped[list[Role]] = relationship(secondary=user_role, lazy="selectin", order_by="Role.id")
    reviewed_by: Mapped[User | None] = relationship(remote_side=[id], foreign_keys=[reviewed_by_id])

    @property
    def role_codes(self) -> set[str]:
        return {r.code for r in self.roles if r.enabled}


keep_initials(User.full_name, "name_pinyin")


class PasswordHistory(Base):
    """Previous password hashes, for the "last 5 not reused" rule (REQ: AUTH-03)."""

    __tablename__ = "password_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LoginThrottle(Base):
    """Failure counter per normalised username, whether or not the account exists (REQ: AUTH-04)."""

    __tablename__ = "login_throttle"

    username_norm: Mapped[str] = mapped_column(String(160), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UserSession(Base):
    """A server-side session (REQ: SESS-01). The cookie holds a random token; we keep only its SHA-256."""

    __tablename__ = "user_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(token) hex
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(32))  # mfa_required | password_change_required | active
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    auth_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    # What the user is shown after logging in (AUTH-10): the previous login and failures since then.
    prev_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    prev_login_ip: Mapped[str | None] = mapped_column(String(64))
    failed_before_login: Mapped[int] = mapped_column(Integer, default=0)

    user: Mapped[User] = relationship(lazy="joined")
