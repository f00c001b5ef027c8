"""DICOM TLS listener and plain-port source restriction (REQ: CRY-02, CLOUD-03, DSEC-01, DSEC-07).

- `server_context`: PS3.15 BCP 195 profile — TLS ≥ 1.2 only, the SCP's certificate, and client certificates
  required and verified against the configured hospital CA. The client certificate's SHA-256 fingerprint is then
  bound to the device by `services.authorize` (`telerad dicom node add --tls --cert-fingerprint`). With
  `TELERAD_DICOM_TLS_CRL`, revoked client certificates fail the handshake; a changed CRL file is picked up by the next
  connection (`ServerContexts`).
- `GuardedServer`: pynetdicom's `AssociationServer.get_request` performs the TLS handshake in the accept loop with no
  timeout, so one peer that connects to the TLS port and sends nothing (or plain DICOM) would stall every other TLS
  connection. Here the accept loop only wraps the socket; the handshake runs in the connection's own thread,
  bounded by the ACSE timeout. A failed handshake (no client certificate, unknown CA, TLS < 1.2, plain bytes)
  closes the connection and is audited as a security alert.
- On the plain port, connections from outside the configured networks (`TELERAD_DICOM_PLAIN_NETWORKS`, e.g.
  localhost and the VPN) are closed before any PDU is read, and audited.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from dicom.server import TeleradServer
from engine import config

log = logging.getLogger("telerad.dicom")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Refusal = Callable[[str, str, str, dict[str, Any]], None]  # (ip, code, reason in Chinese, details)

# One security alert per (source address, reason) per this many seconds: a flood of refused connections must not
# turn into a flood of audit rows.
ALERT_INTERVAL_S = 60.0


class TLSConfigError(config.ConfigError):
    """The TLS port is set but the certificate, key or CA is missing or unreadable."""


def server_context(settings: config.Settings) -> ssl.SSLContext | None:
    """The TLS listener's context, or None when no TLS port is configured (REQ: CRY-02).

    Raises:
        TLSConfigError: a TLS port is configured without a readable certificate, key and CA.
    """
    if not settings.dicom_tls_port:
        return None
    cert, key, ca = settings.dicom_tls_cert, settings.dicom_tls_key, settings.dicom_tls_ca
    if not (cert and key and ca):
        raise TLSConfigError(
            "已设置 TELERAD_DICOM_TLS_PORT，但缺少 TELERAD_DICOM_TLS_CERT、TELERAD_DICOM_TLS_KEY 或 "
            "TELERAD_DICOM_TLS_CA"
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # BCP 195 / RFC 8996: no TLS 1.0 or 1.1
    ctx.verify_mode = ssl.CERT_REQUIRED  # mutual authentication: every peer presents a certificate of our CA
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(ca)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"DICOM TLS 证书或密钥无法读取：{exc}") from exc
    if settings.dicom_tls_crl:
        # REQ: CRY-02 revocation: the client certificate is checked against the CA's CRL; with a CRL configured, a
        # certificate whose issuer has no CRL there fails too (fail closed).
        try:
            ctx.load_verify_locations(settings.dicom_tls_crl)
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(f"DICOM TLS 证书吊销列表（CRL）无法读取：{exc}") from exc
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return ctx


def _crl_stamp(settings: config.Settings) -> tuple[int, int] | None:
    if not settings.dicom_tls_crl:
        return None
    try:
        st = os.stat(settings.dicom_tls_crl)
    except OSError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_size)


class ServerContexts:
    """The TLS listener's context, rebuilt when the CRL file changes: a certificate revoked by publishing a new CRL
    is refused from the next connection on, without a restart. A new CRL that cannot be read leaves the last good
    context in use (logged as an error), so a botched CRL update does not take the TLS port down."""

    def __init__(self, settings: config.Settings, context: ssl.SSLContext) -> None:
        self._settings = settings
        self._context = context
        self._stamp = _crl_stamp(settings)
        self._lock = threading.Lock()

    def current(self) -> ssl.SSLContext:
        stamp = _crl_stamp(self._settings)
        if stamp == self._stamp:
            return self._context
        with self._lock:
            if stamp != self._stamp:
                try:
                    fresh = server_context(self._settings)
                except TLSConfigError as exc:
                    log.error("DICOM TLS: the changed CRL was not loaded, the previous one stays in use: %s", exc)
                else:
                    if fresh is not None:
                        self._context = fresh
                        log.info("DICOM TLS: CRL %s reloaded", self._settings.dicom_tls_crl)
                self._stamp = stamp
            return self._context


def parse_networks(value: str) -> list[Network]:
    """Comma-separated CIDRs or addresses (`127.0.0.1`, `10.8.0.0/16`, `::1`); empty means unrestricted.

    Raises:
        config.ConfigError: an entry is not an address or network.
    """
    return config.parse_networks(value, "TELERAD_DICOM_PLAIN_NETWORKS")


def address_allowed(ip: str, networks: list[Network]) -> bool:
    """Whether a source address lies in one of `networks` (always, when the list is empty)."""
    return not networks or config.address_in(ip, networks)


class _AlertThrottle:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], float] = {}

    def due(self, ip: str, code: str) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get((ip, code))
            if last is not None and now - last < ALERT_INTERVAL_S:
                return False
            if len(self._last) > 10_000:
                self._last.clear()
            self._last[(ip, code)] = now
            return True


class GuardedServer(TeleradServer):
    """TeleradServer with the TLS handshake moved out of the accept loop and an optional source-network filter."""

    def __init__(
        self,
        *args: Any,
        allowed_networks: list[Network] | None = None,
        on_refused: Refusal | None = None,
        tls_contexts: ServerContexts | None = None,
        **kwargs: Any,
    ) -> None:
        self.tls_contexts = tls_contexts  # not `contexts`: pynetdicom's server keeps its presentation contexts there
        self.allowed_networks = list(allowed_networks or [])
        self.on_refused = on_refused
        self._throttle = _AlertThrottle()
        super().__init__(*args, **kwargs)

    def _refused(self, ip: str, code: str, reason: str, details: dict[str, Any]) -> None:
        log.warning("DICOM connection from %s refused: %s (%s)", ip, reason, code)
        if self.on_refused is not None and self._throttle.due(ip, code):
            try:
                self.on_refused(ip, code, reason, details)
            except Exception:  # auditing must not take the listener down
                log.exception("DICOM: could not audit a refused connection")

    # -- accept loop (one thread): no blocking work here ---------------------------------------------------------
    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client_socket, address = self.socket.accept()
        if self.ssl_context:
            ctx = self.tls_contexts.current() if self.tls_contexts is not None else self.ssl_context
            client_socket = ctx.wrap_socket(client_socket, server_side=True, do_handshake_on_connect=False)
        return client_socket, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Plain port: only the configured source networks (REQ: CRY-02). Refused sockets are closed at once."""
        if self.ssl_context is None and self.allowed_networks:
            ip = str(client_address[0])
            if not address_allowed(ip, self.allowed_networks):
                self._refused(
                    ip,
                    "plain_network",
                    f"来自 {ip} 的明文 DICOM 连接不在允许的网段内，须使用 TLS",
                    {"port": self.server_address[1]},
                )
                return False
        return True

    # -- per-connection thread ----------------------------------------------------------------------------------
    def serve_connection(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            ip = str(client_address[0])
            try:
                request.settimeout(self.ae.acse_timeout)  # a silent peer cannot hold the handshake open
                request.do_handshake()
                request.settimeout(None)
            except (OSError, ValueError) as exc:
                self._refused(
                    ip,
                    "tls_handshake",
                    "DICOM TLS 握手失败（无客户端证书、证书不受信任、协议版本过低或非 TLS 数据）",
                    {"error": type(exc).__name__, "detail": str(exc)[:200], "port": self.server_address[1]},
                )
                self.shutdown_request(request)
                return
        super().serve_connection(request, client_address)
