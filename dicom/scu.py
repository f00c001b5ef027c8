"""telerad as a DICOM SCU (REQ: DCM-03, DCM-04, IMG-08, VIEW-14 backend): associations to a node, C-ECHO and C-FIND
here; C-MOVE / C-GET into our archive and C-STORE to a node in dicom/scu_transfer.py.

- `echo`, `find` (and scu_transfer's `move`, `get`, `send`) serve the API (`/api/imaging/nodes/<id>/…`) and the CLI
  (`telerad dicom echo|find|retrieve|send`): they return a `Result` with a Chinese message and do not raise for
  network trouble.
- `StoreTransport` (dicom/forward_transport.py) serves the forwarding worker with the associations opened here.

A node is anything with `aet`, `host` and `port` (a DicomNode row, a NodeInfo, or `Remote`); `Options` carries our
AE title, timeouts, PDU size and TLS. Every call opens its own association (TCP_NODELAY) and releases it; nothing
here touches the database.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom import AE
from pynetdicom.association import Association

from dicom import status
from dicom.uids import (
    PATIENT_ROOT_FIND,
    QUERY_TRANSFER_SYNTAXES,
    STUDY_ROOT_FIND,
    VERIFICATION,
)

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
MAX_CONTEXTS = 128  # PS3.8 §9.3.2.2: presentation context IDs are odd numbers 1..255
CONNECT_TIMEOUT = 10.0  # interactive calls (API, CLI): an unreachable node is reported quickly

# Return keys requested at each level (empty values), mapped to the snake_case names the API answers with.
RETURN_KEYS: dict[str, dict[str, str]] = {
    "PATIENT": {
        "PatientID": "patient_id",
        "PatientName": "patient_name",
        "PatientSex": "patient_sex",
        "PatientBirthDate": "patient_birth_date",
    },
    "STUDY": {
        "PatientID": "patient_id",
        "PatientName": "patient_name",
        "PatientSex": "patient_sex",
        "PatientBirthDate": "patient_birth_date",
        "StudyInstanceUID": "study_instance_uid",
        "StudyDate": "study_date",
        "StudyTime": "study_time",
        "AccessionNumber": "accession_number",
        "StudyDescription": "study_description",
        "ModalitiesInStudy": "modalities",
        "NumberOfStudyRelatedSeries": "series_count",
        "NumberOfStudyRelatedInstances": "instance_count",
    },
    "SERIES": {
        "StudyInstanceUID": "study_instance_uid",
        "SeriesInstanceUID": "series_instance_uid",
        "Modality": "modality",
        "SeriesNumber": "series_number",
        "SeriesDescription": "series_description",
        "NumberOfSeriesRelatedInstances": "instance_count",
    },
    "IMAGE": {
        "StudyInstanceUID": "study_instance_uid",
        "SeriesInstanceUID": "series_instance_uid",
        "SOPInstanceUID": "sop_instance_uid",
        "SOPClassUID": "sop_class_uid",
        "InstanceNumber": "instance_number",
    },
}
# API/CLI filter names → DICOM keywords.
FILTER_KEYS = {
    "patient_id": "PatientID",
    "patient_name": "PatientName",
    "accession_number": "AccessionNumber",
    "study_date": "StudyDate",
    "modality": "ModalitiesInStudy",
    "study_instance_uid": "StudyInstanceUID",
    "series_instance_uid": "SeriesInstanceUID",
}
_INT_KEYS = {"series_number", "instance_number", "series_count", "instance_count"}

# Chinese names of the statuses a peer commonly answers (PS3.4 Annex B/C, PS3.7 Annex C).
STATUS_ZH = {
    0x0124: "对方未授权本系统执行此操作",
    0x0122: "对方不支持该 SOP 类",
    0x0110: "对方处理失败",
    0xA700: "对方资源不足",
    0xA701: "对方资源不足，无法计算匹配数",
    0xA702: "对方资源不足，无法执行子操作",
    0xA801: "对方不认识调阅目标 AE（请在对方登记本系统的 AE 名称）",
    0xA900: "标识与 SOP 类不符",
    0xB000: "部分子操作失败",
    0xC000: "对方无法处理请求",
    0xFE00: "已取消",
}


class NodeLike(Protocol):
    @property
    def aet(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int | None: ...


@dataclass(frozen=True)
class Remote:
    """A node given by address only (the CLI's --aet/--host/--port, or a DicomNode read before a commit)."""

    aet: str
    host: str
    port: int


@dataclass
class Options:
    """Our side of the association: calling AE title, timeouts, maximum PDU size and TLS."""

    calling_aet: str = "TELERAD"
    timeout: float = 30.0  # ACSE, DIMSE and network timeouts
    connect_timeout: float | None = None  # TCP connect, at most `timeout`; None: `timeout`
    tls: ssl.SSLContext | None = None
    max_pdu: int = 262144


class ScuError(Exception):
    """No association (refused, rejected, unreachable) or the association broke; the message is Chinese."""


@dataclass
class Result:
    """The outcome of an API/CLI SCU call."""

    ok: bool
    status: int | None
    message: str
    elapsed_ms: int = 0
    completed: int = 0
    failed: int = 0
    warning: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False


# -- associations ----------------------------------------------------------------------------------------------------
def _ae(opts: Options) -> AE:
    ae = AE(ae_title=opts.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = opts.timeout
    ae.connection_timeout = min(opts.timeout, opts.connect_timeout or opts.timeout)
    ae.maximum_pdu_size = opts.max_pdu
    return ae


def _target(node: NodeLike) -> tuple[str, int]:
    if node.port is None:
        raise ScuError(f"节点 {node.aet} 未配置端口")
    return node.host, int(node.port)


def _no_association(node: NodeLike, host: str, port: int, assoc: Association) -> str:
    if assoc.is_rejected:
        return f"{node.aet}@{host}:{port} 拒绝了连接（请确认对方已登记本系统的 AE 名称与地址）"
    # pynetdicom reports a refused TCP connection as an abort too
    return f"无法连接 {node.aet}@{host}:{port}，或连接被中止（请检查地址、端口与网络）"


@contextmanager
def associate(
    node: NodeLike, contexts: Iterable[tuple[str, list[str]]], opts: Options | None = None, **kw: Any
) -> Iterator[Association]:
    """An established association to `node` proposing (abstract syntax, transfer syntaxes) `contexts`; released on
    exit, aborted on error. `kw` goes to `AE.associate` (ext_neg, evt_handlers).

    Raises:
        ScuError: the association was rejected, aborted or could not be opened.
    """
    opts = opts or Options()
    ae = _ae(opts)
    for abstract_syntax, syntaxes in contexts:
        ae.add_requested_context(abstract_syntax, syntaxes)
    host, port = _target(node)
    tls_args = (opts.tls, host) if opts.tls else None
    assoc = ae.associate(host, port, ae_title=node.aet, tls_args=tls_args, **kw)
    if not assoc.is_established:
        raise ScuError(_no_association(node, host, port, assoc))
    nodelay(assoc)
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    else:
        if assoc.is_established:
            assoc.release()


def nodelay(assoc: Association) -> None:
    """TCP_NODELAY on our side: a C-STORE goes out as several PDUs, and with Nagle on, each message waits ~40 ms
    for the peer's delayed ACK (measured: 48 ms per small instance to a pynetdicom peer, issue 4)."""
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # closed meanwhile: the next send reports it


def accepted_syntaxes(assoc: Association, sop_class: str) -> set[str]:
    """The transfer syntaxes the peer accepted for `sop_class` on this association."""
    return {
        str(c.transfer_syntax[0])
        for c in assoc.accepted_contexts
        if str(c.abstract_syntax) == sop_class and c.transfer_syntax
    }


# -- statuses and results --------------------------------------------------------------------------------------------
def response_status(rsp: Dataset | None) -> int | None:
    return int(rsp.Status) if rsp is not None and "Status" in rsp else None


def status_text(code: int | None) -> str:
    if code is None:
        return "对方未应答（超时或连接中断）"
    if code == status.SUCCESS:
        return "成功"
    name = STATUS_ZH.get(code) or status.NAMES.get(code, "")
    return f"失败（状态 0x{code:04X}{'：' + name if name else ''}）"


def ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def unreachable(exc: ScuError, started: float) -> Result:
    return Result(False, None, str(exc), ms_since(started))


# -- C-ECHO --------------------------------------------------------------------------------------------------------
def echo(node: NodeLike, opts: Options | None = None) -> Result:
    """Verification (C-ECHO, PS3.4 A) against a node."""
    started = time.monotonic()
    try:
        with associate(node, [(VERIFICATION, QUERY_TRANSFER_SYNTAXES)], opts) as assoc:
            code = response_status(assoc.send_c_echo())
    except ScuError as exc:
        return unreachable(exc, started)
    ok = code == status.SUCCESS
    return Result(ok, code, "连通测试成功" if ok else f"连通测试{status_text(code)}", ms_since(started))


# -- C-FIND --------------------------------------------------------------------------------------------------------
def _identifier(level: str, filters: dict[str, str]) -> Dataset:
    if level not in LEVELS:
        raise ValueError(f"unknown query level {level!r}")
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: Chinese names are matched as typed
    for keyword in RETURN_KEYS[level]:
        setattr(ds, keyword, "")
    for name, value in filters.items():
        if value in (None, ""):
            continue
        keyword = FILTER_KEYS.get(name, name)
        if keyword == "ModalitiesInStudy" and level in ("SERIES", "IMAGE"):
            keyword = "Modality"
        setattr(ds, keyword, value)
    return ds


def _match(level: str, ds: Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for keyword, name in RETURN_KEYS[level].items():
        value = ds.get(keyword)
        if value is None:
            continue
        if name == "modalities":
            out[name] = (
                [str(v) for v in value] if isinstance(value, MultiValue) else [m for m in str(value).split("\\") if m]
            )
        elif name in _INT_KEYS:
            try:
                out[name] = int(value) if str(value).strip() else None
            except (TypeError, ValueError):
                out[name] = None
        else:
            out[name] = str(value)
    return out


def find(node: NodeLike, level: str, filters: dict[str, str], limit: int = 100, opts: Options | None = None) -> Result:
    """C-FIND (PS3.4 C; Study Root, Patient Root at PATIENT level); at most `limit` matches are kept, then the
    association is aborted. `filters` maps FILTER_KEYS names (or DICOM keywords) to match values."""
    started = time.monotonic()
    model = PATIENT_ROOT_FIND if level == "PATIENT" else STUDY_ROOT_FIND
    ds = _identifier(level, filters)
    items: list[dict[str, Any]] = []
    final: int | None = None
    truncated = False
    try:
        with associate(node, [(model, QUERY_TRANSFER_SYNTAXES)], opts) as assoc:
            for rsp, identifier in assoc.send_c_find(ds, model):
                code = response_status(rsp)
                if code in (status.PENDING, 0xFF01) and identifier is not None:
                    if len(items) >= limit:
                        truncated = True
                        break
                    items.append(_match(level, identifier))
                else:
                    final = code
            if truncated:
                assoc.abort()
    except ScuError as exc:
        return unreachable(exc, started)
    if truncated:
        return Result(
            True,
            status.SUCCESS,
            f"结果超过 {limit} 条，仅显示前 {limit} 条",
            ms_since(started),
            items=items,
            truncated=True,
        )
    ok = final == status.SUCCESS
    msg = f"查询完成，共 {len(items)} 条" if ok else f"查询{status_text(final)}"
    return Result(ok, final, msg, ms_since(started), items=items)
