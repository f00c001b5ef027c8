"""DICOM devices and association authorization (REQ: IMG-02, DSEC-01/03, DSEC-10); ingest is engine/imaging/ingest.py.

Callers (dicom/handlers.py, the CLI) open the unit of work; these functions flush and audit, never commit.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import audit, uow
from engine.accounts.models import Institution
from engine.actor import Actor
from engine.db import utcnow
from engine.errors import NotFound, ValidationFailed
from engine.imaging.models import NODE_OPERATIONS, DicomNode

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class NodeInfo:
    """A device as seen by one association: a plain snapshot, read once per association (no ORM state)."""

    id: int
    aet: str
    host: str
    port: int | None
    institution_id: int
    institution_code: str
    operations: frozenset[str]
    tls_required: bool
    cert_fingerprint: str | None
    enabled: bool
    description: str = ""

    def allows(self, op: str) -> bool:
        return op in self.operations

    def actor(self, ip: str | None = None) -> Actor:
        """The audit actor of this device (no user; the device is the subject)."""
        return Actor(
            user_id=None,
            username=f"dicom:{self.aet}",
            institution_id=self.institution_id,
            institution_code=self.institution_code,
            ip=ip,
        )


def _info(node: DicomNode, institution_code: str) -> NodeInfo:
    return NodeInfo(
        id=node.id,
        aet=node.aet,
        host=node.host,
        port=node.port,
        institution_id=node.institution_id,
        institution_code=institution_code,
        operations=node.operations,
        tls_required=node.tls_required,
        cert_fingerprint=node.cert_fingerprint,
        enabled=node.enabled,
        description=node.description,
    )


def node_info(node: DicomNode) -> NodeInfo:
    """The plain-value view of a node (with its institution's code) that DICOM work carries outside a session."""
    inst = uow.session().get(Institution, node.institution_id)
    return _info(node, inst.code if inst else "")


# -- devices -------------------------------------------------------------------------------------------------------
def validate_aet(value: str) -> str:
    """An AE title: 1–16 printable ASCII characters, no backslash, not only spaces (PS3.5 §6.2 AE).

    Raises:
        ValidationFailed: the title is not a legal AE title.
    """
    text = (value or "").strip()
    if not text or len(text) > 16 or not text.isascii() or "\\" in text or any(ord(c) < 0x20 for c in text):
        raise ValidationFailed("invalid_aet", "AE 名称须为 1–16 个 ASCII 字符，且不能含反斜杠或控制字符")
    return text


def normalise_fingerprint(value: str | None) -> str | None:
    """A certificate SHA-256 fingerprint as 64 lowercase hex digits (colons and spaces removed).

    Raises:
        ValidationFailed: not a SHA-256 fingerprint.
    """
    if value is None or value == "":
        return None
    text = value.replace(":", "").replace(" ", "").lower()
    if not _FINGERPRINT.fullmatch(text):
        raise ValidationFailed("invalid_fingerprint", "证书指纹须为 SHA-256（64 位十六进制）")
    return text


def parse_operations(allow: Iterable[str] | str) -> list[str]:
    """The allowed operations, validated against NODE_OPERATIONS.

    Raises:
        ValidationFailed: an unknown operation was named.
    """
    items = allow.split(",") if isinstance(allow, str) else list(allow)
    ops = [op.strip().lower() for op in items if op.strip()]
    unknown = sorted(set(ops) - set(NODE_OPERATIONS))
    if unknown:
        raise ValidationFailed("invalid_operation", f"未知的操作：{', '.join(unknown)}")
    return [op for op in NODE_OPERATIONS if op in ops]


def _institution(s: Session, code: str) -> Institution:
    inst = s.execute(select(Institution).where(Institution.code == code)).unique().scalar_one_or_none()
    if inst is None:
        raise NotFound("institution_not_found", f"机构 {code} 不存在")
    return inst


def create_node(
    actor: Actor,
    *,
    aet: str,
    host: str,
    port: int | None,
    institution_code: str,
    allow: Iterable[str] | str,
    tls_required: bool = False,
    cert_fingerprint: str | None = None,
    description: str = "",
    enabled: bool = True,
) -> DicomNode:
    """Register a device (REQ: IMG-02). Audited.

    Raises:
        ValidationFailed: bad AE title, host, port, operation or fingerprint, or the AE + host already exists.
        NotFound: the institution does not exist.
    """
    s = uow.session()
    title = validate_aet(aet)
    host = (host or "").strip()
    if not host or len(host) > 255 or any(c.isspace() for c in host):
        raise ValidationFailed("invalid_host", "主机地址无效")
    if port is not None and not 0 < port < 65536:
        raise ValidationFailed("invalid_port", "端口须在 1–65535 之间")
    inst = _institution(s, institution_code)
    if s.execute(select(DicomNode.id).where(DicomNode.aet == title, DicomNode.host == host)).first():
        raise ValidationFailed("node_exists", f"设备 {title}@{host} 已登记")
    node = DicomNode(
        aet=title,
        host=host,
        port=port,
        institution_id=inst.id,
        allowed_ops=",".join(parse_operations(allow)),
        tls_required=tls_required,
        cert_fingerprint=normalise_fingerprint(cert_fingerprint),
        description=description,
        enabled=enabled,
    )
    s.add(node)
    s.flush()
    audit.record(
        actor,
        "dicom_node_created",
        object_type="dicom_node",
        object_id=node.id,
        details={"aet": title, "host": host, "port": port, "institution": inst.code, "allow": node.allowed_ops},
    )
    return node


def update_node(actor: Actor, node_id: int, **changes: Any) -> DicomNode:
    """Change a device; the next association sees the change (no restart). Audited.

    Raises:
        NotFound: no such node.
        ValidationFailed: a changed value is invalid.
    """
    s = uow.session()
    node = s.get(DicomNode, node_id)
    if node is None:
        raise NotFound("node_not_found", "设备不存在")
    applied: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "allow":
            node.allowed_ops = ",".join(parse_operations(value))
            applied["allow"] = node.allowed_ops
        elif name == "cert_fingerprint":
            node.cert_fingerprint = normalise_fingerprint(value)
            applied[name] = node.cert_fingerprint
        elif name == "aet":
            node.aet = validate_aet(value)
            applied[name] = node.aet
        elif name in {"host", "port", "tls_required", "enabled", "description"}:
            setattr(node, name, value)
            applied[name] = value
        else:
            raise ValidationFailed("invalid_field", f"不能修改字段 {name}")
    node.updated_at = utcnow()
    s.flush()
    audit.record(actor, "dicom_node_updated", object_type="dicom_node", object_id=node.id, details=applied)
    return node


def list_nodes() -> list[tuple[DicomNode, str]]:
    """Every registered device with its institution code, by AE title."""
    s = uow.session()
    rows = s.execute(
        select(DicomNode, Institution.code)
        .join(Institution, Institution.id == DicomNode.institution_id)
        .order_by(DicomNode.aet, DicomNode.id)
    ).all()
    return [(r[0], r[1]) for r in rows]


# -- association authorization -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Authorization:
    node: NodeInfo | None
    reason: str | None  # Chinese, for the audit trail; None when authorized
    code: str | None = None  # machine reason: unknown_aet, wrong_address, disabled, tls_required, certificate, op


def _host_matches(host: str, peer_ip: str) -> bool:
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(peer_ip)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return any(info[4][0] == peer_ip for info in infos)


def authorize(
    calling_aet: str,
    peer_ip: str,
    op: str | None = None,
    *,
    cert_fingerprint: str | None = None,
    tls: bool = False,
) -> Authorization:
    """Decide whether a peer may associate (REQ: DSEC-01, IMG-02): the calling AE title *and* its source address
    must match an enabled registered device; TLS and the certificate fingerprint when the device requires them;
    `op`, when given, must be allowed to the device.
    """
    s = uow.session()
    title = (calling_aet or "").strip()
    rows = s.execute(
        select(DicomNode, Institution.code)
        .join(Institution, Institution.id == DicomNode.institution_id)
        .where(DicomNode.aet == title)
    ).all()
    if not rows:
        return Authorization(None, f"未登记的 AE：{title!r}", "unknown_aet")
    matching = [(n, code) for n, code in rows if _host_matches(n.host, peer_ip)]
    if not matching:
        return Authorization(None, f"AE {title} 来自未登记的地址 {peer_ip}", "wrong_address")
    enabled = [(n, code) for n, code in matching if n.enabled]
    if not enabled:
        return Authorization(None, f"设备 {title} 已停用", "disabled")
    node, code = enabled[0]
    if node.tls_required and not tls:
        return Authorization(None, f"设备 {title} 必须使用 TLS 连接", "tls_required")
    if node.cert_fingerprint and node.cert_fingerprint != (cert_fingerprint or "").lower():
        return Authorization(None, f"设备 {title} 的证书与登记的不符", "certificate")
    if tls and not node.cert_fingerprint and cert_fingerprint:
        # REQ: CRY-02 — a certificate bound to another device never authenticates this one, even when this one
        # has no fingerprint of its own registered.
        owner = s.execute(
            select(DicomNode.aet).where(DicomNode.cert_fingerprint == cert_fingerprint.lower(), DicomNode.id != node.id)
        ).first()
        if owner is not None:
            return Authorization(None, f"设备 {title} 使用了登记给 {owner[0]} 的证书", "certificate")
    info = _info(node, code)
    if op is not None and not info.allows(op):
        return Authorization(None, f"设备 {title} 无权执行 {op}", "op")
    return Authorization(info, None)


def record_association(node: NodeInfo, ip: str, called_aet: str) -> None:
    """Audit an accepted association (DICOM audit EventID 110122 Login / DSEC-10)."""
    audit.record(
        node.actor(ip),
        "dicom_association_accepted",
        object_type="dicom_node",
        object_id=node.id,
        details={"calling_aet": node.aet, "called_aet": called_aet, "dicom_event": "110122"},
    )


def record_rejection(calling_aet: str, ip: str, reason: str, details: dict[str, Any]) -> None:
    """A refused association or operation: a security alert (REQ: DSEC-01; DICOM audit 110113)."""
    audit.record(
        Actor(user_id=None, username=f"dicom:{calling_aet}"[:160], ip=ip),
        "security_alert",
        outcome="failure",
        object_type="dicom_association",
        object_id=calling_aet,
        reason=reason,
        details={**details, "dicom_event": "110113"},
    )
