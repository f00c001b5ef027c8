"""The permission catalogue and the built-in roles (ARCHITECTURE.md "Roles and who sees what")."""

from __future__ import annotations

from dataclasses import dataclass

# Where a permission may be held (ARCHITECTURE.md "Roles and who sees what", REQ: AC-02/AC-03):
# central — central hospital accounts only (tasks, reports, dispatch, QC expertise, processes, routing, storage);
# member — member hospital accounts only; any — any institution, acting on the holder's own institution.
CENTRAL = "central"
MEMBER = "member"
ANY = "any"
SCOPES = (CENTRAL, MEMBER, ANY)


@dataclass(frozen=True)
class PermissionDef:
    code: str
    name: str
    kind: str  # menu | function
    parent: str | None
    domain: str  # common | sys | sec | audit | clinical | process
    scope: str = ANY  # central | member | any


# Domains split the three administrators (三权分立, AC-05): a role may not mix sys, sec and audit.
CATALOGUE: tuple[PermissionDef, ...] = (
    PermissionDef("menu.home", "首页", "menu", None, "common"),
    PermissionDef("menu.profile", "个人中心", "menu", None, "common"),
    PermissionDef("menu.account_review", "账号审核", "menu", None, "sec"),
    PermissionDef("account.review", "审核账号", "function", "menu.account_review", "sec"),
    PermissionDef("attachment.view_id_photo", "查看证件照片", "function", "menu.account_review", "sec"),
    PermissionDef("menu.users", "用户管理", "menu", None, "sys"),
    PermissionDef("user.read", "查看用户", "function", "menu.users", "sys"),
    PermissionDef("user.manage", "新建/编辑/停用用户", "function", "menu.users", "sys"),
    PermissionDef("user.unlock", "解锁账号", "function", "menu.users", "sec"),
    PermissionDef("user.reset_password", "重置密码", "function", "menu.users", "sec"),
    PermissionDef("user.grant_roles", "分配角色", "function", "menu.users", "sec"),
    PermissionDef("menu.roles", "角色管理", "menu", None, "sec"),
    PermissionDef("role.read", "查看角色", "function", "menu.roles", "sec"),
    PermissionDef("role.manage", "新建/编辑/删除角色及授权", "function", "menu.roles", "sec"),
    PermissionDef("menu.audit", "审计日志", "menu", None, "audit"),
    PermissionDef("audit.read", "查询审计日志", "function", "menu.audit", "audit"),
    PermissionDef("audit.export", "导出审计日志", "function", "menu.audit", "audit"),
    PermissionDef("audit.verify", "校验审计日志完整性", "function", "menu.audit", "audit"),
    PermissionDef("institution.read", "查看机构", "function", None, "common"),
    PermissionDef("menu.cases", "远程诊断申请", "menu", None, "clinical"),
    PermissionDef("case.create", "发起远程诊断申请", "function", "menu.cases", "clinical"),
    PermissionDef("case.read", "查看远程诊断申请", "function", "menu.cases", "clinical"),
    PermissionDef("report.print", "打印报告", "function", "menu.cases", "clinical"),
    # 临床资料补充 (issue 14, the second process): the case's requesting institution answers a central doctor's
    # query. Scope any, like the registrar/requester roles (the central hospital also requests for its own patients);
    # the kind's candidate rule limits it to the instance's institution (engine/cases/clinical_queries.py).
    PermissionDef("clinical_query.answer", "答复临床资料补充", "function", "menu.cases", "clinical"),
    PermissionDef("menu.tasks", "我的任务", "menu", None, "clinical", CENTRAL),
    PermissionDef("task.read", "查看任务", "function", "menu.tasks", "clinical", CENTRAL),
    PermissionDef("task.claim", "领取与处理任务", "function", "menu.tasks", "clinical", CENTRAL),
    PermissionDef("report.write", "书写与审核报告", "function", "menu.tasks", "clinical", CENTRAL),
    PermissionDef("menu.pool", "抢单池", "menu", None, "clinical", CENTRAL),
    PermissionDef("task.assign", "指派与批量指派", "function", "menu.pool", "clinical", CENTRAL),
    PermissionDef("menu.processes", "流程管理", "menu", None, "process", CENTRAL),
    PermissionDef("process.read", "查看流程", "function", "menu.processes", "process", CENTRAL),
    PermissionDef("process.deploy", "发布与迁移流程", "function", "menu.processes", "process", CENTRAL),
    # 报告时限规则 (issue 17; UX.md R3): the limits the worklists count down and the process's timer escalates on.
    PermissionDef("menu.turnaround", "报告时限规则", "menu", None, "process", CENTRAL),
    PermissionDef("tat.manage", "编辑报告时限规则", "function", "menu.turnaround", "process", CENTRAL),
    # DICOM devices and archive (issue 4; REQ: IMG-02, DCM-03/04, DSEC-06): device management is a 系统管理员 duty.
    PermissionDef("menu.dicom_nodes", "设备管理", "menu", None, "sys"),
    PermissionDef("dicom.node.read", "查看DICOM设备", "function", "menu.dicom_nodes", "sys"),
    PermissionDef("dicom.node.manage", "登记/编辑/停用DICOM设备", "function", "menu.dicom_nodes", "sys"),
    PermissionDef("dicom.scu", "连通测试、查询、调阅与发送影像", "function", "menu.dicom_nodes", "sys"),
    PermissionDef("menu.dicom_routing", "路由与转发", "menu", None, "sys", CENTRAL),
    PermissionDef("dicom.routing.read", "查看路由规则与转发队列", "function", "menu.dicom_routing", "sys", CENTRAL),
    PermissionDef("dicom.routing.manage", "编辑路由规则、重试转发", "function", "menu.dicom_routing", "sys", CENTRAL),
    PermissionDef("menu.dicom_forward", "转发队列", "menu", None, "sys"),
    PermissionDef("dicom.forward.read", "查看转发队列", "function", "menu.dicom_forward", "sys"),
    PermissionDef("dicom.forward.manage", "重试转发、经队列发送检查", "function", "menu.dicom_forward", "sys"),
    PermissionDef("menu.dicom_storage", "存储管理", "menu", None, "sys", CENTRAL),
    PermissionDef("dicom.storage.read", "查看存储目标与存储任务", "function", "menu.dicom_storage", "sys", CENTRAL),
    PermissionDef(
        "dicom.storage.manage", "登记存储目标、比对/同步/迁移", "function", "menu.dicom_storage", "sys", CENTRAL
    ),
    PermissionDef("menu.dicom_conflicts", "影像冲突", "menu", None, "sys"),
    PermissionDef("dicom.conflict.manage", "查看与处理影像冲突", "function", "menu.dicom_conflicts", "sys"),
    PermissionDef("menu.dicom_unmatched", "未匹配检查", "menu", None, "sys"),
    PermissionDef("dicom.unmatched.read", "查看未匹配的影像检查", "function", "menu.dicom_unmatched", "sys"),
    PermissionDef("menu.imaging", "影像检查", "menu", None, "clinical"),
    PermissionDef("image.read", "查看影像检查与结构化报告", "function", "menu.imaging", "clinical"),
    # DICOMweb writes (issue 15): STOW-RS, and an AI system's results. Held by OAuth clients through their scopes
    # (engine/oauth/clients.py), or granted to a role like any other function.
    PermissionDef("image.write", "上传影像（STOW-RS）", "function", "menu.imaging", "clinical"),
    PermissionDef("ai.write", "写入AI分析结果", "function", "menu.imaging", "clinical"),
    # OAuth 2.0 clients of DICOMweb (issue 15; REQ: DSEC-11): the central 系统管理员 registers and revokes them.
    PermissionDef("menu.oauth_clients", "接入客户端", "menu", None, "sys", CENTRAL),
    PermissionDef("oauth.manage", "登记与吊销接入客户端", "function", "menu.oauth_clients", "sys", CENTRAL),
    # Per-user settings (issue 14): the defaults an institution and its roles start from, set by the 系统管理员.
    PermissionDef("setting.default.manage", "设置本机构与角色的默认个人设置", "function", "menu.users", "sys"),
    # Report templates and phrases (issue 17; REQ: RPT-03, RPT-07, DICT-02): every report writer keeps private
    # templates and phrases; institution/public templates and shared phrases are the 审核医生's (department head's).
    PermissionDef("menu.templates", "模板管理", "menu", None, "clinical", CENTRAL),
    PermissionDef("template.manage", "管理公共模板与共享短语", "function", "menu.templates", "clinical", CENTRAL),
)

BY_CODE = {p.code: p for p in CATALOGUE}
ADMIN_DOMAINS = ("sys", "sec", "audit")

# Permissions every approved account holds implicitly (own profile, own sessions).
BASELINE = frozenset({"menu.home", "menu.profile", "institution.read"})


@dataclass(frozen=True)
class RoleDef:
    code: str
    name: str
    description: str
    permissions: frozenset[str]
    # Where the role may be held. It follows from the permissions (permission_scope), except that qc_expert has
    # no permission yet and the three administrators are held anywhere, scoped to their institution, with their
    # central-only functions (routing, storage) refused outside the central hospital.
    scope: str = ANY


_SYS = frozenset(
    {
        "menu.users",
        "user.read",
        "user.manage",
        # DICOM devices, routing, forwarding, conflicts and unmatched studies (REQ: IMG-02, DCM-02/03/04)
        "menu.dicom_nodes",
        "dicom.node.read",
        "dicom.node.manage",
        "dicom.scu",
        "menu.dicom_routing",
        "dicom.routing.read",
        "dicom.routing.manage",
        "menu.dicom_forward",
        "dicom.forward.read",
        "dicom.forward.manage",
        "menu.dicom_storage",
        "dicom.storage.read",
        "dicom.storage.manage",
        "menu.dicom_conflicts",
        "dicom.conflict.manage",
        "menu.dicom_unmatched",
        "dicom.unmatched.read",
        "menu.imaging",
        "image.read",
        "setting.default.manage",
        "menu.oauth_clients",
        "oauth.manage",
    }
)
_SEC = frozenset(
    {
        "menu.account_review",
        "account.review",
        "attachment.view_id_photo",
        "menu.users",
        "user.read",
        "user.unlock",
        "user.reset_password",
        "user.grant_roles",
        "menu.roles",
        "role.read",
        "role.manage",
    }
)
_AUDIT = frozenset({"menu.audit", "audit.read", "audit.export", "audit.verify"})

_REQUEST = frozenset(
    {"menu.cases", "case.create", "case.read", "report.print", "menu.imaging", "image.read", "clinical_query.answer"}
)
_REGISTER = _REQUEST | {"image.write"}
_READ = frozenset(
    {
        "menu.tasks",
        "menu.pool",
        "menu.cases",
        "case.read",
        "task.read",
        "task.claim",
        "report.write",
        "menu.imaging",
        "image.read",
        "menu.templates",
    }
)
# 审核医生 (report_l3) leads the department's templates: institution/public templates and shared phrases.
_REVIEW = _READ | {"template.manage"}
# task.claim: the dispatcher completes the 人工分配 (assign_case) task of the manual dispatch mode.
_DISPATCH = frozenset({"menu.tasks", "menu.pool", "menu.cases", "case.read", "task.read", "task.claim", "task.assign"})
_PROCESS = frozenset({"menu.processes", "process.read", "process.deploy", "menu.turnaround", "tat.manage"})

BUILTIN_ROLES: tuple[RoleDef, ...] = (
    RoleDef("registrar", "登记员", "成员医院登记患者、检查并发起远程诊断申请", _REGISTER),
    RoleDef("requester", "申请医生", "成员医院申请远程诊断、查看报告", _REQUEST),
    RoleDef("report_l1", "初级报告医生", "书写初步报告", _READ, CENTRAL),
    RoleDef("report_l2", "报告医生", "修改并确认报告", _READ, CENTRAL),
    RoleDef("report_l3", "审核医生", "审核并发布报告", _REVIEW, CENTRAL),
    RoleDef("dispatcher", "调度员", "分配远程诊断任务", _DISPATCH, CENTRAL),
    RoleDef("qc_expert", "质控专家", "对成员医院影像和报告评分", frozenset(), CENTRAL),
    RoleDef("qc_director", "质控主任", "查看并回复本院质控结果", frozenset()),
    RoleDef("process_admin", "流程管理员", "编辑和发布业务流程", _PROCESS, CENTRAL),
    RoleDef("sys_admin", "系统管理员", "管理用户账号与系统配置，不能查看审计日志", _SYS),
    RoleDef("sec_admin", "安全管理员", "审核账号、管理角色与授权", _SEC),
    RoleDef("audit_admin", "审计管理员", "查询、导出与校验审计日志（只读）", _AUDIT),
)
BUILTIN_BY_CODE = {r.code: r for r in BUILTIN_ROLES}

ADMIN_ROLE_CODES = frozenset({"sys_admin", "sec_admin", "audit_admin"})

# A second factor follows the permissions a session holds, not role codes (REQ: AUTH-06): any administrator
# permission, or a process permission (deploying executable diagrams).
MFA_DOMAINS = (*ADMIN_DOMAINS, "process")


def domains_of(codes: set[str] | frozenset[str]) -> set[str]:
    return {BY_CODE[c].domain for c in codes if c in BY_CODE}


def mixes_admin_domains(codes: set[str] | frozenset[str]) -> bool:
    """True when a permission set spans more than one of the sys/sec/audit domains (AC-05)."""
    return len(domains_of(codes) & set(ADMIN_DOMAINS)) > 1


def custom_role_domains(codes: set[str] | frozenset[str]) -> set[str]:
    """The domains a custom role's permissions span, the common ones (home, profile) aside: at most one (AC-05)."""
    return domains_of(codes) - {"common"}


def needs_mfa(codes: set[str] | frozenset[str]) -> bool:
    """A session holding any of these permissions needs a second factor (REQ: AUTH-06)."""
    return bool(domains_of(codes) & set(MFA_DOMAINS))


def is_admin_permission_set(codes: set[str] | frozenset[str]) -> bool:
    """Administrator rules (password length, one session, short idle timeout) follow admin-domain permissions."""
    return bool(domains_of(codes) & set(ADMIN_DOMAINS))


# Built-in roles whose permissions need a second factor (sys/sec/audit/process_admin); test factories use it.
MFA_ROLE_CODES = frozenset(r.code for r in BUILTIN_ROLES if needs_mfa(r.permissions))

# The three permissions the central hospital must always keep on an enabled, unlocked account (AC-05, AC-07):
# without them nobody could grant roles, manage accounts or read the audit log again.
PROTECTED_PERMISSIONS = ("role.manage", "user.manage", "audit.read")


def permission_scope(codes: set[str] | frozenset[str]) -> str | None:
    """Where a set of permissions may be held: central, member or any; None when it holds both central-only and
    member-only permissions (nowhere)."""
    scopes = {BY_CODE[c].scope for c in codes if c in BY_CODE} - {ANY}
    if len(scopes) > 1:
        return None
    return next(iter(scopes), ANY)


def role_scope(code: str, builtin: bool, permissions: set[str] | frozenset[str]) -> str | None:
    """Where a role may be held: a built-in role's declared scope, a custom role's permission scope."""
    if builtin and code in BUILTIN_BY_CODE:
        return BUILTIN_BY_CODE[code].scope
    return permission_scope(permissions)


def scope_allows(scope: str | None, institution_kind: str | None) -> bool:
    """May an account of an institution of this kind (central | member) hold something of this scope?"""
    return scope == ANY or (scope is not None and scope == institution_kind)


def central_only(codes: set[str] | frozenset[str]) -> list[str]:
    return sorted(c for c in codes if c in BY_CODE and BY_CODE[c].scope == CENTRAL)


# Central-only permissions a member hospital's session never carries, even if a grant slipped through: the
# clinical and process ones. The administrators' central-only functions (routing, storage) stay in the session
# and their pages answer `central_only` with an explanation (api/imaging/routing_views.py).
DROPPED_AT_MEMBER = frozenset(p.code for p in CATALOGUE if p.scope == CENTRAL and p.domain not in ADMIN_DOMAINS)
