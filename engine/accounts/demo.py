"""Demo data: the alliance's institutions and one account per role (demo mode only)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from engine import audit, uow
from engine.accounts import auth, services
from engine.accounts.models import Role, User
from engine.accounts.passwords import normalise_username
from engine.accounts.seed import ensure_institutions, sync_catalogue
from engine.actor import Actor
from engine.cases.models import WorkGroup, WorkGroupMember
from engine.crypto import mask_phone
from engine.db import utcnow


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: str
    institution: str
    full_name: str
    totp_secret: str | None = None


# Printed in README.md; accepted only in demo mode (production refuses to start while they exist).
DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("sysadmin", "Sys#Telerad2026", "sys_admin", "CENTRAL", "系统管理员", "JBSWY3DPEHPK3PXPSYSADMIN"),
    DemoAccount("secadmin", "Sec#Telerad2026", "sec_admin", "CENTRAL", "安全管理员", "JBSWY3DPEHPK3PXPSECADMIN"),
    DemoAccount("auditadmin", "Aud#Telerad2026", "audit_admin", "CENTRAL", "审计管理员", "JBSWY3DPEHPK3PXPAUDITADM"),
    DemoAccount("dispatcher", "Disp#2026tr", "dispatcher", "CENTRAL", "张调度"),
    DemoAccount("doctor_l1", "Rpt1#2026tr", "report_l1", "CENTRAL", "李初级"),
    DemoAccount("doctor_l2", "Rpt2#2026tr", "report_l2", "CENTRAL", "王报告"),
    DemoAccount("doctor_l3", "Rpt3#2026tr", "report_l3", "CENTRAL", "赵审核"),
    DemoAccount("doctor_l1b", "Rpt1b#2026tr", "report_l1", "CENTRAL", "陈初级"),
    DemoAccount("doctor_l2b", "Rpt2b#2026tr", "report_l2", "CENTRAL", "刘报告"),
    DemoAccount("qcexpert", "Qce#2026tr", "qc_expert", "CENTRAL", "孙质控"),
    DemoAccount("procadmin", "Proc#2026tr", "process_admin", "CENTRAL", "周流程", "JBSWY3DPEHPK3PXPPROCADMN"),
    DemoAccount("m01_registrar", "Reg#2026tr", "registrar", "M01", "吴登记"),
    DemoAccount("m01_requester", "Req#2026tr", "requester", "M01", "郑申请"),
    DemoAccount("m01_qcdirector", "Qcd#2026tr", "qc_director", "M01", "钱质控主任"),
)


DEMO = Actor.system("demo")


def load_demo() -> int:
    """Create the demo institutions and accounts once; returns how many accounts were added."""
    sync_catalogue()
    insts = ensure_institutions()
    s = uow.session()
    roles = {r.code: r for r in s.execute(select(Role).where(Role.builtin.is_(True))).unique().scalars()}
    cipher = auth.cipher()
    added = 0
    for i, d in enumerate(DEMO_ACCOUNTS):
        norm = normalise_username(d.username)
        if s.execute(select(User.id).where(User.username_norm == norm)).first():
            continue
        phone = f"1380000{i:04d}"
        inst = insts[d.institution]
        dep = inst.departments[0] if inst.departments else None
        user = User(
            username=d.username,
            username_norm=norm,
            full_name=d.full_name,
            institution_id=inst.id,
            department_id=dep.id if dep else None,
            password_hash=auth.hash_password(d.password),
            review_status="approved",
            registration_source="demo",
            reviewed_at=utcnow(),
            is_demo=True,
            phone_enc=cipher.encrypt_str(phone),
            phone_masked=mask_phone(phone),
            last_active_at=utcnow(),
        )
        if d.totp_secret:
            user.totp_secret_enc = cipher.encrypt_str(d.totp_secret)
            user.totp_enabled = True
        user.institution = inst
        services.check_roles(DEMO, user, [roles[d.role]])  # the grant rules hold for demo data too (AC-02/05)
        user.roles = [roles[d.role]]
        s.add(user)
        added += 1
    s.flush()
    _demo_groups()
    if added:
        audit.record(DEMO, "account_created", details={"demo_accounts": added})
    return added


DEMO_GROUPS = {
    "emergency_team": ("急诊读片组", ("doctor_l1", "doctor_l1b")),
    "neuro_group": ("神经影像组", ("doctor_l1b",)),
}


def _demo_groups() -> None:
    """Work groups the dispatch rules name (processes/remote_diagnosis/dispatch_rules.dmn)."""
    s = uow.session()
    for code, (name, members) in DEMO_GROUPS.items():
        if s.execute(select(WorkGroup.id).where(WorkGroup.code == code)).first():
            continue
        group = WorkGroup(code=code, name=name)
        s.add(group)
        s.flush()
        for username in members:
            uid = s.execute(select(User.id).where(User.username_norm == username)).scalar()
            if uid:
                s.add(WorkGroupMember(group_id=group.id, user_id=uid))
    s.flush()
