"""`telerad oauth client add|list|revoke`: OAuth 2.0 clients of DICOMweb from the command line (issue 15).

The same rules as the 系统管理员's page (engine/oauth/clients.py); each change is audited as the CLI operator.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from telerad.clictx import load_app


def _fail(exc: Any) -> None:
    click.echo(f"{exc.message} ({exc.code})", err=True)
    sys.exit(1)


@click.group()
def oauth() -> None:
    """OAuth 2.0 clients (machine clients and viewers of /dicomweb)."""


@oauth.group()
def client() -> None:
    """Register, list and revoke OAuth clients."""


@client.command("add")
@click.option("--name", required=True, help="客户端名称，如 “AI 肺结节”")
@click.option("--institution", "institution_code", required=True, help="所属机构编码")
@click.option("--scopes", required=True, help='权限范围，空格分隔："dicomweb.read dicomweb.write ai.write"')
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="授权码方式的回调地址（精确匹配），可重复")
@click.option("--public", is_flag=True, help="公开客户端（无密钥，只能用授权码 + PKCE）")
def client_add(name: str, institution_code: str, scopes: str, redirect_uris: tuple[str, ...], public: bool) -> None:
    """Register a client; prints client_id=… and client_secret=… (the secret is shown this once)."""
    app = load_app()
    with app.app_context():
        from engine import uow
        from engine.actor import Actor
        from engine.errors import DomainError
        from engine.oauth import clients

        try:
            with uow.unit_of_work():
                made = clients.create(
                    Actor.system("cli"),
                    name=name,
                    institution_code=institution_code,
                    scopes=scopes,
                    redirect_uris=list(redirect_uris),
                    public=public,
                )
                client_id = made.client.client_id
        except DomainError as exc:
            _fail(exc)
    click.echo(f"client_id={client_id}")
    if made.secret is not None:
        click.echo(f"client_secret={made.secret}")
        click.echo("（密钥只显示这一次，请立即妥善保存）", err=True)


@client.command("list")
def client_list() -> None:
    """List clients: id, state, institution, scopes, name."""
    app = load_app()
    with app.app_context():
        from engine import uow
        from engine.oauth import clients

        with uow.unit_of_work():
            for c in clients.list_clients():
                state = "已吊销" if c.revoked_at else "有效"
                kind = "公开" if c.secret_hash is None else "机密"
                click.echo(f"{c.client_id}\t{state}\t{kind}\t{c.institution.code}\t{c.scopes}\t{c.name}")


@client.command("revoke")
@click.argument("client_id")
def client_revoke(client_id: str) -> None:
    """Revoke a client: its tokens stop working at once."""
    app = load_app()
    with app.app_context():
        from engine import uow
        from engine.actor import Actor
        from engine.errors import DomainError
        from engine.oauth import clients

        try:
            with uow.unit_of_work():
                clients.revoke(Actor.system("cli"), client_id)
        except DomainError as exc:
            _fail(exc)
    click.echo(f"已吊销 {client_id}")
