"""Composition root of the DICOM SCP: build the AE, bind the handlers, start one or several receiver processes.

Configuration (REQ: DSEC-07, DSEC-09): explicit association limits and timeouts, maximum PDU, chunked receive to a
file on the store's filesystem, SOP-class and transfer-syntax allowlists (no unrestricted storage), our own
calling-AE authorization from the device table (handlers.handle_requested) and the called-AE check.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydicom import config as pydicom_config
from pynetdicom import AE, _config

from dicom import handlers, receiving, supervisor, tls
from dicom.context import Context, Limits
from dicom.server import TeleradServer
from dicom.shared_limits import AcceptBalance, SharedCounts
from dicom.uids import STORAGE_SOP_CLASSES, supported_contexts
from engine import config, uow
from engine.imaging import services

log = logging.getLogger("telerad.dicom")


def configure_pynetdicom() -> None:
    """Process-wide pynetdicom settings (REQ: DSEC-07, DSEC-09)."""
    _config.STORE_RECV_CHUNKED_DATASET = True  # stream each received data set to a file: bounded memory
    _config.UNRESTRICTED_STORAGE_SERVICE = False  # only the allowlisted SOP classes
    _config.LOG_HANDLER_LEVEL = "none"  # no per-PDU debug formatting on the hot path
    # C-FIND: pynetdicom formats every request and response identifier (pretty_dataset) even when the log level
    # drops the lines: ~0.04 ms per match.
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    # UIDs are validated by engine.imaging.uids (stricter than ENFORCE_UID_CONFORMANCE, and answered with a
    # failure status instead of an aborted association); pydicom only reads here, so its per-value validation
    # warnings are noise on the hot path.
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    # Each association is a pipeline of threads (DUL receiver, association reactor, sealer) handing work over
    # with syscalls; with the default 5 ms switch interval a thread returning from a syscall can wait that long
    # for the GIL. A short interval bounds the hand-over latency.
    sys.setswitchinterval(float(os.environ.get("TELERAD_DICOM_SWITCH_INTERVAL", "0.0005")))


def build_ae(settings: config.Settings) -> AE:
    ae = AE(ae_title=settings.dicom_aet)
    ae.maximum_associations = settings.dicom_max_associations
    ae.acse_timeout = settings.dicom_acse_timeout
    ae.dimse_timeout = settings.dicom_dimse_timeout
    ae.network_timeout = settings.dicom_network_timeout
    ae.connection_timeout = settings.dicom_connection_timeout
    ae.maximum_pdu_size = settings.dicom_max_pdu
    ae.require_called_aet = True  # REQ: DSEC-02
    ae.supported_contexts = supported_contexts()
    for cx in ae.supported_contexts:  # C-GET: accept the SCU's SCP/SCU role selection for storage (DCM-04); set
        if cx.abstract_syntax in STORAGE_SOP_CLASSES:  # here, as the supported_contexts setter drops roles
            cx.scu_role = cx.scp_role = True
    return ae


def tls_context(settings: config.Settings) -> ssl.SSLContext | None:
    """Server TLS for member-hospital links (REQ: CRY-02, CLOUD-03): TLS ≥ 1.2 and a client certificate from the
    configured CA; the certificate's fingerprint is then bound to the device (handlers.handle_requested).
    See dicom/tls.py; a TLS port without certificate, key and CA refuses to start."""
    return tls.server_context(settings)


@dataclass
class Running:
    """A started SCP (one process): its AE and listening servers."""

    ae: AE
    servers: list[TeleradServer]
    ctx: Context

    @property
    def port(self) -> int:
        return int(self.servers[0].server_address[1])

    def stop(self) -> None:
        for srv in self.servers:
            srv.shutdown()
        self.ae.shutdown()
        receiving.close(self.ctx.receiver)


def _audit_refused(ctx: Context, ip: str, code: str, reason: str, details: dict[str, Any]) -> None:
    """A connection refused before any association (TLS handshake, plain-port network): a security alert."""
    with ctx.app.app_context(), uow.unit_of_work():
        services.record_rejection("", ip, reason, {**details, "code": code})


def _server(ae: AE, ctx: Context, host: str, port: int, settings: config.Settings, **kw: Any) -> TeleradServer:
    srv = tls.GuardedServer(  # TLS handshake off the accept loop, plain-port networks (REQ: CRY-02)
        ae,
        (host, port),
        settings.dicom_aet,
        ae.supported_contexts,
        evt_handlers=handlers.bind(ctx),
        max_pdu=settings.dicom_max_pdu,
        on_association_end=lambda assoc: handlers.on_association_end(ctx, assoc),
        rx_dir=str(ctx.store.tmp_dir),
        allowed_networks=tls.parse_networks(settings.dicom_plain_networks),
        on_refused=lambda ip, code, reason, details: _audit_refused(ctx, ip, code, reason, details),
        **kw,
    )
    ae._servers.append(srv)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True, name="dicom-server").start()
    return srv


def start(
    app: Any,
    settings: config.Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    reuse_port: bool = False,
    shared: SharedCounts | None = None,
    listeners: dict[int, int] | None = None,
    balance: AcceptBalance | None = None,
) -> Running:
    """Start the SCP in this process (non-blocking; the listeners run in daemon threads).

    `port=0` picks a free port (tests). `listeners` (port -> fd) are listening sockets made by the supervisor and
    shared by its receivers, which take turns through `balance` (dicom/shared_limits.py AcceptBalance). Received
    data sets are written into the object store's `tmp/` (same filesystem, so linking them under their content key
    is atomic; see dicom/fastpath.py).
    """
    configure_pynetdicom()
    ae = build_ae(settings)
    ctx = Context(
        app=app,
        aet=settings.dicom_aet,
        limits=Limits(per_ae=settings.dicom_max_associations_per_ae, shared=shared),
        conflict_status=settings.dicom_conflict_status,
        find_limit=settings.dicom_find_limit,
        receiver=receiving.receiver(app, settings),  # the one receive path (engine/imaging/receive.py)
    )
    bind_host = settings.dicom_host if host is None else host
    inherited = listeners or {}

    def shared_socket(port: int) -> dict[str, Any]:
        return {"listen_fd": inherited[port], "balance": balance} if port in inherited else {}

    plain_port = settings.dicom_port if port is None else port
    servers = [_server(ae, ctx, bind_host, plain_port, settings, reuse_port=reuse_port, **shared_socket(plain_port))]
    try:
        tls_ctx = tls_context(settings)
        if tls_ctx is not None:
            servers.append(
                _server(
                    ae,
                    ctx,
                    bind_host,
                    settings.dicom_tls_port,
                    settings,
                    reuse_port=reuse_port,
                    ssl_context=tls_ctx,
                    **shared_socket(settings.dicom_tls_port),
                    tls_contexts=tls.ServerContexts(settings, tls_ctx),
                )
            )
    except BaseException:  # never a half-started SCP: the plain listener goes too (e.g. the TLS port is taken)
        Running(ae, servers, ctx).stop()
        raise
    log.info("DICOM SCP %s listening on %s:%s", settings.dicom_aet, bind_host, servers[0].server_address[1])
    return Running(ae, servers, ctx)


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def run_receiver(
    app_factory: Callable[[], Any],
    shared: SharedCounts,
    index: int,
    listeners: dict[int, int] | None = None,
    balance: AcceptBalance | None = None,
) -> None:
    """Receiver `index` of `telerad dicom --processes N` (dicom/supervisor.py), in its own process: build its app
    (its own database engine and pool), serve on the supervisor's listening sockets (`listeners`, taking turns
    through `balance`; without them, its own SO_REUSEPORT socket) until SIGTERM/SIGINT, exit. Never returns."""
    app = app_factory()
    settings = config.current()
    shared.bind(index, settings.instance_dir / "dicom-associations.lock")
    if balance is not None:
        balance.bind(index)
    start(app, settings, reuse_port=not listeners, shared=shared, listeners=listeners, balance=balance)
    freeze_startup_heap()
    signal.sigwait(_STOP_SIGNALS)
    os._exit(0)


def share_before_fork(app_factory: Callable[[], Any]) -> None:
    """In the process the receivers are forked from (dicom/supervisor.py's template): import what a receiver needs
    once and keep the garbage collector off those objects, so the receivers share those pages instead of each
    importing (and writing) its own copy.

    An app is built here only for its imports (the blueprints and their modules are imported when an app is built);
    its database connections are closed before the fork (each receiver builds its own app and pool). `gc.freeze()`
    moves every object so far out of the collector's reach: a collection in a receiver no longer writes to their
    headers, which copied the shared pages into each receiver.
    """
    app = app_factory()
    with app.app_context():
        uow.session().get_bind().engine.dispose()
    del app
    gc.collect()
    gc.freeze()


def serve(app_factory: Callable[[], Any], processes: int = 1) -> None:
    """`telerad dicom`: serve until SIGTERM/SIGINT in this process; with `processes` > 1, receivers sharing the port
    (SO_REUSEPORT; all durable state is in the database and the object store) under dicom/supervisor.py, which
    restarts a receiver that dies.
    """
    if processes > 1:
        supervisor.serve(app_factory, processes)
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)  # before any thread starts, so sigwait gets them
    start(app_factory(), config.current())
    freeze_startup_heap()
    signal.sigwait(_STOP_SIGNALS)


def freeze_startup_heap() -> None:
    """Keep the collector off what startup built (modules, the app, mappers, codecs): a full collection — the
    interpreter's own, and pynetdicom's server calls `gc.collect()` every 60 turns of its accept loop — then only
    walks what was allocated since. Measured in a receiver during bench/bench_dicom.py small_4 on PostgreSQL: the two
    full collections of a 3,000-instance run took 0.21 s (~0.1 s each, every thread stopped) without this."""
    gc.collect()
    gc.freeze()
