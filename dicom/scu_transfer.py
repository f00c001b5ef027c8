"""telerad's SCU transfers (REQ: DCM-03, DCM-04, IMG-08): C-MOVE and C-GET a study or series into our archive, and
C-STORE files to a node. Association set-up, options and results are dicom/scu.py's; like there, every call opens its
own association, returns a `Result` with a Chinese message and does not raise for network trouble. What a C-GET
receives goes to the caller's `InstanceSink` (dicom/receiving.py `retrieval`, the one receive path; issue 12 §2)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import build_role, evt

from dicom import outgoing, status
from dicom.scu import (
    MAX_CONTEXTS,
    NodeLike,
    Options,
    Result,
    ScuError,
    accepted_syntaxes,
    associate,
    ms_since,
    response_status,
    status_text,
    unreachable,
)
from dicom.uids import (
    QUERY_TRANSFER_SYNTAXES,
    STORAGE_SOP_CLASSES,
    STORAGE_TRANSFER_SYNTAXES,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
)
from engine.imaging import transcode


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
        msg = f"{verb}{status_text(final)}：成功 {completed}，失败 {failed}"
    return Result(ok, final, msg, ms_since(started), completed=completed, failed=failed, warning=warning)


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
        return unreachable(exc, started)
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
        return unreachable(exc, started)
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
        return Result(False, None, f"文件无法读取：{type(exc).__name__}", ms_since(started))
    if not items:
        return Result(True, status.SUCCESS, "没有需要发送的实例", ms_since(started))
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
            return Result(False, None, str(exc), ms_since(started), completed, failed, warning)
    ok = failed == 0
    if ok:
        msg = f"发送完成：成功 {completed} 个实例"
    elif undecodable:
        msg = f"发送失败：成功 {completed}，失败 {failed}（其中 {undecodable} 个实例无法解码为对方接受的格式）"
    else:
        msg = f"发送{status_text(last_code)}：成功 {completed}，失败 {failed}"
    return Result(ok, last_code if not ok else status.SUCCESS, msg, ms_since(started), completed, failed, warning)
