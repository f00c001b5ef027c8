"""DICOM TLS between sites (REQ: CRY-02, CLOUD-03, DSEC-01): TLS ≥ 1.2 only, mutual certificates from the hospital
CA, the client certificate bound to its device, plain DICOM limited to configured networks. Real pynetdicom SCUs
with ssl contexts against the SCP's TLS listener."""

from __future__ import annotations

import errno
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from sqlalchemy import select

from dicom import scp as scp_mod
from dicom import status, tls
from dicom.scp import Running
from engine import config
from engine.accounts.models import Institution
from engine.imaging.models import Instance
from tests.dicom import synthetic
from tests.dicom.certs import Issued, TestCA, client_context
from tests.dicom.conftest import add_node, audit_events, count, echo_ok, rows, store

VERIFICATION = "1.2.840.10008.1.1"
CT = synthetic.CT_IMAGE


@dataclass
class PKI:
    ca: TestCA
    server: Issued
    hosp_a: Issued
    hosp_b: Issued
    hosp_c: Issued
    rogue: Issued  # issued by a CA the SCP does not trust
    self_signed: Issued
    expired: Issued  # our CA, validity ended


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    ca = TestCA(tmp_path / "pki")
    rogue_ca = TestCA(tmp_path / "rogue", name="Rogue CA")
    return PKI(
        ca=ca,
        server=ca.issue("telerad-scp", server=True),
        hosp_a=ca.issue("HOSP_A"),
        hosp_b=ca.issue("HOSP_B"),
        hosp_c=ca.issue("HOSP_C"),
        rogue=rogue_ca.issue("HOSP_A_FAKE"),
        self_signed=rogue_ca.issued,
        expired=ca.issue("HOSP_A_OLD", expired=True),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tls_settings(settings: config.Settings, pki: PKI, **extra: Any) -> config.Settings:
    """`settings` with a TLS listener on a free port, the test server certificate and the test CA."""
    return replace(
        settings,
        dicom_tls_port=free_port(),
        dicom_tls_cert=str(pki.server.cert),
        dicom_tls_key=str(pki.server.key),
        dicom_tls_ca=str(pki.ca.path),
        **extra,
    )


def start_tls(app: Flask, settings: config.Settings, pki: PKI, **extra: Any) -> Running:
    """The SCP with its plain listener on a free port and the TLS listener on another. The plain port is picked by
    the kernel at bind time and may be the one `free_port` just returned: then both are picked again."""
    for _ in range(5):
        s = tls_settings(settings, pki, **extra)
        try:
            running = scp_mod.start(app, s, host="127.0.0.1", port=0)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            continue  # scp.start has closed the listener it had already opened
        assert len(running.servers) == 2
        return running
    raise AssertionError("no free pair of ports")


@pytest.fixture
def tls_scp(app: Flask, settings: config.Settings, pki: PKI) -> Iterator[Running]:
    """The SCP with its plain listener on a free port and the TLS listener on another (REQ: CRY-02)."""
    running = start_tls(app, settings, pki)
    yield running
    running.stop()


@pytest.fixture
def hospitals(app: Flask, pki: PKI) -> None:
    """HOSP_A (M01) and HOSP_B (M02): TLS required, each bound to its own certificate (`--tls --cert-fingerprint`)."""
    add_node(app, "HOSP_A", institution="M01", tls_required=True, cert_fingerprint=pki.hosp_a.fingerprint)
    add_node(app, "HOSP_B", institution="M02", tls_required=True, cert_fingerprint=pki.hosp_b.fingerprint)


def tls_port(scp: Running) -> int:
    return int(scp.servers[1].server_address[1])


def tls_associate(scp: Running, aet: str, ctx: ssl.SSLContext, contexts: list[str] | None = None) -> Any:
    ae = AE(ae_title=aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    for abstract in contexts or [VERIFICATION]:
        ae.add_requested_context(abstract, [ExplicitVRLittleEndian])
    return ae.associate("127.0.0.1", tls_port(scp), ae_title="TELERAD", tls_args=(ctx, None))


def alerts(app: Flask, code: str) -> list[Any]:
    return [e for e in audit_events(app, "security_alert") if (e.details or {}).get("code") == code]


def wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


# -- the listener's configuration ----------------------------------------------------------------------------------
def test_cry02_server_context_is_tls12_plus_with_required_client_certificates(
    settings: config.Settings, pki: PKI
) -> None:
    s = replace(
        settings,
        dicom_tls_port=11113,
        dicom_tls_cert=str(pki.server.cert),
        dicom_tls_key=str(pki.server.key),
        dicom_tls_ca=str(pki.ca.path),
    )
    ctx = tls.server_context(s)
    assert ctx is not None
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert tls.server_context(replace(s, dicom_tls_port=0)) is None
    # A TLS port without its certificate, key or CA refuses to start (never a silently missing listener).
    with pytest.raises(tls.TLSConfigError):
        tls.server_context(replace(s, dicom_tls_ca=""))
    with pytest.raises(tls.TLSConfigError):
        tls.server_context(replace(s, dicom_tls_key=str(pki.ca.path.parent / "missing.key")))


def test_cry02_settings_read_from_environment(tmp_path: Path) -> None:
    s = config.load_settings(
        {
            "TELERAD_MODE": "test",
            "TELERAD_INSTANCE_DIR": str(tmp_path),
            "TELERAD_SECRET_KEY": "x" * 64,
            "TELERAD_DICOM_TLS_PORT": "2762",
            "TELERAD_DICOM_TLS_CERT": "/etc/telerad/scp.crt",
            "TELERAD_DICOM_TLS_KEY": "/etc/telerad/scp.key",
            "TELERAD_DICOM_TLS_CA": "/etc/telerad/hospitals-ca.crt",
            "TELERAD_DICOM_PLAIN_NETWORKS": "127.0.0.0/8, 10.8.0.0/16",
        }
    )
    assert (s.dicom_tls_port, s.dicom_tls_cert, s.dicom_tls_key, s.dicom_tls_ca) == (
        2762,
        "/etc/telerad/scp.crt",
        "/etc/telerad/scp.key",
        "/etc/telerad/hospitals-ca.crt",
    )
    nets = tls.parse_networks(s.dicom_plain_networks)
    assert tls.address_allowed("127.0.0.1", nets)
    assert tls.address_allowed("10.8.3.4", nets)
    assert tls.address_allowed("::ffff:10.8.0.9", nets)
    assert not tls.address_allowed("192.168.1.10", nets)
    assert tls.address_allowed("192.168.1.10", [])  # unset: unrestricted
    with pytest.raises(config.ConfigError):
        tls.parse_networks("10.8.0.0/16,not-a-net")


# -- handshake: version and certificates ---------------------------------------------------------------------------
def _raw_handshake(port: int, ctx: ssl.SSLContext) -> bytes:
    """Handshake, then read: TLS 1.3 reports a refused client certificate only on the first read."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=None) as s:
            return s.recv(1)


def test_cry02_tls11_client_handshake_fails(app: Flask, tls_scp: Running, hospitals: None, pki: PKI) -> None:
    ctx = client_context(pki.ca.path, pki.hosp_a, minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1_1)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client really offer TLS 1.1; the server must refuse it
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _raw_handshake(tls_port(tls_scp), ctx)
    assoc = tls_associate(tls_scp, "HOSP_A", ctx)
    assert not assoc.is_established
    assert wait_for(lambda: len(alerts(app, "tls_handshake")) >= 1)
    # TLS 1.2 exactly is accepted (BCP 195: 1.2 and 1.3).
    ok = tls_associate(tls_scp, "HOSP_A", client_context(pki.ca.path, pki.hosp_a, maximum=ssl.TLSVersion.TLSv1_2))
    assert ok.is_established
    assert ok.send_c_echo().Status == status.SUCCESS
    ok.release()


@pytest.mark.parametrize("which", ["no_certificate", "unknown_ca", "self_signed", "expired"])
def test_cry02_client_without_trusted_certificate_rejected(
    app: Flask, tls_scp: Running, hospitals: None, pki: PKI, which: str
) -> None:
    client = {"no_certificate": None, "unknown_ca": pki.rogue, "self_signed": pki.self_signed, "expired": pki.expired}[
        which
    ]
    ctx = client_context(pki.ca.path, client)
    try:
        data = _raw_handshake(tls_port(tls_scp), ctx)
    except (ssl.SSLError, ConnectionError):
        data = b""
    assert data == b""  # refused in the handshake, or closed without a byte of DICOM
    assoc = tls_associate(tls_scp, "HOSP_A", ctx)
    assert not assoc.is_established
    assert wait_for(lambda: len(alerts(app, "tls_handshake")) >= 1)
    assert count(app, Instance) == 0
    # The listener still serves the legitimate hospital.
    good = tls_associate(tls_scp, "HOSP_A", client_context(pki.ca.path, pki.hosp_a))
    assert good.is_established
    good.release()


# -- certificate bound to the device (DSEC-01) ---------------------------------------------------------------------
def test_cry02_dsec01_hosp_a_certificate_with_ae_hosp_b_rejected(
    app: Flask, tls_scp: Running, hospitals: None, pki: PKI
) -> None:
    assoc = tls_associate(tls_scp, "HOSP_B", client_context(pki.ca.path, pki.hosp_a))
    assert assoc.is_rejected
    assert (assoc.acceptor.primitive.result, assoc.acceptor.primitive.diagnostic) == (0x01, 0x03)
    found = alerts(app, "certificate")
    assert len(found) == 1
    assert found[0].details["tls"] is True
    assert found[0].details["dicom_event"] == "110113"
    assert found[0].ip == "127.0.0.1"


def test_cry02_certificate_bound_to_another_device_never_authenticates_an_unbound_one(
    app: Flask, tls_scp: Running, hospitals: None, pki: PKI
) -> None:
    """HOSP_C requires TLS but has no fingerprint registered: any certificate of the CA — except one bound to
    another device."""
    add_node(app, "HOSP_C", institution="M02", tls_required=True)
    stolen = tls_associate(tls_scp, "HOSP_C", client_context(pki.ca.path, pki.hosp_a))
    assert stolen.is_rejected
    assert len(alerts(app, "certificate")) == 1
    own = tls_associate(tls_scp, "HOSP_C", client_context(pki.ca.path, pki.hosp_c))
    assert own.is_established
    assert own.send_c_echo().Status == status.SUCCESS
    own.release()


def test_cry02_correct_certificate_echo_and_store(app: Flask, tls_scp: Running, hospitals: None, pki: PKI) -> None:
    ctx = client_context(pki.ca.path, pki.hosp_a)
    assoc = tls_associate(tls_scp, "HOSP_A", ctx, [VERIFICATION, CT])
    assert assoc.is_established
    assert isinstance(assoc.dul.socket.socket, ssl.SSLSocket)
    assert assoc.dul.socket.socket.version() in ("TLSv1.2", "TLSv1.3")
    assert assoc.send_c_echo().Status == status.SUCCESS
    from pydicom import dcmread

    sent = [dcmread(synthetic.ct(Path(tls_scp.ctx.store.root.parent) / f"tls-{i}.dcm")) for i in range(3)]
    statuses = [int(assoc.send_c_store(ds).Status) for ds in sent]
    assoc.release()
    assert statuses == [status.SUCCESS] * 3
    stored = rows(
        app,
        select(Instance.sop_instance_uid, Institution.code).join(
            Institution, Institution.id == Instance.institution_id
        ),
    )
    assert sorted(stored) == sorted((str(ds.SOPInstanceUID), "M01") for ds in sent)
    assert alerts(app, "certificate") == []
    assert alerts(app, "tls_handshake") == []
    accepted = audit_events(app, "dicom_association_accepted")
    assert [e.details["calling_aet"] for e in accepted] == ["HOSP_A"]


# -- plain DICOM where TLS is due ----------------------------------------------------------------------------------
def test_cry02_plain_dicom_to_tls_port_closed(app: Flask, tls_scp: Running, hospitals: None, pki: PKI) -> None:
    from tests.dicom.test_security import _associate_rq

    with socket.create_connection(("127.0.0.1", tls_port(tls_scp)), timeout=10) as sock:
        sock.sendall(_associate_rq(b"HOSP_A".ljust(16), b"TELERAD".ljust(16)))
        try:
            reply = sock.recv(64)
        except ConnectionResetError:
            reply = b""
    assert not reply.startswith(b"\x02")  # never an A-ASSOCIATE-AC
    assert reply == b"" or reply[:1] == b"\x15"  # closed, possibly after a TLS alert record
    assert wait_for(lambda: len(alerts(app, "tls_handshake")) == 1)


def test_cry02_silent_peer_on_tls_port_does_not_block_other_hospitals(
    app: Flask, tls_scp: Running, hospitals: None, pki: PKI
) -> None:
    """pynetdicom handshakes in the accept loop: one silent TCP peer stalled every TLS connection (fixed in
    dicom/tls.py). Now the handshake runs per connection, bounded by the ACSE timeout."""
    tls_scp.ae.acse_timeout = 2
    silent = [socket.create_connection(("127.0.0.1", tls_port(tls_scp)), timeout=10) for _ in range(3)]
    try:
        started = time.monotonic()
        assoc = tls_associate(tls_scp, "HOSP_A", client_context(pki.ca.path, pki.hosp_a))
        assert assoc.is_established
        assert assoc.send_c_echo().Status == status.SUCCESS
        assoc.release()
        assert time.monotonic() - started < 1.5
        for s in silent:  # and the silent peers are dropped after the ACSE timeout
            assert s.recv(1) == b""
        assert time.monotonic() - started < 8
    finally:
        for s in silent:
            s.close()


def test_cry02_tls_required_node_refused_on_plain_port(
    app: Flask, tls_scp: Running, hospitals: None, tmp_path: Path
) -> None:
    assert not echo_ok(tls_scp.port, "HOSP_A")
    ae = AE(ae_title="HOSP_A")
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate("127.0.0.1", tls_scp.port, ae_title="TELERAD")
    assert assoc.is_rejected
    found = alerts(app, "tls_required")
    assert len(found) == 2
    assert found[0].details["tls"] is False


def test_cry02_plain_port_limited_to_configured_networks(
    app: Flask, tls_scp: Running, hospitals: None, pki: PKI, tmp_path: Path
) -> None:
    add_node(app, "LOCAL1")  # a plain-DICOM device on localhost (e.g. the 前置机)
    plain = tls_scp.servers[0]
    assert echo_ok(tls_scp.port, "LOCAL1")
    plain.allowed_networks = tls.parse_networks("10.8.0.0/16")  # VPN only: 127.0.0.1 is outside
    with socket.create_connection(("127.0.0.1", tls_scp.port), timeout=10) as sock:
        assert sock.recv(1) == b""  # closed before any PDU is read
    assert not echo_ok(tls_scp.port, "LOCAL1")
    found = alerts(app, "plain_network")
    assert len(found) == 1  # throttled: one alert per address and reason per minute
    assert found[0].ip == "127.0.0.1"
    # The TLS port is not subject to the plain-port restriction.
    assoc = tls_associate(tls_scp, "HOSP_A", client_context(pki.ca.path, pki.hosp_a))
    assert assoc.is_established
    assoc.release()
    plain.allowed_networks = tls.parse_networks("127.0.0.0/8,::1")
    assert echo_ok(tls_scp.port, "LOCAL1")
    assert store(tls_scp.port, "LOCAL1", [synthetic.ct(tmp_path / "a.dcm")]) == [status.SUCCESS]


# -- revocation (CRL) ----------------------------------------------------------------------------------------------
def test_cry02_revoked_certificate_refused_from_the_next_connection_without_restart(
    app: Flask, settings: config.Settings, hospitals: None, pki: PKI, tmp_path: Path
) -> None:
    """TELERAD_DICOM_TLS_CRL: HOSP_A connects while its certificate is good; the CA publishes a CRL revoking it and
    the next TLS connection fails the handshake (audited), without restarting the SCP; HOSP_B is unaffected."""
    crl = pki.ca.crl(tmp_path / "hospital-ca.crl")
    running = start_tls(app, settings, pki, dicom_tls_crl=str(crl))
    try:
        assoc = tls_associate(running, "HOSP_A", client_context(pki.ca.path, pki.hosp_a))
        assert assoc.is_established
        assert assoc.send_c_echo().Status == status.SUCCESS
        assoc.release()

        time.sleep(0.01)  # a distinct mtime even on coarse clocks
        pki.ca.crl(crl, revoked=[pki.hosp_a])
        refused = tls_associate(running, "HOSP_A", client_context(pki.ca.path, pki.hosp_a))
        assert not refused.is_established
        assert wait_for(lambda: len(alerts(app, "tls_handshake")) == 1)
        assert "revoked" in alerts(app, "tls_handshake")[0].details["detail"]

        other = tls_associate(running, "HOSP_B", client_context(pki.ca.path, pki.hosp_b))
        assert other.is_established
        other.release()

        # A CRL update that cannot be read keeps the last good one (HOSP_A stays refused, HOSP_B served).
        crl.write_text("not a CRL")
        assert not tls_associate(running, "HOSP_A", client_context(pki.ca.path, pki.hosp_a)).is_established
        still = tls_associate(running, "HOSP_B", client_context(pki.ca.path, pki.hosp_b))
        assert still.is_established
        still.release()
    finally:
        running.stop()


def test_cry02_unreadable_crl_refuses_to_start(settings: config.Settings, pki: PKI, tmp_path: Path) -> None:
    bad = tmp_path / "bad.crl"
    bad.write_text("garbage")
    s = tls_settings(settings, pki, dicom_tls_crl=str(bad))
    with pytest.raises(tls.TLSConfigError, match="CRL"):
        tls.server_context(s)
    ctx = tls.server_context(replace(s, dicom_tls_crl=str(pki.ca.crl(tmp_path / "ok.crl"))))
    assert ctx is not None
    assert ctx.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
