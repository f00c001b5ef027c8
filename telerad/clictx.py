"""What every `telerad` subcommand loads: the Flask app and the settings; a configuration error exits 2 with a
Chinese/English message and no traceback."""

from __future__ import annotations

import sys
from typing import Any

import click

from engine import config


def load_app() -> Any:
    from api.app import create_app  # at call time: bench/timed_web.py wraps create_app

    try:
        return create_app()
    except config.ConfigError as exc:
        click.echo(f"配置错误 / configuration error: {exc}", err=True)
        sys.exit(2)


def load_settings() -> config.Settings:
    """Load the settings; an unsafe configuration exits 2 with a message, like `load_app()`."""
    try:
        return config.load_settings()
    except config.ConfigError as exc:
        click.echo(f"配置错误 / configuration error: {exc}", err=True)
        sys.exit(2)
