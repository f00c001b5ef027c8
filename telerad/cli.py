"""The `telerad` command: run, web, worker, dicom, db upgrade, demo, create-admin, audit verify/purge, oauth,
templates seed."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import click

from engine import config
from telerad.clictx import load_app, load_settings
from telerad.dicom_cli import dicom
from telerad.oauth_cli import oauth
from telerad.templates_cli import templates

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str | None = None):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@click.group()
def main() -> None:
    """telerad 远程影像诊断平台."""


main.add_command(oauth)
main.add_command(templates)


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default head), then sync the permission catalogue."""
    from alembic import command

    settings = load_settings()
    settings.instance_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings.database_url), revision)
    app = load_app()
    with app.app_context():
        from engine import uow
        from engine.accounts.seed import ensure_institutions, sync_catalogue

        with uow.unit_of_work():
            sync_catalogue()
            if settings.mode == "demo":
                ensure_institutions()
            from engine.workflow import specs

            for dep in specs.deploy_from_files():
                click.echo(f"流程 {dep.process_id} v{dep.version} ({dep.content_hash[:12]})")
    click.echo("数据库已升级 / database upgraded")


@main.command()
def demo() -> None:
    """Load the demo institutions, accounts and imaging cases with synthetic studies (demo mode only)."""
    settings = load_settings()
    if settings.mode != "demo":
        click.echo("只有演示模式 (TELERAD_MODE=demo) 可以加载演示数据", err=True)
        sys.exit(2)
    app = load_app()
    with app.app_context():
        from engine import uow
        from engine.accounts.demo import load_demo

        with uow.unit_of_work():
            added = load_demo()
    click.echo(f"演示账号已就绪（新增 {added} 个）/ demo data ready ({added} accounts added)")
    with app.app_context():
        from engine.templates.library import seed_library

        with uow.unit_of_work():
            click.echo(seed_library().summary())
    from dicom import receiving
    from engine.demo.cases import DEMO_CASES, load_demo_cases

    # the studies go in through the one receive path, built as the SCP and STOW-RS build it (dicom/receiving.py)
    rx = receiving.receiver(app, settings)
    try:
        with app.app_context():
            made = load_demo_cases(rx)
    finally:
        receiving.close(rx)
    click.echo(
        f"演示病例已就绪：共 {len(DEMO_CASES)} 例，新增 {made.cases_added} 例申请、{made.studies_added} 个检查影像"
        f"（{made.instances_stored} 个实例）/ demo cases ready "
        f"({made.cases_added} cases, {made.studies_added} studies added)"
    )


@main.command("create-admin")
@click.option("--username", required=True)
@click.option("--role", type=click.Choice(["sys_admin", "sec_admin", "audit_admin"]), required=True)
@click.option("--full-name", default="")
@click.option("--institution", "institution_code", default="CENTRAL")
def create_admin(username: str, role: str, full_name: str, institution_code: str) -> None:
    """Create one of the three administrators with a temporary password and a TOTP secret (printed once)."""
    import pyotp

    app = load_app()
    with app.app_context():
        from engine import uow
        from engine.accounts import operator
        from engine.errors import DomainError

        try:
            with uow.unit_of_work():
                _, temp, secret = operator.create_admin(username, role, full_name, institution_code)
        except DomainError as exc:
            click.echo(f"{exc.message} ({exc.code})", err=True)
            sys.exit(1)
        uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name="telerad")
        click.echo(f"用户名: {username}\n临时密码（首次登录须修改）: {temp}\nTOTP 密钥: {secret}\notpauth: {uri}")


@main.group()
def user() -> None:
    """Account commands for the operator (the same rules as the 安全管理员's pages)."""


@user.command("roles")
@click.option("--username", required=True)
@click.option("--role", "roles", multiple=True, required=True, help="角色编码，可重复；替换该账号现有的全部角色")
def user_roles(username: str, roles: tuple[str, ...]) -> None:
    """Replace an approved account's roles (三权分立 and where each role may be held apply, REQ: AC-02/05)."""
    app = load_app()
    with app.app_context():
        from engine import uow
        from engine.accounts import operator
        from engine.errors import DomainError

        try:
            with uow.unit_of_work():
                account = operator.set_roles(username, list(roles))
                codes = sorted(r.code for r in account.roles)
        except DomainError as exc:
            click.echo(f"{exc.message} ({exc.code})", err=True)
            sys.exit(1)
    click.echo(f"已为 {username} 设置角色：{', '.join(codes)}")


@main.group()
def processes() -> None:
    """BPMN process deployments."""


@processes.command("deploy")
def processes_deploy() -> None:
    """Deploy processes/ and forms/ where their content hash is new (running cases keep their version)."""
    app = load_app()
    with app.app_context():
        from engine import uow
        from engine.workflow import specs

        with uow.unit_of_work():
            for dep in specs.deploy_from_files():
                click.echo(f"流程 {dep.process_id} v{dep.version} ({dep.content_hash[:12]})")


@main.group()
def audit() -> None:
    """Audit log commands."""


@audit.command("verify")
def audit_verify() -> None:
    """Verify the audit hash chain; exit 1 and name the first broken record if it is broken."""
    app = load_app()
    with app.app_context():
        from engine import audit as audit_mod
        from engine import uow
        from engine.actor import Actor

        result = audit_mod.verify_chain(uow.session())
        click.echo(result.message)
        with uow.unit_of_work():  # AUD-09: using the audit log is itself audited, from the CLI too
            audit_mod.record(
                Actor.system("cli"),
                "audit_log_used",
                outcome="success" if result.ok else "failure",
                details={"verify": result.ok, "checked": result.checked, "broken_at": result.broken_at},
            )
        sys.exit(0 if result.ok else 1)


@audit.command("purge")
def audit_purge() -> None:
    """Delete audit records older than the retention period (at least 180 days)."""
    app = load_app()
    with app.app_context():
        from engine import audit as audit_mod
        from engine import uow
        from engine.actor import Actor

        with uow.unit_of_work():
            n = audit_mod.purge(Actor.system("cli"), config.current().audit_retention_days)
        click.echo(f"已清理 {n} 条审计记录")


def _web_ready(app: Any, s: config.Settings) -> int:
    """Before any thread serves (STOW-RS and C-GET receive in the web process): api/dicomweb/stow.py."""
    from api.dicomweb.stow import prepare_server

    return prepare_server(app, s)


@main.command()
def web() -> None:
    """Serve the web app with waitress (production WSGI server)."""
    from waitress import serve

    app = load_app()
    s = config.current()
    body_limit = _web_ready(app, s)
    click.echo(f"telerad web on http://{s.http_host}:{s.http_port}")
    serve(app, host=s.http_host, port=s.http_port, threads=8, ident="telerad", max_request_body_size=body_limit)


@main.command()
def worker() -> None:
    """Run scheduled jobs (session sweep, inactive accounts, audit retention)."""
    from telerad.jobs import run_worker

    run_worker(load_app(), block=True)


@main.command()
def run() -> None:
    """Embedded default: web server, worker and the DICOM SCP with TELERAD_DICOM_PROCESSES receivers (by default
    from the core count, engine.config.default_dicom_processes): one runs in this process, several run as
    `telerad dicom --processes N` in a child process that stops with this one."""
    from waitress import serve

    from telerad.jobs import run_worker

    app = load_app()
    s = config.current()
    receivers = _start_dicom(app, s)  # before any thread of ours: the child is started from one thread
    body_limit = _web_ready(app, s)
    threading.Thread(target=run_worker, args=(app,), kwargs={"block": False}, daemon=True).start()
    click.echo(f"telerad ({s.mode}) on http://{s.http_host}:{s.http_port}")
    try:
        serve(app, host=s.http_host, port=s.http_port, threads=8, ident="telerad", max_request_body_size=body_limit)
    finally:
        if receivers is not None:
            _stop_child(receivers)


def _start_dicom(app: object, s: config.Settings) -> subprocess.Popen[bytes] | None:
    """The DICOM SCP of `telerad run`: in this process with one receiver (None), else the child process serving
    `telerad dicom --processes N`, which gets SIGTERM when this process ends, even by SIGKILL (PR_SET_PDEATHSIG).
    A busy DICOM port must not take the web server down with it: the error is printed, the web server starts."""
    if s.dicom_processes == 1:
        from dicom import scp

        try:
            scp.start(app, s)
            scp.freeze_startup_heap()
            click.echo(f"telerad DICOM {s.dicom_aet} on port {s.dicom_port}")
        except OSError as exc:
            click.echo(f"DICOM 服务未启动（端口 {s.dicom_port}）：{exc}", err=True)
        return None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwind through run's `finally`: stop the child too
    cmd = [sys.executable, "-c", "from telerad.cli import main; main()", "dicom", "--processes", str(s.dicom_processes)]
    return subprocess.Popen(cmd, preexec_fn=_die_with_parent)  # noqa: S603 - our own interpreter and module


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


def _stop_child(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # dicom/supervisor.py stops its receivers, then exits
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


main.add_command(dicom)


if __name__ == "__main__":
    main()
