"""Per-user settings: effective values (user > role > institution > built-in), a user's own values, and the
institution and role defaults an administrator sets (issue 14).

A user only ever reads and writes their own values: every function here takes the actor and uses its user id and
institution, never one from the caller. Changes to defaults are audited; a user's own preferences are not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaError
from sqlalchemy import delete, select

from engine import audit, uow
from engine.accounts.models import Institution, Role, user_role
from engine.accounts.permissions import BASELINE, BUILTIN_BY_CODE, BY_CODE, CENTRAL
from engine.actor import Actor
from engine.db import upsert_insert, utcnow
from engine.errors import AuthenticationFailed, NotFound, ValidationFailed
from engine.settings import registry
from engine.settings.models import SettingDefault, UserSetting

MAX_VALUE_BYTES = 16 * 1024

USER, ROLE, INSTITUTION, BUILTIN = "user", "role", "institution", "builtin"


@dataclass(frozen=True)
class Effective:
    key: str
    value: Any
    source: str  # user | role | institution | builtin


@dataclass(frozen=True)
class RoleChoice:
    id: int
    code: str
    name: str
    menus: list[str]  # the menu codes a holder of the role opens (with the baseline ones), in catalogue order


@dataclass(frozen=True)
class DefaultRow:
    key: str
    value: Any
    role_id: int | None
    role_code: str | None
    role_name: str | None
    updated_at: Any


def _key(key: str) -> registry.SettingKey:
    found = registry.get(key)
    if found is None:
        raise NotFound("setting_unknown", "没有这项设置", {"key": key[:64]})
    return found


# jsonschema's validator names → what the user is told (the message names the place in the value, not the rule).
_ZH = {
    "type": "类型不正确",
    "enum": "取值不在允许范围内",
    "const": "取值不在允许范围内",
    "pattern": "格式不正确",
    "minLength": "不能为空",
    "maxLength": "超出长度上限",
    "minimum": "数值过小",
    "exclusiveMinimum": "数值过小",
    "maximum": "数值过大",
    "exclusiveMaximum": "数值过大",
    "required": "缺少必填项",
    "additionalProperties": "含有不允许的字段",
    "propertyNames": "名称格式不正确",
    "maxItems": "条目过多",
    "maxProperties": "条目过多",
    "uniqueItems": "含有重复项",
}


def _place(err: SchemaError) -> str:
    return ".".join(str(p) for p in err.absolute_path) or "value"


def validate(key: str, value: Any) -> Any:
    """Check `value` against the key's schema and size limit; returns the value.

    Raises:
        NotFound: `setting_unknown` — the key is not registered.
        ValidationFailed: `setting_invalid` (schema) or `setting_too_large` (over 16 KiB as JSON).
    """
    spec = _key(key)
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_VALUE_BYTES:
        raise ValidationFailed("setting_too_large", "设置内容过大", {"key": key})
    errors = sorted(spec.validator().iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
    if key.startswith("list.") and not errors:
        ids = [c["id"] for c in value]
        if len(ids) != len(set(ids)):
            raise ValidationFailed(
                "setting_invalid",
                f"“{spec.name}”的设置不正确：含有重复项",
                {"key": key, "errors": [{"path": "value", "message": "含有重复项"}]},
            )
    if errors:
        details = [{"path": _place(e), "message": _ZH.get(str(e.validator), "不符合要求")} for e in errors[:10]]
        raise ValidationFailed(
            "setting_invalid",
            f"“{spec.name}”的设置不正确：{details[0]['message']}",
            {"key": key, "errors": details},
        )
    return value


def _user_id(actor: Actor) -> int:
    if actor.user_id is None:
        raise AuthenticationFailed("unauthenticated", "请先登录或登录已超时")
    return actor.user_id


def _role_ids(user_id: int) -> list[int]:
    """The user's enabled roles, oldest first: when several of them carry a default, the oldest role's wins."""
    stmt = (
        select(Role.id)
        .join(user_role, user_role.c.role_id == Role.id)
        .where(user_role.c.user_id == user_id, Role.enabled.is_(True))
        .order_by(Role.id)
    )
    return list(uow.session().execute(stmt).scalars())


def list_effective(actor: Actor, keys: list[str] | None = None) -> list[Effective]:
    """The actor's effective value of every registered key (or of `keys`), with where each came from."""
    user_id = _user_id(actor)
    specs = [_key(k) for k in keys] if keys is not None else registry.all_keys()
    names = [s.key for s in specs]
    s = uow.session()
    own: dict[str, Any] = {
        k: v
        for k, v in s.execute(
            select(UserSetting.key, UserSetting.value).where(UserSetting.user_id == user_id, UserSetting.key.in_(names))
        ).tuples()
    }
    by_role: dict[str, Any] = {}
    by_institution: dict[str, Any] = {}
    if actor.institution_id is not None:
        role_ids = _role_ids(user_id)
        rows = s.execute(
            select(SettingDefault.key, SettingDefault.role_id, SettingDefault.value).where(
                SettingDefault.institution_id == actor.institution_id, SettingDefault.key.in_(names)
            )
        ).all()
        rank = {rid: i for i, rid in enumerate(role_ids)}
        best: dict[str, int] = {}
        for key, role_id, value in rows:
            if role_id is None:
                by_institution[key] = value
            elif role_id in rank and rank[role_id] < best.get(key, len(rank)):
                best[key] = rank[role_id]
                by_role[key] = value
    out = []
    for spec in specs:
        if spec.key in own:
            out.append(Effective(spec.key, own[spec.key], USER))
        elif spec.key in by_role:
            out.append(Effective(spec.key, by_role[spec.key], ROLE))
        elif spec.key in by_institution:
            out.append(Effective(spec.key, by_institution[spec.key], INSTITUTION))
        else:
            out.append(Effective(spec.key, spec.builtin(), BUILTIN))
    return out


def get_effective(actor: Actor, key: str) -> Effective:
    """The actor's effective value of one key.

    Raises:
        NotFound: `setting_unknown`.
    """
    return list_effective(actor, [key])[0]


def set_user_setting(actor: Actor, key: str, value: Any) -> Effective:
    """Store the actor's own value of `key` (a preference: not audited).

    Raises:
        NotFound: `setting_unknown`.
        ValidationFailed: `setting_invalid`, `setting_too_large`.
    """
    user_id = _user_id(actor)
    validate(key, value)
    s = uow.session()
    # An upsert: two tabs saving the same key at once must not fail on the primary key.
    stmt = upsert_insert(s.get_bind().dialect.name)(UserSetting).values(
        user_id=user_id, key=key, value=value, updated_at=utcnow()
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[UserSetting.user_id, UserSetting.key],
        set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
    )
    s.execute(stmt)
    return Effective(key, value, USER)


def reset_user_setting(actor: Actor, key: str) -> Effective:
    """Drop the actor's own value: the key falls back to its role, institution or built-in default.

    Raises:
        NotFound: `setting_unknown`.
    """
    user_id = _user_id(actor)
    _key(key)
    uow.session().execute(delete(UserSetting).where(UserSetting.user_id == user_id, UserSetting.key == key))
    return get_effective(actor, key)


# ---- institution and role defaults (administrators with setting.default.manage) ----------------------------------
def _institution_id(actor: Actor) -> int:
    if actor.institution_id is None:
        raise AuthenticationFailed("unauthenticated", "请先登录或登录已超时")
    return actor.institution_id


def _role(actor: Actor, role_id: int) -> Role:
    """A role the administrator's institution uses: a built-in one or one of its own custom roles.

    Raises:
        NotFound: `role_not_found` — no such role, or another institution's custom role.
    """
    role = uow.session().get(Role, role_id)
    if role is None or (role.institution_id is not None and role.institution_id != actor.institution_id):
        raise NotFound("role_not_found", "角色不存在")
    return role


def list_roles(actor: Actor) -> list[RoleChoice]:
    """The enabled roles the administrator may set defaults for: the built-in ones that can be held at their
    institution (a member hospital holds no central-only role) and the institution's own custom roles, with the
    menus each opens (the defaults page offers a role only the landing pages its holders can open)."""
    inst_id = _institution_id(actor)
    s = uow.session()
    inst = s.get(Institution, inst_id)
    central = inst is not None and inst.kind == CENTRAL
    rows = s.execute(
        select(Role)
        .where(Role.enabled.is_(True), (Role.institution_id.is_(None)) | (Role.institution_id == inst_id))
        .order_by(Role.id)
    )
    out = []
    for role in rows.unique().scalars():
        builtin = BUILTIN_BY_CODE.get(role.code) if role.institution_id is None else None
        if builtin is not None and builtin.scope == CENTRAL and not central:
            continue
        codes = set(BASELINE) | set(role.permission_codes)
        menus = [
            p.code for p in BY_CODE.values() if p.kind == "menu" and p.code in codes and (central or p.scope != CENTRAL)
        ]
        out.append(RoleChoice(role.id, role.code, role.name, menus))
    return out


def list_defaults(actor: Actor) -> list[DefaultRow]:
    """The defaults set for the administrator's institution and its roles."""
    inst = _institution_id(actor)
    rows = uow.session().execute(
        select(SettingDefault, Role)
        .outerjoin(Role, Role.id == SettingDefault.role_id)
        .where(SettingDefault.institution_id == inst)
        .order_by(SettingDefault.key, SettingDefault.role_id.is_not(None), SettingDefault.role_id)
    )
    return [
        DefaultRow(d.key, d.value, d.role_id, r.code if r else None, r.name if r else None, d.updated_at)
        for d, r in rows.unique().all()
    ]


def _find_default(inst: int, key: str, role_id: int | None) -> SettingDefault | None:
    cond = SettingDefault.role_id.is_(None) if role_id is None else SettingDefault.role_id == role_id
    stmt = select(SettingDefault).where(SettingDefault.institution_id == inst, SettingDefault.key == key, cond)
    return uow.session().execute(stmt.with_for_update()).scalar_one_or_none()


def set_default(actor: Actor, key: str, value: Any, role_id: int | None = None) -> DefaultRow:
    """Set the default of `key` for the administrator's institution, or for one role in it; audited.

    Raises:
        NotFound: `setting_unknown`, `role_not_found`.
        ValidationFailed: `setting_invalid`, `setting_too_large`.
    """
    inst = _institution_id(actor)
    spec = _key(key)
    role = _role(actor, role_id) if role_id is not None else None
    validate(key, value)
    s = uow.session()
    row = _find_default(inst, key, role_id)
    before = None if row is None else row.value
    if row is None:
        row = SettingDefault(institution_id=inst, role_id=role_id, key=key)
        s.add(row)
    row.value, row.updated_at, row.updated_by_id = value, utcnow(), actor.user_id
    s.flush()
    audit.record(
        actor,
        "setting_default_changed",
        object_type="setting_default",
        object_id=row.id,
        reason=f"{_target(role)}：{spec.name}",
        details={"key": key, "role_id": role_id, "institution_id": inst, "before": before, "after": value},
    )
    return DefaultRow(key, value, role_id, role.code if role else None, role.name if role else None, row.updated_at)


def remove_default(actor: Actor, key: str, role_id: int | None = None) -> None:
    """Remove the default of `key` for the administrator's institution or one of its roles; audited.

    Raises:
        NotFound: `setting_unknown`, `role_not_found`, `setting_default_not_found`.
    """
    inst = _institution_id(actor)
    spec = _key(key)
    role = _role(actor, role_id) if role_id is not None else None
    row = _find_default(inst, key, role_id)
    if row is None:
        raise NotFound("setting_default_not_found", "该默认设置不存在")
    audit.record(
        actor,
        "setting_default_removed",
        object_type="setting_default",
        object_id=row.id,
        reason=f"{_target(role)}：{spec.name}",
        details={"key": key, "role_id": role_id, "institution_id": inst, "before": row.value},
    )
    uow.session().delete(row)
    uow.session().flush()


def _target(role: Role | None) -> str:
    return f"角色“{role.name}”的默认设置" if role else "本机构默认设置"
