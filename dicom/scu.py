"""telerad as a DICOM SCU (REQ: DCM-03, DCM-04, IMG-08, VIEW-14 backend): C-ECHO, C-FIND, C-MOVE / C-GET into our
archive and C-STORE to a node.

- `echo`, `find`, `move`, `get` and `send` serve the API (`/api/imaging/nodes/<id>/…`) and the CLI (`telerad dicom
  echo|find|retrieve|send`): they return a `Result` with a Chinese message and do not raise for network trouble.
- `StoreTransport` (dicom/forward_transport.py) serves the forwarding worker with the associations opened here.

A node is anything with `aet`, `host` and `port` (a DicomNode row, a NodeInfo, or `Remote`); `Options` carries our
AE title, timeouts, PDU size and TLS. Every call opens its own association (TCP_NODELAY) and releases it; nothing
here touches the database: what a C-GET receives goes to the caller's `InstanceSink` — the receive service
(dicom/receiving.py `retrieval`), which answers each C-STORE sub-operation once the instance is durable, indexed
and routed, as our SCP would (issue 12 §2).
"""

from __future__ import annotations

import os
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association

from dicom import outgoing, status
from dicom.uids import (
    PATIENT_ROOT_FIND,
    QUERY_TRANSFER_SYNTAXES,
    STORAGE_SOP_CLASSES,
    STORAGE_TRANSFER_SYNTAXES,
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
    VERIFICATION,
)
from engine.imaging import transcode

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


def _status_text(code: int | None) -> str:
    if code is None:
        return "对方未应答（超时或连接中断）"
    if code == status.SUCCESS:
        return "成功"
    name = STATUS_ZH.get(code) or status.NAMES.get(code, "")
    return f"失败（状态 0x{code:04X}{'：' + name if name else ''}）"


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _unreachable(exc: ScuError, started: float) -> Result:
    return Result(False, None, str(exc), _ms(started))


# -- C-ECHO --------------------------------------------------------------------------------------------------------
def echo(node: NodeLike, opts: Options | None = None) -> Result:
    """Verification (C-ECHO, PS3.4 A) against a node."""
    started = time.monotonic()
    try:
        with associate(node, [(VERIFICATION, QUERY_TRANSFER_SYNTAXES)], opts) as assoc:
            code = response_status(assoc.send_c_echo())
    except ScuError as exc:
        return _unreachable(exc, started)
    ok = code == status.SUCCESS
    return Result(ok, code, "连通测试成功" if ok else f"连通测试{_status_text(code)}", _ms(started))


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
        return _unreachable(exc, started)
    if truncated:
        return Result(
            True, status.SUCCESS, f"结果超过 {limit} 条，仅显示前 {limit} 条", _ms(started), items=items, truncated=True
        )
    ok = final == status.SUCCESS
    msg = f"查询完成，共 {len(items)} 条" if ok else f"查询{_status_text(final)}"
    return Result(ok, final, msg, _ms(started), items=items)


# -- C-MOVE / C-GET ------------------------------------------------------------------------------------------------
def _retrieve_identifier(study_uid: str, series_uid: str | None) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
    ds.StudyInstanceUID = study_uid
    if series_uid:
        ds.SeriesInstanceUID = series_uid
    return ds


def _final(responses: Iterable[tuple[Dataset | None, Dataset | None]]) -> tuple[int | None, Dataset | None]:
    """The final status of a C-MOVE / C-GET and the last response (None, … when the peer stopped answering)."""
    final: int | None = None
    last: Dataset | None = None
    for rsp, _ident in responses:
        final = response_status(rsp)
        if final is None:
            break
        last = rsp
    return final, last


def _sub_counts(rsp: Dataset | None) -> tuple[int, int, int]:
    if rsp is None:
        return 0, 0, 0
    return (
        int(rsp.get("NumberOfCompletedSuboperations", 0) or 0),
        int(rsp.get("NumberOfFailedSuboperations", 0) or 0),
        int(rsp.get("NumberOfWarningSuboperations", 0) or 0),
    )


def _transfer_result(final: int | None, last: Dataset | None, started: float, verb: str) -> Result:
    completed, failed, warning = _sub_counts(last)
    ok = final in (status.SUCCESS, 0xB000) and failed == 0
    if ok:
        msg = f"{verb}完成：成功 {completed} 个实例" + (f"，警告 {warning} 个" if warning else "")
    else:
        msg = f"{verb}{_status_text(final)}：成功 {completed}，失败 {failed}"
    return Result(ok, final, msg, _ms(started), completed=completed, failed=failed, warning=warning)


def move(
    node: NodeLike,
    destination_aet: str,
    study_uid: str,
    series_uid: str | None = None,
    opts: Options | None = None,
) -> Result:
    """C-MOVE (PS3.4 C.4.2) a study (or series) from the node to `destination_aet` (normally our own archive)."""
    started = time.monotonic()
    model = STUDY_ROOT_MOVE
    try:
        with associate(node, [(model, QUERY_TRANSFER_SYNTAXES)], opts) as assoc:
            final, last = _final(assoc.send_c_move(_retrieve_identifier(study_uid, series_uid), destination_aet, model))
    except ScuError as exc:
        return _unreachable(exc, started)
    return _transfer_result(final, last, started, "调阅")


class InstanceSink(Protocol):
    """Where a C-GET's instances go (dicom/receiving.py `RetrieveSink`): `__call__` receives one data set written to
    a file in `tmp_dir` (consumed) and returns the C-STORE status to answer (an int, or a Dataset with an Error
    Comment)."""

    @property
    def tmp_dir(self) -> Path: ...

    def __call__(
        self, path: Path, sop_class: object, sop_instance: object, abstract_syntax: object
    ) -> int | Dataset: ...


def get(
    node: NodeLike,
    sink: InstanceSink,
    study_uid: str,
    series_uid: str | None = None,
    opts: Options | None = None,
) -> Result:
    """C-GET (PS3.4 C.4.3) a study (or series) from the node on one association; each received instance goes to
    `sink`, whose status answers the peer's C-STORE sub-operation (a refused instance is a failed sub-operation).
    Storage SOP classes are offered with the SCP role (PS3.7 D.3.3.4) and the syntaxes our SCP accepts."""
    started = time.monotonic()

    def on_store(event: Any) -> int | Dataset:
        fd, name = tempfile.mkstemp(prefix="get-", dir=sink.tmp_dir)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                src = getattr(event, "dataset_path", None)
                if src:
                    with open(src, "rb") as inp:
                        while chunk := inp.read(1024 * 1024):
                            fh.write(chunk)
                else:
                    fh.write(event.encoded_dataset(include_meta=True))
        except OSError:
            tmp.unlink(missing_ok=True)
            return status.STORE_OUT_OF_RESOURCES
        req = event.request
        return sink(tmp, req.AffectedSOPClassUID, req.AffectedSOPInstanceUID, event.context.abstract_syntax)

    model = STUDY_ROOT_GET
    classes = list(STORAGE_SOP_CLASSES)[: MAX_CONTEXTS - 1]
    contexts = [(model, QUERY_TRANSFER_SYNTAXES)] + [(uid, STORAGE_TRANSFER_SYNTAXES) for uid in classes]
    roles = [build_role(uid, scp_role=True) for uid in classes]
    try:
        with associate(node, contexts, opts, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)]) as assoc:
            final, last = _final(assoc.send_c_get(_retrieve_identifier(study_uid, series_uid), model))
    except ScuError as exc:
        return _unreachable(exc, started)
    return _transfer_result(final, last, started, "获取")


# -- C-STORE -------------------------------------------------------------------------------------------------------
def _file_contexts(paths: list[Path]) -> list[tuple[Path, str, str]]:
    out = []
    for p in paths:
        meta, _offset = transcode.stored_meta(p)
        sop_class = str(meta.get("MediaStorageSOPClassUID", ""))
        if not sop_class:
            sop_class = str(dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID"]).get("SOPClassUID", ""))
        out.append((p, sop_class, str(meta.TransferSyntaxUID)))
    return out


def send(
    node: NodeLike,
    files: Iterable[Path],
    progress: Callable[[int, int], None] | None = None,
    opts: Options | None = None,
) -> Result:
    """C-STORE (PS3.4 B) Part-10 files to the node (REQ: DCM-04, IMG-08): per SOP class the files' syntaxes and the
    uncompressed ones are proposed in separate presentation contexts (engine.imaging.transcode.plan_contexts, ≤ 128
    per association); each file goes as stored when its syntax is accepted, else uncompressed — decoded in the
    sandbox when compressed. A file nothing fits (0x0122) or whose pixel data cannot be decoded counts as failed."""
    started = time.monotonic()
    try:
        items = _file_contexts([Path(f) for f in files])
    except (OSError, ValueError, AttributeError) as exc:
        return Result(False, None, f"文件无法读取：{type(exc).__name__}", _ms(started))
    if not items:
        return Result(True, status.SUCCESS, "没有需要发送的实例", _ms(started))
    completed = failed = warning = undecodable = 0
    last_code: int | None = status.SUCCESS
    batches: list[list[tuple[Path, str, str]]] = [[]]
    classes: set[str] = set()
    for item in items:  # at least one context per SOP class: a new association after MAX_CONTEXTS classes
        if item[1] not in classes and len(classes) >= MAX_CONTEXTS:
            classes = set()
            batches.append([])
        classes.add(item[1])
        batches[-1].append(item)
    done = 0
    for batch in batches:
        try:
            with associate(node, transcode.plan_contexts((c, t) for _p, c, t in batch), opts) as assoc:
                for path, sop_class, ts in batch:
                    accepted = accepted_syntaxes(assoc, sop_class)
                    code: int | None
                    if transcode.choose_syntax(ts, accepted) is None:
                        code = status.SOP_CLASS_NOT_SUPPORTED
                    else:
                        try:
                            code = response_status(outgoing.send_c_store(assoc, transcode.prepare(path, accepted)))
                        except (transcode.TranscodeError, OSError, ValueError):
                            undecodable += 1
                            code = status.STORE_CANNOT_UNDERSTAND
                    if code == status.SUCCESS:
                        completed += 1
                    elif code is not None and (code & 0xF000) == 0xB000:
                        warning += 1
                    else:
                        failed += 1
                        last_code = code  # the message names a failure's status, not the last file's success
                        if code is None:
                            break
                    done += 1
                    if progress:
                        progress(done, len(items))
        except ScuError as exc:
            failed += len(items) - done
            return Result(False, None, str(exc), _ms(started), completed, failed, warning)
    ok = failed == 0
    if ok:
        msg = f"发送完成：成功 {completed} 个实例"
    elif undecodable:
        msg = f"发送失败：成功 {completed}，失败 {failed}（其中 {undecodable} 个实例无法解码为对方接受的格式）"
    else:
        msg = f"发送{_status_text(last_code)}：成功 {completed}，失败 {failed}"
    return Result(ok, last_code if not ok else status.SUCCESS, msg, _ms(started), completed, failed, warning)
