"""Fixtures shared by the integration tests that run telerad as real processes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BACKEND, PG_HOST, PG_PORT, PG_USER, _pg_admin_exec


@pytest.fixture
def file_database(tmp_path: Path) -> Iterator[str]:
    """A database of its own that several processes can share (the suite's per-test copy is not used here)."""
    if BACKEND == "postgresql":
        name = f"telerad_restart_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _pg_admin_exec(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
        _pg_admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        yield f"sqlite:///{tmp_path / 'telerad.db'}"
