"""telerad as an SCU (REQ: DCM-03/04, VIEW-14 backend): C-ECHO, C-FIND, C-MOVE / C-GET into our archive and
C-STORE to a node, used by the API (`/api/imaging/nodes/<id>/…`) and the CLI (`telerad dicom echo|find|retrieve|send`).

Every call opens one association with explicit timeouts and releases it; nothing here touches the database
except `ingest_received` (C-GET), which the caller runs inside its unit of work. Results carry a Chinese message.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association

from dicom import status
from dicom.scp import QUERY_TRANSFER_SYNTAXES, STORAGE_SOP_CLASSES, STORAGE_TRANSFER_SYNTAXES, VERIFICATION
from engine.imaging.storage import ObjectStore, StoredObject

PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
MAX_CONTEXTS = 128  # PS3.8: at most 128 presentation contexts per association

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


@dataclass(frozen=True)
class Peer:
    """The remote node: its AE title, address and port; `calling_aet` is ours."""

    aet: str
    host: str
    port: int
    calling_aet: str = "TELERAD"
    timeout: float = 30.0


@dataclass
class Result:
    ok: bool
    status: int | None
    message: str
    elapsed_ms: int = 0
    completed: int = 0
    failed: int = 0
    warning: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False
    received: list[tuple[StoredObject, Path]] = field(default_factory=list)  # C-GET: stored objects to index


def _ae(peer: Peer) -> AE:
    ae = AE(ae_title=peer.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = peer.timeout
    ae.connection_timeout = min(peer.timeout, 10.0)
    return ae


def _no_association(peer: Peer, assoc: Association) -> str:
    if assoc.is_rejected:
        return f"{peer.aet}@{peer.host}:{peer.port} 拒绝了连接（请确认对方已登记本系统的 AE 名称与地址）"
    # pynetdicom reports a refused TCP connection as an abort too
    return f"无法连接 {peer.aet}@{peer.host}:{peer.port}，或连接被中止（请检查地址、端口与网络）"


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


def _status_text(code: int | None) -> str:
    if code is None:
        return "对方未应答（超时或连接中断）"
    if code == status.SUCCESS:
        return "成功"
    name = STATUS_ZH.get(code) or status.NAMES.get(code, "")
    return f"失败（状态 0x{code:04X}{'：' + name if name else ''}）"


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _status_of(rsp: Dataset | None) -> int | None:
    return int(rsp.Status) if rsp is not None and "Status" in rsp else None


# -- C-ECHO --------------------------------------------------------------------------------------------------------
def echo(peer: Peer) -> Result:
    """Verification (C-ECHO) against a node."""
    started = time.monotonic()
    ae = _ae(peer)
    ae.add_requested_context(VERIFICATION, QUERY_TRANSFER_SYNTAXES)
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.aet)
    if not assoc.is_established:
        return Result(False, None, _no_association(peer, assoc), _ms(started))
    try:
        code = _status_of(assoc.send_c_echo())
    finally:
        assoc.release()
    ok = code == status.SUCCESS
    return Result(ok, code, "连通测试成功" if ok else f"连通测试{_status_text(code)}", _ms(started))


# -- C-FIND --------------------------------------------------------------------------------------------------------
def _identifier(level: str, filters: dict[str, str]) -> Dataset:
    if level not in LEVELS:
        raise ValueError(f"unknown query level {level!r}")
    ds = Dataset()
    ds.QueryRetrieveLevel = level
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


def find(peer: Peer, level: str, filters: dict[str, str], limit: int = 100) -> Result:
    """C-FIND (Study Root; Patient Root at PATIENT level); at most `limit` matches are kept, then C-CANCEL."""
    started = time.monotonic()
    model = PATIENT_ROOT_FIND if level == "PATIENT" else STUDY_ROOT_FIND
    ds = _identifier(level, filters)
    ae = _ae(peer)
    ae.add_requested_context(model, QUERY_TRANSFER_SYNTAXES)
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.aet)
    if not assoc.is_established:
        return Result(False, None, _no_association(peer, assoc), _ms(started))
    items: list[dict[str, Any]] = []
    final: int | None = None
    truncated = False
    try:
        for rsp, identifier in assoc.send_c_find(ds, model):
            code = _status_of(rsp)
            if code in (status.PENDING, 0xFF01) and identifier is not None:
                if len(items) >= limit:
                    truncated = True
                    break
                items.append(_match(level, identifier))
            else:
                final = code
    finally:
        if truncated:
            assoc.abort()
        else:
            assoc.release()
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


def move(peer: Peer, destination_aet: str, study_uid: str, series_uid: str | None = None) -> Result:
    """C-MOVE a study (or series) from the node to `destination_aet` (normally our own archive)."""
    started = time.monotonic()
    ae = _ae(peer)
    ae.add_requested_context(STUDY_ROOT_MOVE, QUERY_TRANSFER_SYNTAXES)
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.aet)
    if not assoc.is_established:
        return Result(False, None, _no_association(peer, assoc), _ms(started))
    final: int | None = None
    last: Dataset | None = None
    try:
        for rsp, _ident in assoc.send_c_move(
            _retrieve_identifier(study_uid, series_uid), destination_aet, STUDY_ROOT_MOVE
        ):
            if rsp is None or "Status" not in rsp:
                final = None
                break
            last = rsp
            final = int(rsp.Status)
    finally:
        assoc.release()
    return _transfer_result(final, last, started, "调阅")


def get(peer: Peer, store: ObjectStore, study_uid: str, series_uid: str | None = None) -> Result:
    """C-GET a study (or series) from the node on one association; each received instance is made durable in the
    object store here (its index rows are written by `ingest_received` in the caller's unit of work)."""
    started = time.monotonic()
    received: list[tuple[StoredObject, Path]] = []
    lock = threading.Lock()

    def on_store(event: Any) -> int:
        fd, name = _tmpfile(store.tmp_dir)
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
            stored = store.adopt(tmp)
        except OSError:
            tmp.unlink(missing_ok=True)
            return status.STORE_OUT_OF_RESOURCES
        with lock:
            received.append((stored, store.path(stored.key)))
        return status.SUCCESS

    ae = _ae(peer)
    ae.add_requested_context(STUDY_ROOT_GET, QUERY_TRANSFER_SYNTAXES)
    classes = list(STORAGE_SOP_CLASSES)[: MAX_CONTEXTS - 1]
    for uid in classes:
        ae.add_requested_context(uid, STORAGE_TRANSFER_SYNTAXES)
    roles = [build_role(uid, scp_role=True) for uid in classes]
    assoc = ae.associate(
        peer.host, peer.port, ae_title=peer.aet, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    if not assoc.is_established:
        return Result(False, None, _no_association(peer, assoc), _ms(started))
    final: int | None = None
    last: Dataset | None = None
    try:
        for rsp, _ident in assoc.send_c_get(_retrieve_identifier(study_uid, series_uid), STUDY_ROOT_GET):
            if rsp is None or "Status" not in rsp:
                final = None
                break
            last = rsp
            final = int(rsp.Status)
    finally:
        assoc.release()
    result = _transfer_result(final, last, started, "获取")
    result.received = received
    return result


def _tmpfile(directory: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix="get-", dir=directory)


# -- C-STORE -------------------------------------------------------------------------------------------------------
def _file_contexts(paths: list[Path]) -> list[tuple[Path, str, str]]:
    out = []
    for p in paths:
        meta = dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        sop_class = str(meta.file_meta.get("MediaStorageSOPClassUID", "") or meta.get("SOPClassUID", ""))
        out.append((p, sop_class, str(meta.file_meta.TransferSyntaxUID)))
    return out


def send(peer: Peer, files: Iterable[Path], progress: Callable[[int, int], None] | None = None) -> Result:
    """C-STORE Part-10 files to the node (each as stored, no transcoding), in associations of ≤ 128 contexts."""
    started = time.monotonic()
    try:
        items = _file_contexts([Path(f) for f in files])
    except (OSError, ValueError, AttributeError) as exc:
        return Result(False, None, f"文件无法读取：{type(exc).__name__}", _ms(started))
    if not items:
        return Result(True, status.SUCCESS, "没有需要发送的实例", _ms(started))
    completed = failed = warning = 0
    last_code: int | None = status.SUCCESS
    batches: list[list[tuple[Path, str, str]]] = []
    contexts: set[tuple[str, str]] = set()
    for item in items:
        pair = (item[1], item[2])
        if pair not in contexts and len(contexts) >= MAX_CONTEXTS:
            contexts = set()
            batches.append([])
        if not batches:
            batches.append([])
        contexts.add(pair)
        batches[-1].append(item)
    done = 0
    for batch in batches:
        ae = _ae(peer)
        for pair in sorted({(c, t) for _p, c, t in batch}):
            ae.add_requested_context(pair[0], [pair[1]])
        assoc = ae.associate(peer.host, peer.port, ae_title=peer.aet)
        if not assoc.is_established:
            failed += len(items) - done
            return Result(False, None, _no_association(peer, assoc), _ms(started), completed, failed, warning)
        try:
            for path, _c, _t in batch:
                code = _status_of(assoc.send_c_store(str(path)))
                last_code = code
                if code == status.SUCCESS:
                    completed += 1
                elif code is not None and (code & 0xF000) == 0xB000:
                    warning += 1
                else:
                    failed += 1
                    if code is None:
                        break
                done += 1
                if progress:
                    progress(done, len(items))
        finally:
            if assoc.is_established:
                assoc.release()
    ok = failed == 0
    msg = (
        f"发送完成：成功 {completed} 个实例"
        if ok
        else f"发送{_status_text(last_code)}：成功 {completed}，失败 {failed}"
    )
    return Result(ok, last_code if not ok else status.SUCCESS, msg, _ms(started), completed, failed, warning)


# -- indexing what C-GET received ----------------------------------------------------------------------------------
def ingest_received(node: Any, ip: str, received: list[tuple[StoredObject, Path]]) -> tuple[int, int]:
    """Index instances received by `get` under the node's institution (never from tags, DSEC-03), in the caller's
    unit of work. Returns (indexed, refused); a refused file stays an orphan for the sweeper (DSEC-05)."""
    from dicom.handlers import read_meta
    from engine.imaging import services

    state = services.AssociationState(node=node, ip=ip)
    indexed = refused = 0
    for stored, path in received:
        try:
            meta = read_meta(path)
            meta = services.check_instance(meta, meta.sop_class_uid, meta.sop_instance_uid)
        except services.InvalidInstance as exc:
            services.record_store_failure(state, exc.message, {"code": exc.code, "via": "c-get"})
            refused += 1
            continue
        services.ingest_instance(state, stored, meta)
        indexed += 1
    return indexed, refused
