"""Registration, account review, users, roles, permissions, institutions and ID photos."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_smorest import Blueprint
from werkzeug.datastructures import FileStorage

from api.accounts import schemas as sch
from api.auth import throttle
from api.extensions import client_ip, limiter
from api.security import PUBLIC, current_actor, requires
from engine import config, uow
from engine.accounts import integrity, queries, services
from engine.accounts.models import Role, User
from engine.accounts.permissions import CATALOGUE
from engine.attachments import services as attachments
from engine.attachments.models import Attachment
from engine.visibility import get_visible

blp = Blueprint("accounts", __name__, url_prefix="/api", description="账号、角色与机构")

PHOTO_FIELDS = {"id_card_photo": "id_card", "qualification_photo": "qualification"}


def _photos(files: dict[str, FileStorage]) -> dict[str, tuple[str | None, bytes]]:
    out: dict[str, tuple[str | None, bytes]] = {}
    for field, kind in PHOTO_FIELDS.items():
        f = files.get(field)
        if f is not None:
            out[kind] = (f.filename, f.read())
    return out


def _profile(body: dict[str, Any], user: User | None = None) -> services.Profile:
    return services.Profile(
        full_name=body.get("full_name", user.full_name if user else ""),
        institution_id=body.get("institution_id", user.institution_id if user else 0),
        department_id=body.get("department_id", user.department_id if user else None),
        title=body.get("title", user.title if user else ""),
        phone=body.get("phone"),
        id_number=body.get("id_number"),
    )


# --- public: institutions and self-registration (ACCT-04) -------------------------------------


@blp.route("/public/institutions", methods=["GET"])
@blp.response(200, sch.InstitutionSchema(many=True))
@requires(PUBLIC)
def public_institutions() -> Any:
    """注册页面使用的机构与科室列表。"""
    return queries.list_institutions()


def _registration_limit() -> str:
    """Uploads per address and hour: a hospital behind a trusted NAT address registers its doctors in one morning."""
    trusted = throttle.trusted(client_ip(), config.current())
    return _REGISTRATIONS_TRUSTED if trusted else _REGISTRATIONS_PER_ADDRESS


_REGISTRATIONS_PER_ADDRESS = "20 per hour"
_REGISTRATIONS_TRUSTED = "200 per hour"


@blp.route("/registrations", methods=["POST"])
@blp.arguments(sch.RegistrationFormSchema, location="form")
@blp.arguments(sch.PhotoFilesSchema, location="files")
@blp.response(201, sch.RegistrationStatusSchema)
@limiter.limit(_registration_limit, key_func=client_ip)
@requires(PUBLIC, anon_csrf=True)
def register(form: dict[str, Any], files: dict[str, FileStorage]) -> Any:
    """医生自助注册（上传身份证与资格证照片），提交后等待审核。"""
    user = services.register(current_actor(), form["username"], form["password"], _profile(form), _photos(files))
    return user


@blp.route("/registrations/status", methods=["POST"])
@blp.arguments(sch.CredentialsSchema)
@blp.response(200, sch.RegistrationStatusSchema)
@limiter.exempt  # it checks a password: failures count against login's ceilings in api/auth/throttle.py
@requires(PUBLIC)
def registration_status(body: dict[str, Any]) -> Any:
    """申请人查询审核进度（用户名 + 密码）。"""
    # REQ: AUTH-04 — one allowance with login per (address, username) and per address; the same 429 while throttled.
    with throttle.attempt(current_actor(), client_ip(), body["username"]):
        return services.registration_status(current_actor(), body["username"], body["password"])


@blp.route("/registrations/resubmit", methods=["POST"])
@blp.arguments(sch.ResubmitFormSchema, location="form")
@blp.arguments(sch.PhotoFilesSchema, location="files")
@blp.response(200, sch.RegistrationStatusSchema)
@limiter.limit(_registration_limit, key_func=client_ip)
@requires(PUBLIC, anon_csrf=True)
def resubmit(form: dict[str, Any], files: dict[str, FileStorage]) -> Any:
    """被拒绝的申请人修改信息后重新提交审核。"""
    # REQ: AUTH-04 — its password check shares login's allowance and identical 429 (api/auth/throttle.py).
    with throttle.attempt(current_actor(), client_ip(), form["username"]):
        user = services.registration_status(current_actor(), form["username"], form["password"])
    return services.resubmit(current_actor(), form["username"], form["password"], _profile(form, user), _photos(files))


# --- account review (ACCT-03, ACCT-05) ---------------------------------------------------------


# Fields both account lists show; the output schemas allowlist what is finally sent (AC-04).
_ACCOUNT_FIELDS = ("id", "username", "full_name", "institution", "department", "title", "phone_masked", "review_status")


def _fields(u: User, *names: str) -> dict[str, Any]:
    return {n: getattr(u, n) for n in names}


def _review_item(u: User) -> dict[str, Any]:
    return _fields(u, *_ACCOUNT_FIELDS, "submitted_at", "reviewed_at", "reject_reason") | {
        "reviewed_by": u.reviewed_by.username if u.reviewed_by else None,
        "source": u.registration_source,
    }


@blp.route("/accounts/reviews", methods=["GET"])
@blp.arguments(sch.ReviewQuerySchema, location="query")
@blp.response(200, sch.ReviewPageSchema)
@requires("account.review")
def reviews(args: dict[str, Any]) -> Any:
    """账号审核列表：按 待审核/已通过/已拒绝 筛选，按姓名搜索。"""
    page = queries.list_users(
        current_actor(),
        q=args.get("q"),
        review_status=args["status"],
        institution_id=args.get("institution_id"),
        page=args["page"],
        page_size=args["page_size"],
        order="submitted",
    )
    return {
        "items": [_review_item(u) for u in page.items],
        "total": page.total,
        "page": page.page,
        "page_size": page.page_size,
    }


@blp.route("/accounts/reviews/<int:user_id>", methods=["GET"])
@blp.response(200, sch.ReviewDetailSchema)
@requires("account.review")
def review_detail(user_id: int) -> Any:
    """申请详情，含证件照片与审核记录。"""
    user = get_visible(current_actor(), User, user_id, object_type="user")
    photos = uow.session().query(Attachment).filter_by(owner_user_id=user.id, deleted_at=None).order_by(Attachment.id)
    item = _review_item(user)
    item.update(
        id_number_masked=user.id_number_masked,
        photos=[{"id": a.public_id, "kind": a.kind, "url": f"/api/attachments/{a.public_id}"} for a in photos],
        history=queries.review_history(user.id),
        roles=user.roles,
    )
    return item


@blp.route("/accounts/reviews/<int:user_id>/approve", methods=["POST"])
@blp.arguments(sch.ApproveSchema)
@blp.response(200, sch.ReviewItemSchema)
@requires("account.review")
def approve(body: dict[str, Any], user_id: int) -> Any:
    """审核通过并授予一个或多个角色。"""
    return _review_item(services.approve(current_actor(), user_id, body["role_ids"]))


@blp.route("/accounts/reviews/<int:user_id>/reject", methods=["POST"])
@blp.arguments(sch.RejectSchema)
@blp.response(200, sch.ReviewItemSchema)
@requires("account.review")
def reject(body: dict[str, Any], user_id: int) -> Any:
    """审核拒绝（必须填写原因），申请人可修改后重新提交。"""
    return _review_item(services.reject(current_actor(), user_id, body["reason"]))


@blp.route("/attachments/<string:public_id>", methods=["GET"])
@requires("attachment.view_id_photo")
def attachment(public_id: str) -> Any:
    """查看证件照片（带“仅用于资质审核”水印，不缓存，留审计）。"""
    att, data = attachments.read_attachment(current_actor(), public_id)
    resp = Response(data, mimetype=att.content_type)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Disposition"] = "inline"
    return resp


# --- users -------------------------------------------------------------------------------------


def _user_item(u: User, locked: set[str]) -> dict[str, Any]:
    return _fields(u, *_ACCOUNT_FIELDS, "enabled", "roles", "last_login_at", "created_at") | {
        "locked": u.username_norm in locked
    }


@blp.route("/users", methods=["GET"])
@blp.arguments(sch.UserQuerySchema, location="query")
@blp.response(200, sch.UserPageSchema)
@requires("user.read")
def users(args: dict[str, Any]) -> Any:
    """用户列表（按姓名/用户名搜索，按机构、状态筛选）。"""
    page = queries.list_users(
        current_actor(),
        q=args.get("q"),
        institution_id=args.get("institution_id"),
        enabled=args.get("enabled"),
        page=args["page"],
        page_size=args["page_size"],
    )
    locked = queries.locked_usernames([u.username_norm for u in page.items])
    return {
        "items": [_user_item(u, locked) for u in page.items],
        "total": page.total,
        "page": page.page,
        "page_size": page.page_size,
    }


@blp.route("/users", methods=["POST"])
@blp.arguments(sch.UserCreateSchema)
@blp.response(201, sch.UserCreatedSchema)
@requires("user.manage")
def create_user(body: dict[str, Any]) -> Any:
    """管理员新建账号（同样进入审核），返回一次性初始密码。"""
    user, initial = services.create_user(current_actor(), body["username"], _profile(body))
    return {"id": user.id, "initial_password": initial}


@blp.route("/users/<int:user_id>", methods=["GET"])
@blp.response(200, sch.UserListItemSchema)
@requires("user.read")
def user_detail(user_id: int) -> Any:
    """用户详情。"""
    user = get_visible(current_actor(), User, user_id, object_type="user")
    return _user_item(user, queries.locked_usernames([user.username_norm]))


@blp.route("/users/<int:user_id>", methods=["PATCH"])
@blp.arguments(sch.UserUpdateSchema)
@blp.response(200, sch.UserListItemSchema)
@requires("user.manage")
def update_user(body: dict[str, Any], user_id: int) -> Any:
    """修改用户信息，启用或停用账号。"""
    user = services.update_user(current_actor(), user_id, body)
    return _user_item(user, queries.locked_usernames([user.username_norm]))


@blp.route("/users/<int:user_id>/unlock", methods=["POST"])
@blp.response(204)
@requires("user.unlock")
def unlock_user(user_id: int) -> Any:
    """解除登录失败锁定。"""
    services.unlock(current_actor(), user_id)


@blp.route("/users/<int:user_id>/reset-password", methods=["POST"])
@blp.response(200, sch.TempPasswordSchema)
@requires("user.reset_password")
def reset_password(user_id: int) -> Any:
    """重置密码：生成临时密码，用户下次登录须修改。"""
    return {"temporary_password": services.reset_password(current_actor(), user_id)}


@blp.route("/users/<int:user_id>/roles", methods=["PUT"])
@blp.arguments(sch.UserRolesSchema)
@blp.response(200, sch.UserListItemSchema)
@requires("user.grant_roles")
def set_user_roles(body: dict[str, Any], user_id: int) -> Any:
    """分配角色（仅安全管理员；三员互斥）。"""
    user = services.set_roles(current_actor(), user_id, body["role_ids"])
    return _user_item(user, queries.locked_usernames([user.username_norm]))


# --- roles and permissions (ACCT-01, ACCT-02) ---------------------------------------------------


def _role_item(role: Role, count: int) -> dict[str, Any]:
    return {
        "id": role.id,
        "code": role.code,
        "name": role.name,
        "description": role.description,
        "enabled": role.enabled,
        "builtin": role.builtin,
        "institution": role.institution,
        "permissions": role.permission_codes,
        "user_count": count,
        "scope": integrity.scope_of(role),
    }


@blp.route("/roles", methods=["GET"])
@blp.arguments(sch.RoleQuerySchema, location="query")
@blp.response(200, sch.RoleSchema(many=True))
@requires("role.read")
def roles(args: dict[str, Any]) -> Any:
    """角色列表（按名称搜索、按状态筛选）。"""
    return [
        _role_item(r, n) for r, n in queries.list_roles(current_actor(), q=args.get("q"), enabled=args.get("enabled"))
    ]


@blp.route("/roles", methods=["POST"])
@blp.arguments(sch.RoleCreateSchema)
@blp.response(201, sch.RoleSchema)
@requires("role.manage")
def create_role(body: dict[str, Any]) -> Any:
    """新建角色（全局或某机构专用）。"""
    role = services.create_role(
        current_actor(), body["code"], body["name"], body["description"], body["institution_id"], body["permissions"]
    )
    return _role_item(role, 0)


@blp.route("/roles/<int:role_id>", methods=["GET"])
@blp.response(200, sch.RoleSchema)
@requires("role.read")
def role_detail(role_id: int) -> Any:
    """角色详情。"""
    role = get_visible(current_actor(), Role, role_id, object_type="role")
    return _role_item(role, dict(((r.id, n) for r, n in queries.list_roles(current_actor()))).get(role.id, 0))


@blp.route("/roles/<int:role_id>", methods=["PATCH"])
@blp.arguments(sch.RoleUpdateSchema)
@blp.response(200, sch.RoleSchema)
@requires("role.manage")
def update_role(body: dict[str, Any], role_id: int) -> Any:
    """修改角色名称、描述，启用或停用。"""
    role = services.update_role(current_actor(), role_id, body)
    return _role_item(role, 0)


@blp.route("/roles/<int:role_id>/permissions", methods=["PUT"])
@blp.arguments(sch.RolePermissionsSchema)
@blp.response(200, sch.RoleSchema)
@requires("role.manage")
def set_role_permissions(body: dict[str, Any], role_id: int) -> Any:
    """配置角色的菜单与功能权限。"""
    return _role_item(services.set_role_permissions(current_actor(), role_id, body["permissions"]), 0)


@blp.route("/roles/<int:role_id>", methods=["DELETE"])
@blp.response(204)
@requires("role.manage")
def delete_role(role_id: int) -> Any:
    """删除角色（内置角色与仍被使用的角色不能删除）。"""
    services.delete_role(current_actor(), role_id)


@blp.route("/permissions", methods=["GET"])
@blp.response(200, sch.PermissionSchema(many=True))
@requires("role.read")
def permissions() -> Any:
    """权限目录（菜单与功能）。"""
    return [
        {"code": p.code, "name": p.name, "kind": p.kind, "parent": p.parent, "domain": p.domain, "scope": p.scope}
        for p in CATALOGUE
    ]


@blp.route("/institutions", methods=["GET"])
@blp.arguments(sch.InstitutionQuerySchema, location="query")
@blp.response(200, sch.InstitutionSchema(many=True))
@requires("institution.read")
def institutions(args: dict[str, Any]) -> Any:
    """可见范围内的机构与科室（按名称或拼音首字母搜索）。"""
    return queries.list_institutions(current_actor(), q=args.get("q"))
