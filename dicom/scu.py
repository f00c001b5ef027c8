"""DICOM SCU helpers: C-ECHO, C-FIND, C-MOVE, C-GET and C-STORE to a remote node (REQ: DCM-03, DCM-04, IMG-08).

Used by the forwarding worker (engine/imaging/forwarding.py), the admin API and `telerad dicom echo|find|retrieve|
send`. A node is anything with `aet`, `host` and `port` (a DicomNode row, a NodeInfo, or `Remote`). Every call
opens its own association with explicit timeouts and releases it; nothing here touches the database.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, StoragePresentationContexts, build_role, evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from dicom import status

log = logging.getLogger("telerad.dicom.scu")

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
UNCOMPRESSED = [EXPLICIT_VR_LE, IMPLICIT_VR_LE]
MAX_CONTEXTS = 128  # PS3.8 §9.3.2.2: presentation context IDs are odd numbers 1..255
# C-STORE response statuses that mean "the destination has it" (PS3.4 B.2.3: success and the warnings).
STORE_OK = {status.SUCCESS, 0xB000, 0xB007, 0xB006}


class NodeLike(Protocol):
    aet: str
    host: str
    port: int | None


@dataclass(frozen=True)
class Remote:
    aet: str
    host: str
    port: int


class ScuError(Exception):
    """No association (refused, rejected, unreachable) or the association broke."""


@dataclass
class Options:
    calling_aet: str = "TELERAD"
    timeout: float = 30.0
    tls: ssl.SSLContext | None = None
    max_pdu: int = 262144


def _ae(opts: Options) -> AE:
    ae = AE(ae_title=opts.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = opts.timeout
    ae.connection_timeout = opts.timeout
    ae.maximum_pdu_size = opts.max_pdu
    return ae


def _target(node: NodeLike) -> tuple[str, int]:
    if not node.port:
        raise ScuError(f"节点 {node.aet} 未配置端口")
    return node.host, int(node.port)


@contextmanager
def associate(
    node: NodeLike,
    contexts: Iterable[PresentationContext | tuple[str, list[str]]],
    opts: Options | None = None,
    **kw: Any,
) -> Iterator[Association]:
    """An established association to `node` (released on exit, aborted on error).

    Raises:
        ScuError: the association was rejected, aborted or could not be opened.
    """
    opts = opts or Options()
    ae = _ae(opts)
    for ctx in contexts:
        if isinstance(ctx, PresentationContext):
            ae.add_requested_context(ctx.abstract_syntax, ctx.transfer_syntax)
        else:
            ae.add_requested_context(ctx[0], ctx[1])
    host, port = _target(node)
    tls_args = (opts.tls, host) if opts.tls else None
    assoc = ae.associate(host, port, ae_title=node.aet, tls_args=tls_args, **kw)
    if not assoc.is_established:
        why = "被拒绝" if assoc.is_rejected else "无法连接"
        raise ScuError(f"与 {node.aet}@{host}:{port} 的连接{why}")
    _nodelay(assoc)
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    else:
        if assoc.is_established:
            assoc.release()


def _nodelay(assoc: Association) -> None:
    """TCP_NODELAY on our side: a C-STORE goes out as several PDUs, and with Nagle on, each message waits ~40 ms
    for the peer's delayed ACK (measured: 48 ms per small instance to a pynetdicom peer, issue 4)."""
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # closed meanwhile: the next send reports it


def _status(rsp: Dataset | None) -> int | None:
    return int(rsp.Status) if rsp is not None and "Status" in rsp else None


# -- C-ECHO --------------------------------------------------------------------------------------------------------
def echo(node: NodeLike, opts: Options | None = None) -> int:
    """C-ECHO (PS3.4 A); returns the status (0x0000 = success).

    Raises:
        ScuError: no association or no response.
    """
    with associate(node, [(Verification, UNCOMPRESSED)], opts) as assoc:
        st = _status(assoc.send_c_echo())
    if st is None:
        raise ScuError("C-ECHO 无响应")
    return st


# -- C-FIND --------------------------------------------------------------------------------------------------------
def _identifier(level: str, keys: dict[str, Any]) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level.upper()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for kw, value in keys.items():
        setattr(ds, kw, value)
    return ds


def _model(level: str, find: str, patient: str) -> str:
    return patient if level.upper() == "PATIENT" else find


def find(node: NodeLike, level: str, keys: dict[str, Any], opts: Options | None = None) -> list[Dataset]:
    """C-FIND (PS3.4 C) at PATIENT (Patient Root) or STUDY/SERIES/IMAGE (Study Root); the matches.

    `keys` maps element keywords to match values ("" = return key).

    Raises:
        ScuError: no association, or the peer answered with a failure status.
    """
    model = _model(level, StudyRootQueryRetrieveInformationModelFind, PatientRootQueryRetrieveInformationModelFind)
    out: list[Dataset] = []
    with associate(node, [(model, UNCOMPRESSED)], opts) as assoc:
        for rsp, ident in assoc.send_c_find(_identifier(level, keys), model):
            st = _status(rsp)
            if st is None:
                raise ScuError("C-FIND 无响应")
            if st in (status.PENDING, 0xFF01) and ident is not None:
                out.append(ident)
            elif st not in (status.SUCCESS, status.PENDING, 0xFF01):
                raise ScuError(f"C-FIND 失败：0x{st:04X}")
    return out


# -- C-MOVE / C-GET ------------------------------------------------------------------------------------------------
@dataclass
class RetrieveResult:
    status: int
    completed: int = 0
    failed: int = 0
    warning: int = 0
    files: list[Path] = field(default_factory=list)


def _counts(result: RetrieveResult, rsp: Dataset) -> None:
    result.completed = int(rsp.get("NumberOfCompletedSuboperations", result.completed) or 0)
    result.failed = int(rsp.get("NumberOfFailedSuboperations", result.failed) or 0)
    result.warning = int(rsp.get("NumberOfWarningSuboperations", result.warning) or 0)


def move(
    node: NodeLike, keys: dict[str, Any], dest_aet: str, level: str = "STUDY", opts: Options | None = None
) -> RetrieveResult:
    """C-MOVE (PS3.4 C.4.2): ask `node` to send the matches to `dest_aet` (usually our own AE title).

    Raises:
        ScuError: no association or no final response.
    """
    model = _model(level, StudyRootQueryRetrieveInformationModelMove, PatientRootQueryRetrieveInformationModelMove)
    result = RetrieveResult(status=-1)
    with associate(node, [(model, UNCOMPRESSED)], opts) as assoc:
        for rsp, _ident in assoc.send_c_move(_identifier(level, keys), dest_aet, model):
            st = _status(rsp)
            if st is None:
                raise ScuError("C-MOVE 无响应")
            _counts(result, rsp)
            result.status = st
    return result


def get(
    node: NodeLike,
    keys: dict[str, Any],
    dest_dir: Path,
    level: str = "STUDY",
    opts: Options | None = None,
    on_file: Callable[[Path], None] | None = None,
) -> RetrieveResult:
    """C-GET (PS3.4 C.4.3): receive the matches over this association into `dest_dir` (one Part-10 file each).

    `on_file(path)` is called for each received file (e.g. to ingest it). Storage SOP classes are offered with the
    SCP role (PS3.7 D.3.3.4), uncompressed only.

    Raises:
        ScuError: no association or no final response.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    model = _model(level, StudyRootQueryRetrieveInformationModelGet, PatientRootQueryRetrieveInformationModelGet)
    result = RetrieveResult(status=-1)

    def on_store(event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        path = dest_dir / f"{len(result.files):06d}.dcm"  # never a UID as a file name
        ds.save_as(path, enforce_file_format=True)
        result.files.append(path)
        if on_file is not None:
            on_file(path)
        return status.SUCCESS

    storage = [c for c in StoragePresentationContexts][: MAX_CONTEXTS - 1]
    contexts: list[tuple[str, list[str]]] = [(model, UNCOMPRESSED)]
    contexts += [(c.abstract_syntax, UNCOMPRESSED) for c in storage]
    roles = [build_role(c.abstract_syntax, scp_role=True) for c in storage]
    with associate(node, contexts, opts, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)]) as assoc:
        for rsp, _ident in assoc.send_c_get(_identifier(level, keys), model):
            st = _status(rsp)
            if st is None:
                raise ScuError("C-GET 无响应")
            _counts(result, rsp)
            result.status = st
    return result


# -- C-STORE -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoreOutcome:
    path: Path
    sop_instance_uid: str
    status: int | None  # None: no response (association broke)
    transfer_syntax_uid: str = ""

    @property
    def ok(self) -> bool:
        return self.status in STORE_OK


def contexts_for(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Presentation contexts for (SOP class, transfer syntax) pairs (PS3.8 §9.3.2.2).

    A compressed syntax is proposed in a context of its own, and every SOP class also gets an uncompressed
    context, so a destination that refuses the compressed syntax can still be served (decompressed first).
    """
    out: list[tuple[str, list[str]]] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for sop_class, ts in sorted(set(pairs)):
        for syntaxes in ([ts], UNCOMPRESSED) if ts not in UNCOMPRESSED else (UNCOMPRESSED,):
            key = (sop_class, tuple(syntaxes))
            if key not in seen:
                seen.add(key)
                out.append((sop_class, list(syntaxes)))
    if len(out) > MAX_CONTEXTS:
        raise ValueError("too many presentation contexts for one association")
    return out


def accepted_syntaxes(assoc: Association, sop_class: str) -> set[str]:
    """The transfer syntaxes the peer accepted for `sop_class` on this association."""
    return {
        str(c.transfer_syntax[0])
        for c in assoc.accepted_contexts
        if str(c.abstract_syntax) == sop_class and c.transfer_syntax
    }


def send_file(assoc: Association, path: Path) -> StoreOutcome:
    """C-STORE one Part-10 file over an open association (its transfer syntax must have been accepted, or an
    uncompressed one when the file is uncompressed: pynetdicom converts implicit/explicit VR).

    Raises:
        ScuError: the association broke (no response).
    """
    ds = dcmread(path)
    uid = str(ds.SOPInstanceUID)
    ts = str(ds.file_meta.TransferSyntaxUID)
    if not assoc.is_established:
        raise ScuError("连接已断开")
    rsp = assoc.send_c_store(ds)
    st = _status(rsp)
    if st is None:
        raise ScuError("C-STORE 无响应（连接中断）")
    return StoreOutcome(path, uid, st, ts)


def store(node: NodeLike, paths: Iterable[Path], opts: Options | None = None) -> list[StoreOutcome]:
    """C-STORE files to `node` over one association, as stored (PS3.4 B). Files whose syntax the node refused
    are reported with status SOP_CLASS_NOT_SUPPORTED; the caller may transcode and retry.

    Raises:
        ScuError: no association, or the association broke (outcomes so far are lost with it).
    """
    files = [Path(p) for p in paths]
    metas = [dcmread(p, stop_before_pixels=True) for p in files]
    pairs = [(str(m.SOPClassUID), str(m.file_meta.TransferSyntaxUID)) for m in metas]
    out: list[StoreOutcome] = []
    with associate(node, contexts_for(pairs), opts) as assoc:
        for path, meta, (sop_class, ts) in zip(files, metas, pairs, strict=True):
            accepted = accepted_syntaxes(assoc, sop_class)
            if ts not in accepted and not (ts in UNCOMPRESSED and accepted & set(UNCOMPRESSED)):
                out.append(StoreOutcome(path, str(meta.SOPInstanceUID), status.SOP_CLASS_NOT_SUPPORTED, ts))
                continue
            out.append(send_file(assoc, path))
    return out


# -- the forwarding worker's transport (engine/imaging/forwarding.py Transport protocol) -----------------------------
class Channel:
    """One open association of a forward batch."""

    def __init__(self, assoc: Association) -> None:
        self.assoc = assoc

    def accepted(self, sop_class: str) -> set[str]:
        return accepted_syntaxes(self.assoc, sop_class)

    def send(self, path: Path) -> int:
        """C-STORE one file; its status. Raises ScuError when the association broke."""
        outcome = send_file(self.assoc, path)
        assert outcome.status is not None
        return outcome.status


class StoreTransport:
    """Opens one association per forward batch (REQ: IMG-08)."""

    def __init__(self, opts: Options | None = None) -> None:
        self.opts = opts or Options()

    @contextmanager
    def open(self, node: NodeLike, pairs: Iterable[tuple[str, str]]) -> Iterator[Channel]:
        with associate(node, contexts_for(pairs), self.opts) as assoc:
            yield Channel(assoc)
