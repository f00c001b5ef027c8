"""The `telerad` command: run, web, worker, dicom, db upgrade, demo, create-admin, audit verify/purge, oauth."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import click

from engine import config
from telerad.oauth_cli import oauth

ROOT = Path(__file__).resolve().parent.parent


def _app():  # type: ignore[no-untyped-def]
    from api.app import create_app

    try:
        return create_app()
    except config.ConfigError as exc:
        click.echo(f"配置错误 / configuration error: {exc}", err=True)
        sys.exit(2)


def _settings() -> config.Settings:
    """Load the settings; an unsafe configuration exits 2 with a message, like `_app()` (no traceback)."""
    try:
        return config.load_settings()
    except config.ConfigError as exc:
        click.echo(f"配置错误 / configuration error: {exc}", err=True)
        sys.exit(2)


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


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default head), then sync the permission catalogue."""
    from alembic import command

    settings = _settings()
    settings.instance_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings.database_url), revision)
    app = _app()
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
    settings = _settings()
    if settings.mode != "demo":
        click.echo("只有演示模式 (TELERAD_MODE=demo) 可以加载演示数据", err=True)
        sys.exit(2)
    app = _app()
    with app.app_context():
        from engine import uow
        from engine.accounts.demo import load_demo

        with uow.unit_of_work():
            added = load_demo()
    click.echo(f"演示账号已就绪（新增 {added} 个）/ demo data ready ({added} accounts added)")
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

    app = _app()
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
    app = _app()
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
    app = _app()
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
    app = _app()
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
    app = _app()
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

    app = _app()
    s = config.current()
    body_limit = _web_ready(app, s)
    click.echo(f"telerad web on http://{s.http_host}:{s.http_port}")
    serve(app, host=s.http_host, port=s.http_port, threads=8, ident="telerad", max_request_body_size=body_limit)


@main.command()
def worker() -> None:
    """Run scheduled jobs (session sweep, inactive accounts, audit retention)."""
    from telerad.jobs import run_worker

    run_worker(_app(), block=True)


@main.command()
def run() -> None:
    """Embedded default: web server, worker and the DICOM SCP with TELERAD_DICOM_PROCESSES receivers (by default
    from the core count, engine.config.default_dicom_processes): one runs in this process, several run as
    `telerad dicom --processes N` in a child process that stops with this one."""
    from waitress import serve

    from telerad.jobs import run_worker

    app = _app()
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


@main.group(invoke_without_command=True)
@click.option(
    "--processes",
    type=int,
    default=None,
    help="receiver processes sharing the port (one listening socket, least-loaded accepts)",
)
@click.pass_context
def dicom(ctx: click.Context, processes: int | None) -> None:
    """Serve the DICOM SCP (C-ECHO, C-STORE, C-FIND); `node` manages devices."""
    if ctx.invoked_subcommand is not None:
        return
    s = _settings()
    n = processes if processes is not None else s.dicom_processes
    click.echo(f"telerad DICOM {s.dicom_aet} on {s.dicom_host}:{s.dicom_port} ({n} process(es))")
    if n > 1:  # the parent stays light: the SCP is imported only where the receivers are forked (dicom/supervisor.py)
        from dicom import supervisor

        listen = [(s.dicom_host, s.dicom_port)] + ([(s.dicom_host, s.dicom_tls_port)] if s.dicom_tls_port else [])
        supervisor.serve(_app, n, listen)
        return
    from dicom import scp

    scp.serve(_app)


@dicom.group("node")
def dicom_node() -> None:
    """Registered DICOM devices (REQ: IMG-02)."""


@dicom_node.command("add")
@click.option("--aet", required=True, help="calling AE title of the device")
@click.option("--host", required=True, help="source IP address (or host name) the device connects from")
@click.option("--port", type=int, default=None, help="the device's own port (C-MOVE destination)")
@click.option("--institution", "institution_code", required=True, help="owning institution code")
@click.option("--allow", default="echo,store", show_default=True, help="echo,store,find,move,get,worklist,mpps")
@click.option("--tls", is_flag=True, default=False, help="the device must connect over DICOM TLS")
@click.option("--cert-fingerprint", default=None, help="SHA-256 fingerprint of the device's TLS certificate")
@click.option("--description", default="")
def dicom_node_add(
    aet: str,
    host: str,
    port: int | None,
    institution_code: str,
    allow: str,
    tls: bool,
    cert_fingerprint: str | None,
    description: str,
) -> None:
    """Register a device; the next association sees it."""
    app = _app()
    with app.app_context():
        from engine import uow
        from engine.actor import Actor
        from engine.errors import DomainError
        from engine.imaging import services as imaging

        try:
            with uow.unit_of_work():
                node = imaging.create_node(
                    Actor.system("cli"),
                    aet=aet,
                    host=host,
                    port=port,
                    institution_code=institution_code,
                    allow=allow,
                    tls_required=tls,
                    cert_fingerprint=cert_fingerprint,
                    description=description,
                )
                node_id, ops = node.id, node.allowed_ops
        except DomainError as exc:
            click.echo(f"登记失败：{exc.message}", err=True)
            sys.exit(1)
    click.echo(f"已登记设备 {aet.strip()}@{host} (id={node_id}, 允许: {ops})")


@dicom_node.command("list")
def dicom_node_list() -> None:
    """List registered devices."""
    app = _app()
    with app.app_context():
        from engine import uow
        from engine.imaging import services as imaging

        with uow.unit_of_work():
            rows = imaging.list_nodes()
            click.echo("ID\tAE\t主机\t端口\t机构\t允许\tTLS\t启用")
            for node, code in rows:
                click.echo(
                    f"{node.id}\t{node.aet}\t{node.host}\t{node.port or ''}\t{code}\t{node.allowed_ops}\t"
                    f"{'是' if node.tls_required else '否'}\t{'是' if node.enabled else '否'}"
                )


@dicom.command("sweep")
def dicom_sweep() -> None:
    """Remove object-store files without an index row (orphans of crashes) and stale temp files (DSEC-05)."""
    app = _app()
    with app.app_context():
        from engine import uow
        from engine.actor import Actor
        from engine.imaging import ingest
        from engine.imaging.storage import ObjectStore

        s = config.current()
        with uow.unit_of_work():
            n = ingest.sweep_store(Actor.system("cli"), ObjectStore(s.storage_dir / "dicom"), s.dicom_orphan_age_min)
    click.echo(f"已清理 {n} 个孤立文件")


# -- telerad as an SCU (REQ: DCM-03/04) -----------------------------------------------------------------------------
def _peer_options(fn):  # type: ignore[no-untyped-def]
    fn = click.option("--port", type=int, required=True, help="对方端口")(fn)
    fn = click.option("--host", required=True, help="对方主机地址")(fn)
    fn = click.option("--aet", required=True, help="对方 AE 名称（被叫 AE）")(fn)
    return click.option("--calling-aet", default=None, help="本方 AE 名称（默认 TELERAD_DICOM_AET）")(fn)


def _peer(aet: str, host: str, port: int, calling_aet: str | None):  # type: ignore[no-untyped-def]
    """The node to dial and our side of the association (the SCU's (node, opts) pair)."""
    from dicom import scu

    opts = scu.Options(calling_aet=calling_aet or _settings().dicom_aet, connect_timeout=scu.CONNECT_TIMEOUT)
    return scu.Remote(aet=aet, host=host, port=port), opts


def _finish(result) -> None:  # type: ignore[no-untyped-def]
    click.echo(result.message, err=not result.ok)
    if not result.ok:
        sys.exit(1)


@dicom.command("echo")
@_peer_options
def dicom_echo(aet: str, host: str, port: int, calling_aet: str | None) -> None:
    """连通性测试（C-ECHO）。"""
    from dicom import scu

    result = scu.echo(*_peer(aet, host, port, calling_aet))
    click.echo(f"{result.elapsed_ms} ms")
    _finish(result)


@dicom.command("find")
@_peer_options
@click.option("--level", type=click.Choice(["PATIENT", "STUDY", "SERIES", "IMAGE"]), default="STUDY")
@click.option("-k", "--key", "keys", multiple=True, help="查询条件，如 PatientName=LI* 或 StudyDate=20260101-")
@click.option("--limit", type=int, default=100, show_default=True)
def dicom_find(
    aet: str, host: str, port: int, calling_aet: str | None, level: str, keys: tuple[str, ...], limit: int
) -> None:
    """查询远程节点（C-FIND），每行输出一个匹配（制表符分隔）。"""
    from dicom import scu

    filters: dict[str, str] = {}
    for item in keys:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"查询条件须为 关键字=值：{item!r}", param_hint="--key")
        filters[name.strip()] = value
    node, opts = _peer(aet, host, port, calling_aet)
    result = scu.find(node, level, filters, limit, opts=opts)
    columns = list(scu.RETURN_KEYS[level].values())
    click.echo("\t".join(columns))
    for match in result.items:
        row = [match.get(c) for c in columns]
        click.echo("\t".join("\\".join(v) if isinstance(v, list) else "" if v is None else str(v) for v in row))
    _finish(result)


@dicom.command("retrieve")
@_peer_options
@click.option("--study", "study_uid", required=True, help="StudyInstanceUID")
@click.option("--series", "series_uid", default=None, help="SeriesInstanceUID（只调阅一个序列）")
@click.option("--method", type=click.Choice(["move", "get"]), default="move", show_default=True)
@click.option("--dest", default=None, help="C-MOVE 目标 AE（默认本系统 TELERAD_DICOM_AET）")
def dicom_retrieve(
    aet: str,
    host: str,
    port: int,
    calling_aet: str | None,
    study_uid: str,
    series_uid: str | None,
    method: str,
    dest: str | None,
) -> None:
    """从远程节点调阅检查到本系统归档：C-MOVE（对方发到本系统 SCP）或 C-GET（须为已登记设备）。"""
    from dicom import receiving, scu_transfer

    peer, opts = _peer(aet, host, port, calling_aet)
    if method == "move":
        _finish(scu_transfer.move(peer, dest or _settings().dicom_aet, study_uid, series_uid, opts=opts))
        return
    app = _app()
    with app.app_context():
        from sqlalchemy import select

        from engine import uow
        from engine.accounts.models import Institution
        from engine.imaging import services as imaging
        from engine.imaging.models import DicomNode

        with uow.unit_of_work() as s:
            row = s.execute(
                select(DicomNode, Institution.code)
                .join(Institution, Institution.id == DicomNode.institution_id)
                .where(DicomNode.aet == aet.strip(), DicomNode.host == host, DicomNode.enabled.is_(True))
            ).first()
            if row is None:
                click.echo(f"C-GET 须先登记设备 {aet}@{host}（影像归属其所属机构）", err=True)
                sys.exit(1)
            node, code = row
            info = imaging.NodeInfo(
                id=node.id,
                aet=node.aet,
                host=node.host,
                port=node.port,
                institution_id=node.institution_id,
                institution_code=code,
                operations=node.operations,
                tls_required=node.tls_required,
                cert_fingerprint=node.cert_fingerprint,
                enabled=node.enabled,
            )
        # each instance through the receive service as it arrives (issue 12 §2): validated, durable, indexed, routed
        with receiving.retrieval(app, config.current(), info, host) as sink:
            result = scu_transfer.get(peer, sink, study_uid, series_uid, opts=opts)
    click.echo(f"已入库 {sink.indexed} 个实例" + (f"，{sink.refused} 个被拒收（未入库）" if sink.refused else ""))
    _finish(result)


@dicom.command("send")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=True, path_type=Path))
@click.option("--node", "node_aet", required=True, help="目标设备的 AE 名称（已登记、已启用、有端口）")
@click.option("--host", default=None, help="同一 AE 登记了多个地址时指定主机")
@click.option("--calling-aet", default=None, help="本方 AE 名称（默认 TELERAD_DICOM_AET）")
def dicom_send(files: tuple[Path, ...], node_aet: str, host: str | None, calling_aet: str | None) -> None:
    """把 DICOM 文件（或目录下的全部文件）按原样发送到已登记的节点（C-STORE）。"""
    from dicom import scu_transfer

    app = _app()
    with app.app_context():
        from sqlalchemy import select

        from engine import uow
        from engine.imaging.models import DicomNode

        with uow.unit_of_work() as s:
            stmt = select(DicomNode).where(DicomNode.aet == node_aet.strip(), DicomNode.enabled.is_(True))
            if host:
                stmt = stmt.where(DicomNode.host == host)
            nodes = [n for n in s.execute(stmt).scalars() if n.port]
            if len(nodes) != 1:
                why = "未找到已启用且登记了端口的设备" if not nodes else "该 AE 登记了多个地址，请用 --host 指定"
                click.echo(f"{why}：{node_aet}", err=True)
                sys.exit(1)
            target = nodes[0]
            peer, opts = _peer(target.aet, target.host, int(target.port or 0), calling_aet)
    paths: list[Path] = []
    for f in files:
        paths += sorted(p for p in f.rglob("*") if p.is_file()) if f.is_dir() else [f]

    def progress(done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            click.echo(f"{done}/{total}")

    _finish(scu_transfer.send(peer, paths, progress, opts=opts))


if __name__ == "__main__":
    main()
