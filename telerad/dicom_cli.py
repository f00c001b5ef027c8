"""`telerad dicom`: serve the DICOM SCP (one process, or a supervisor with N receivers), manage devices (`node
add|list`), sweep orphans, and act as an SCU (`echo`, `find`, `retrieve`, `send`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine import config
from telerad.clictx import load_app, load_settings


@click.group(invoke_without_command=True)
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
    s = load_settings()
    n = processes if processes is not None else s.dicom_processes
    click.echo(f"telerad DICOM {s.dicom_aet} on {s.dicom_host}:{s.dicom_port} ({n} process(es))")
    if n > 1:  # the parent stays light: the SCP is imported only where the receivers are forked (dicom/supervisor.py)
        from dicom import supervisor

        listen = [(s.dicom_host, s.dicom_port)] + ([(s.dicom_host, s.dicom_tls_port)] if s.dicom_tls_port else [])
        supervisor.serve(load_app, n, listen)
        return
    from dicom import scp

    scp.serve(load_app)


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
    app = load_app()
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
    app = load_app()
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
    app = load_app()
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

    opts = scu.Options(calling_aet=calling_aet or load_settings().dicom_aet, connect_timeout=scu.CONNECT_TIMEOUT)
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
        _finish(scu_transfer.move(peer, dest or load_settings().dicom_aet, study_uid, series_uid, opts=opts))
        return
    app = load_app()
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

    app = load_app()
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
