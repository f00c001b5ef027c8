"""PostgreSQL pool liveness (engine.db.ping_when_idle): a connection that sat idle is pinged and replaced when dead; a
busy one is not pinged on every checkout (REQ: REL-01). The DICOM receiver's side of it is in
tests/dicom/test_store.py (test_dsec05_store_survives_the_server_dropping_the_receivers_connection).

PostgreSQL only: SQLite has no server to lose a connection to.
"""

from __future__ import annotations

import time

import pytest
from flask import Flask
from sqlalchemy import text

from api.extensions import db
from engine import uow
from engine.db import IDLE_PING_SECONDS
from tests.conftest import BACKEND, terminate_backends

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="PostgreSQL 专用：SQLite 没有可断开的服务器连接")


def _backend_pid(app: Flask) -> int:
    with app.app_context(), uow.unit_of_work():
        return int(uow.session().execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_rel01_idle_connection_killed_by_the_server_is_replaced_on_checkout(app: Flask) -> None:
    first = _backend_pid(app)
    terminate_backends([first])  # e.g. a database restart while the pool held the connection
    time.sleep(IDLE_PING_SECONDS + 0.3)
    second = _backend_pid(app)  # no error: the checkout's ping found it dead and the pool reconnected
    assert second != first


def test_busy_connection_is_not_pinged_on_every_checkout(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    with app.app_context():
        dialect = db.engine.dialect
    pings: list[object] = []
    real_ping = dialect.do_ping

    def counting_ping(dbapi_conn: object) -> bool:
        pings.append(dbapi_conn)
        return bool(real_ping(dbapi_conn))

    monkeypatch.setattr(dialect, "do_ping", counting_ping)
    _backend_pid(app)
    pids = {_backend_pid(app) for _ in range(20)}
    assert pings == []  # checked in moments before each checkout: no round trip spent on a ping
    assert len(pids) == 1
    time.sleep(IDLE_PING_SECONDS + 0.3)
    assert _backend_pid(app) in pids  # idle long enough: pinged once, alive, kept
    assert len(pings) == 1
