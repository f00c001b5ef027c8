"""Test PKI for DICOM TLS (REQ: CRY-02, CLOUD-03): a hospital CA, the SCP's server certificate and member-hospital
client certificates, generated at test time with `cryptography` (no key material in the repository)."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its key as PEM files, with the SHA-256 fingerprint of the DER certificate."""

    cert: Path
    key: Path
    fingerprint: str


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "telerad test"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    cert_path = directory / f"{stem}.crt"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    return Issued(cert_path, key_path, hashlib.sha256(der).hexdigest())


class TestCA:
    """A self-signed CA that issues server and client certificates into `directory`."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str = "Telerad Test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        stem = name.lower().replace(" ", "-")
        self.issued = _write(directory, stem, self.cert, self.key)
        self.path = self.issued.cert

    def issue(self, cn: str, *, server: bool = False, expired: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC) - (dt.timedelta(days=30) if expired else dt.timedelta(0))
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        return _write(self.directory, cn.lower(), cert, key)

    def crl(self, path: Path, revoked: list[Issued] = ()) -> Path:  # type: ignore[assignment]
        """Write a CRL of this CA (PEM) listing `revoked`; returns `path`."""
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=1))
        )
        for issued in revoked:
            serial = x509.load_pem_x509_certificate(issued.cert.read_bytes()).serial_number
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - dt.timedelta(minutes=1))
                .build()
            )
        crl = builder.sign(self.key, hashes.SHA256())
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        tmp.replace(path)  # the SCP never reads a half-written CRL
        return path


def client_context(
    ca: Path,
    client: Issued | None = None,
    *,
    maximum: ssl.TLSVersion | None = None,
    minimum: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """The SCU's TLS context: verifies the SCP against `ca`, presents `client` when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(ca))
    ctx.check_hostname = False  # the SCP is addressed by IP; its certificate is still verified against the CA
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: exactly what the negative tests offer
        warnings.simplefilter("ignore", DeprecationWarning)
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    return ctx
