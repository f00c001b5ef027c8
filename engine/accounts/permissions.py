"""The permission catalogue and the built-in roles (ARCHITECTURE.md "Roles and who sees what")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PermissionDef:
    code: str
    name: str
    kind: str  # menu | function
    parent: str | None
    domain: str  # common | sys | sec | audit | clinical | process


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
    PermissionDef("menu.tasks", "我的任务", "menu", None, "clinical"),
    PermissionDef("task.read", "查看任务", "function", "menu.tasks", "clinical"),
    PermissionDef("task.claim", "领取与处理任务", "function", "menu.tasks", "clinical"),
    PermissionDef("report.write", "书写与审核报告", "function", "menu.tasks", "clinical"),
    PermissionDef("menu.pool", "抢单池", "menu", None, "clinical"),
    PermissionDef("task.assign", "指派与批量指派", "function", "menu.pool", "clinical"),
    PermissionDef("menu.processes", "流程管理", "menu", None, "process"),
    PermissionDef("process.read", "查看流程", "function", "menu.processes", "process"),
    PermissionDef("process.deploy", "发布与迁移流程", "function", "menu.processes", "process"),
    # DICOM devices and archive (issue 4; REQ: IMG-02, DCM-03/04, DSEC-06): device management is a 系统管理员 duty.
    PermissionDef("menu.dicom_nodes", "设备管理", "menu", None, "sys"),
    PermissionDef("dicom.node.read", "查看DICOM设备", "function", "menu.dicom_nodes", "sys"),
    PermissionDef("dicom.node.manage", "登记/编辑/停用DICOM设备", "function", "menu.dicom_nodes", "sys"),
    PermissionDef("dicom.scu", "连通测试、查询、调阅与发送影像", "function", "menu.dicom_nodes", "sys"),
    PermissionDef("menu.dicom_routing", "路由与转发", "menu", None, "sys"),
    PermissionDef("dicom.routing.read", "查看路由规则与转发队列", "function", "menu.dicom_routing", "sys"),
    PermissionDef("dicom.routing.manage", "编辑路由规则、重试转发", "function", "menu.dicom_routing", "sys"),
    PermissionDef("menu.dicom_forward", "转发队列", "menu", None, "sys"),
    PermissionDef("dicom.forward.read", "查看转发队列", "function", "menu.dicom_forward", "sys"),
    PermissionDef("dicom.forward.manage", "重试转发、经队列发送检查", "function", "menu.dicom_forward", "sys"),
    PermissionDef("menu.dicom_storage", "存储管理", "menu", None, "sys"),
    PermissionDef("dicom.storage.read", "查看存储目标与存储任务", "function", "menu.dicom_storage", "sys"),
    PermissionDef("dicom.storage.manage", "登记存储目标、比对/同步/迁移", "function", "menu.dicom_storage", "sys"),
    PermissionDef("menu.dicom_conflicts", "影像冲突", "menu", None, "sys"),
    PermissionDef("dicom.conflict.manage", "查看与处理影像冲突", "function", "menu.dicom_conflicts", "sys"),
    PermissionDef("menu.dicom_unmatched", "未匹配检查", "menu", None, "sys"),
    PermissionDef("dicom.unmatched.read", "查看未匹配的影像检查", "function", "menu.dicom_unmatched", "sys"),
    PermissionDef("menu.imaging", "影像检查", "menu", None, "clinical"),
    PermissionDef("image.read", "查看影像检查与结构化报告", "function", "menu.imaging", "clinical"),
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

_REQUEST = frozenset({"menu.cases", "case.create", "case.read", "report.print", "menu.imaging", "image.read"})
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
    }
)
# task.claim: the dispatcher completes the 人工分配 (assign_case) task of the manual dispatch mode.
_DISPATCH = frozenset({"menu.tasks", "menu.pool", "menu.cases", "case.read", "task.read", "task.claim", "task.assign"})
_PROCESS = frozenset({"menu.processes", "process.read", "process.deploy"})

BUILTIN_ROLES: tuple[RoleDef, ...] = (
    RoleDef("registrar", "登记员", "成员医院登记患者、检查并发起远程诊断申请", _REQUEST),
    RoleDef("requester", "申请医生", "成员医院申请远程诊断、查看报告", _REQUEST),
    RoleDef("report_l1", "初级报告医生", "书写初步报告", _READ),
    RoleDef("report_l2", "报告医生", "修改并确认报告", _READ),
    RoleDef("report_l3", "审核医生", "审核并发布报告", _READ),
    RoleDef("dispatcher", "调度员", "分配远程诊断任务", _DISPATCH),
    RoleDef("qc_expert", "质控专家", "对成员医院影像和报告评分", frozenset()),
    RoleDef("qc_director", "质控主任", "查看并回复本院质控结果", frozenset()),
    RoleDef("process_admin", "流程管理员", "编辑和发布业务流程", _PROCESS),
    RoleDef("sys_admin", "系统管理员", "管理用户账号与系统配置，不能查看审计日志", _SYS),
    RoleDef("sec_admin", "安全管理员", "审核账号、管理角色与授权", _SEC),
    RoleDef("audit_admin", "审计管理员", "查询、导出与校验审计日志（只读）", _AUDIT),
)

ADMIN_ROLE_CODES = frozenset({"sys_admin", "sec_admin", "audit_admin"})
# Roles that need TOTP as a second factor (REQ: AUTH-06); the process admin deploys executable diagrams.
MFA_ROLE_CODES = ADMIN_ROLE_CODES | {"process_admin"}


def domains_of(codes: set[str] | frozenset[str]) -> set[str]:
    return {BY_CODE[c].domain for c in codes if c in BY_CODE}


def mixes_admin_domains(codes: set[str] | frozenset[str]) -> bool:
    """True when a permission set spans more than one of the sys/sec/audit domains (AC-05)."""
    return len(domains_of(codes) & set(ADMIN_DOMAINS)) > 1
