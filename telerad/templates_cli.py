"""`telerad templates seed`: load the starter library of report templates and shared phrases (issue 17).

Idempotent (engine/templates/library.py): a second run adds nothing and says so.
"""

from __future__ import annotations

import sys

import click

from engine.errors import DomainError
from telerad.clictx import load_app


@click.group()
def templates() -> None:
    """Report templates and phrases."""


@templates.command("seed")
def templates_seed() -> None:
    """Add the starter library's missing public templates and shared phrases to the central hospital."""
    app = load_app()
    with app.app_context():
        from engine import uow
        from engine.templates.library import seed_library

        try:
            with uow.unit_of_work():
                done = seed_library()
        except DomainError as exc:
            click.echo(f"{exc.message} ({exc.code})", err=True)
            sys.exit(1)
    click.echo(done.summary())
