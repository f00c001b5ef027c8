"""Thin pynetdicom event handlers: decode the event, call an engine service, return a named status.

Each handler runs in its association's thread, inside the Flask app context and one unit of work per event
(ARCHITECTURE.md: one commit per DICOM event).
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from collections.abc import Iterator
from concurrent import futures
from contextlib import nullcontext
from pathlib import Path
from typing import Any, cast

from pydicom.dataset import Dataset
from pydicom.filereader import read_partial
from pydicom.tag import BaseTag, Tag
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event
from pynetdicom.pdu_primitives import A_ASSOCIATE

from dicom import faults, header, qr, status, worklist
from dicom.context import AssociationState, Context, authorized, refuse_op, text
from engine import uow
from engine.imaging import ingest, queries, routing, services, validate
from engine.imaging.ingest import InstanceMeta, InvalidInstance
from engine.imaging.storage import ObjectStore, StorageFull, StoredObject, key_for

log = logging.getLogger("telerad.dicom")

# The tags indexed at ingest (read with stop_before_pixels; REQ: DSEC-05 "never decode pixel data").
_META_TAGS: list[BaseTag | int] = [
    Tag(k)
    for k in (
        "SpecificCharacterSet",
        "SOPClassUID",
        "SOPInstanceUID",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "Modality",
        "ReferringPhysicianName",
        "StudyDescription",
        "SeriesDescription",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "BodyPartExamined",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "StudyID",
        "SeriesNumber",
        "InstanceNumber",
    )
]
_LAST_META_TAG = max(_META_TAGS)  # (0020,0013) InstanceNumber: parsing stops after it
_PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"


def _past_meta_tags(tag: Any, vr: Any, length: int) -> bool:
    return bool(tag > _LAST_META_TAG)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _meta(get: Any, transfer_syntax: str) -> InstanceMeta:
    return InstanceMeta(
        sop_class_uid=text(get("SOPClassUID")),
        sop_instance_uid=text(get("SOPInstanceUID")),
        study_instance_uid=text(get("StudyInstanceUID")),
        series_instance_uid=text(get("SeriesInstanceUID")),
        transfer_syntax_uid=transfer_syntax,
        patient_id=text(get("PatientID"))[:64],
        patient_name=text(get("PatientName"))[:324],
        patient_birth_date=text(get("PatientBirthDate"))[:8],
        patient_sex=text(get("PatientSex"))[:16],
        study_date=text(get("StudyDate"))[:8],
        study_time=text(get("StudyTime"))[:16],
        accession_number=text(get("AccessionNumber"))[:64],
        study_description=text(get("StudyDescription"))[:256],
        study_id=text(get("StudyID"))[:16],
        referring_physician=text(get("ReferringPhysicianName"))[:324],
        modality=text(get("Modality"))[:16],
        series_number=_int(get("SeriesNumber")),
        body_part=text(get("BodyPartExamined"))[:64],
        series_description=text(get("SeriesDescription"))[:256],
        instance_number=_int(get("InstanceNumber")),
    )


def read_meta(path: Path) -> InstanceMeta:
    """The indexed tags of a received Part-10 file, read without the pixel data.

    dicom/header.py scans the header directly; anything it does not expect is parsed by pydicom instead.

    Raises:
        InvalidInstance: the file cannot be parsed, or (BrokenDataset) its data set is not whole and well-formed.
    """
    validate.check_file(path)  # REQ: DSEC-05/DSEC-08: the whole structure, before anything is placed or indexed
    try:
        fast = header.read_header(path)
        if fast is not None:
            syntax, values = fast
            return _meta(values.get, syntax)
        with open(path, "rb") as fh:  # parse the header only up to the last indexed tag, never the pixel data
            ds = read_partial(fh, stop_when=_past_meta_tags, specific_tags=_META_TAGS, defer_size=4096)
        return _meta(ds.get, str(ds.file_meta.get("TransferSyntaxUID", "")))
    except InvalidInstance:
        raise
    except Exception as exc:  # any parse error of untrusted bytes is a refusal, never a crash (DSEC-08)
        raise InvalidInstance("unreadable", "数据集无法解析", {"error": type(exc).__name__}) from exc


# -- association ---------------------------------------------------------------------------------------------------
def _peer_certificate_fingerprint(assoc: Association) -> tuple[bool, str | None]:
    sock = getattr(assoc.dul.socket, "socket", None)
    if isinstance(sock, ssl.SSLSocket):
        der = sock.getpeercert(binary_form=True)
        return True, hashlib.sha256(der).hexdigest() if der else None
    return False, None


def _reject(assoc: Association, result: int, source: int, diagnostic: int) -> None:
    assoc.acse.send_reject(result, source, diagnostic)
    assoc.kill()


def handle_requested(event: Event, ctx: Context) -> None:
    """A-ASSOCIATE-RQ received: authorize the device before negotiation (REQ: DSEC-01, DSEC-02, DSEC-07).

    Unknown AE, wrong source address, TLS/certificate mismatch, wrong called AE → A-ASSOCIATE-RJ and a security
    alert. The device row is read here, once per association, so device changes apply to the next association.
    """
    assoc = event.assoc
    rq = cast(A_ASSOCIATE, assoc.requestor.primitive)  # set from the A-ASSOCIATE-RQ before EVT_REQUESTED
    calling = text(rq.calling_ae_title)
    called = text(rq.called_ae_title)
    ip = assoc.requestor.address
    tls, fingerprint = _peer_certificate_fingerprint(assoc)
    details = {"calling_aet": calling, "called_aet": called, "tls": tls}
    with ctx.app.app_context():
        with uow.unit_of_work():
            if called != ctx.aet:
                services.record_rejection(calling, ip, f"被叫 AE 不符：{called!r}", details)
                auth = None
            else:
                auth = services.authorize(calling, ip, cert_fingerprint=fingerprint, tls=tls)
                if auth.node is None:
                    services.record_rejection(calling, ip, auth.reason or "", {**details, "code": auth.code})
        if called != ctx.aet:
            _reject(assoc, 0x01, 0x01, 0x07)  # rejected-permanent, service-user, called AE title not recognised
            return
        assert auth is not None
        if auth.node is None:
            _reject(assoc, 0x01, 0x01, 0x03)  # calling AE title not recognised
            return
        node = auth.node
        if not ctx.limits.acquire(node.id):
            with uow.unit_of_work():
                services.record_rejection(
                    calling,
                    ip,
                    f"设备 {calling} 的并发连接数已达上限 {ctx.limits.per_ae}",
                    {**details, "code": "limit"},
                )
            _reject(assoc, 0x02, 0x03, 0x02)  # rejected-transient, presentation, local limit exceeded
            return
        assoc.telerad = AssociationState(node=node, ip=ip)  # type: ignore[attr-defined]
        with uow.unit_of_work():
            services.record_association(node, ip, called)


def on_association_end(ctx: Context, assoc: Association) -> None:
    state = getattr(assoc, "telerad", None)
    if isinstance(state, AssociationState):
        ctx.limits.release(state.node.id)
        assoc.telerad = None  # type: ignore[attr-defined]


# -- C-ECHO --------------------------------------------------------------------------------------------------------
def handle_echo(event: Event, ctx: Context) -> int:
    """Verification (PS3.4 A; REQ: DCM-03): success when the device may echo."""
    state = authorized(event)
    if not state.node.allows("echo"):
        refuse_op(ctx, state, "echo")
        return status.REFUSED_NOT_AUTHORIZED
    return status.SUCCESS


# -- C-STORE -------------------------------------------------------------------------------------------------------
def handle_store(event: Event, ctx: Context) -> int | Dataset:
    """Storage (PS3.4 B): validate, make durable, index, then — only then — answer success (REQ: DSEC-04/05/06)."""
    state = authorized(event)
    req = cast(C_STORE, event.request)  # EVT_C_STORE carries a C-STORE
    received = getattr(req, "_telerad_received", None)  # dicom/fastpath.py: (path, sha256, size) when streamed
    path = Path(received[0]) if received else Path(event.dataset_path)
    try:
        if not state.node.allows("store"):
            refuse_op(ctx, state, "store")
            return status.REFUSED_NOT_AUTHORIZED
        if str(req.AffectedSOPClassUID).rstrip("\0 ") != str(event.context.abstract_syntax):
            # REQ: DSEC-09 — the SOP class allowlist is the negotiated context: an RT Plan (or any class) sent over
            # an accepted CT context is refused, never stored.
            with ctx.app.app_context(), uow.unit_of_work():
                ingest.record_store_failure(
                    state,
                    "命令中的 SOP 类与协商的表示上下文不一致",
                    {"code": "context_mismatch", "sop_class_uid": str(req.AffectedSOPClassUID)[:64]},
                )
            return status.SOP_CLASS_NOT_SUPPORTED
        faults.hit("after_receive")  # REQ: DSEC-05 crash test (inert unless TELERAD_DICOM_FAULT is set)
        if received:
            return _store_pipelined(ctx, state, req, path, received[1], received[2])
        # Not streamed by dicom/fastpath.py: hashed in a helper thread while this one parses and validates the
        # header; placed under its content key and made durable only once valid (REQ: DSEC-04 nothing stored,
        # DSEC-05).
        hashing = ctx.sealer.submit(ctx.store.digest_of, path)
        try:
            try:
                meta = ingest.check_instance(read_meta(path), req.AffectedSOPClassUID, req.AffectedSOPInstanceUID)
                ctx.store.check_space(ctx.disk_full_percent)
            finally:
                digest, size = hashing.result()
            stored = _place_durably(ctx.store, path, digest, size)
        except (InvalidInstance, StorageFull) as exc:
            return _store_refused(ctx, state, exc)
        with ctx.write_gate or nullcontext(), ctx.app.app_context(), uow.unit_of_work():
            result = ingest.ingest_instance(state, stored, meta)
            routing.apply_at_ingest(state.node, meta, result)  # REQ: DCM-02/IMG-08: forwards, placement
            faults.hit("after_db_insert")
        faults.hit("before_response")
        return ctx.conflict_status if result.outcome == ingest.CONFLICT else status.SUCCESS
    except OSError:
        log.exception("C-STORE: storage error")
        return status.STORE_OUT_OF_RESOURCES
    finally:
        path.unlink(missing_ok=True)


def _place_durably(store: ObjectStore, path: Path, digest: str, size: int) -> StoredObject:
    """Link a validated file under its content key, then fsync it and its directory: one journal commit for the
    name and the data (engine/imaging/storage.py). The file in tmp/ is consumed, also on failure."""
    try:
        stored = store.place(path, digest, size)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    faults.hit("after_rename")  # REQ: DSEC-05 crash test: under its key, not durable, no row
    store.make_durable(stored)
    faults.hit("after_fsync")  # durable under its key, no row
    return stored


def _store_pipelined(
    ctx: Context, state: AssociationState, req: Any, path: Path, digest: str, size: int
) -> int | Dataset:
    """A streamed data set (digest and size known): once this thread has validated the header, a helper thread
    places the file under its key and fsyncs it and its directory while this one executes the index INSERT; the
    transaction commits only after the file is durable under its key (REQ: DSEC-05: never a row without its file,
    never a success before both)."""
    try:
        meta = ingest.check_instance(read_meta(path), req.AffectedSOPClassUID, req.AffectedSOPInstanceUID)
        ctx.store.check_space(ctx.disk_full_percent)
    except (InvalidInstance, StorageFull) as exc:
        return _store_refused(ctx, state, exc)
    publishing = ctx.sealer.submit(_place_durably, ctx.store, path, digest, size)
    try:
        stored = StoredObject(key_for(digest), digest, size)

        def index() -> ingest.IngestResult:
            result = ingest.ingest_instance(state, stored, meta)
            routing.apply_at_ingest(state.node, meta, result)  # REQ: DCM-02/IMG-08: forwards, placement
            return result

        if ctx.committer is not None:  # dicom/groupcommit.py: commits after `publishing`, maybe with other rows
            result = ctx.committer.run(index, publishing, state)
        else:
            with ctx.write_gate or nullcontext(), ctx.app.app_context(), uow.unit_of_work():
                result = index()
                publishing.result()  # durable under its key before the commit; an OSError rolls the row back
                faults.hit("after_db_insert")
        faults.hit("before_response")
        return ctx.conflict_status if result.outcome == ingest.CONFLICT else status.SUCCESS
    finally:
        futures.wait([publishing])  # never unlink (in handle_store) under a link still in progress


def _store_refused(ctx: Context, state: AssociationState, exc: Exception) -> int | Dataset:
    with ctx.app.app_context(), uow.unit_of_work():
        if isinstance(exc, InvalidInstance):
            ingest.record_store_failure(state, exc.message, {"code": exc.code, **exc.details})
            code = status.STORE_DATASET_MISMATCH if exc.code == "uid_mismatch" else status.STORE_CANNOT_UNDERSTAND
            comment = exc.details.get("comment")  # a broken data set says where (engine/imaging/validate.py)
            return status.with_comment(code, comment) if comment else code
        ingest.record_store_failure(state, "存储空间不足", {"code": "disk_full"})
        return status.STORE_OUT_OF_RESOURCES


# -- C-FIND --------------------------------------------------------------------------------------------------------
def _value(keyword: str, value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return value
    return value


def handle_find(event: Event, ctx: Context) -> Iterator[tuple[int, Dataset | None]]:
    """Query (PS3.4 C) at PATIENT/STUDY/SERIES/IMAGE, only within the device's institution (REQ: AC-08)."""
    if str(event.request.AffectedSOPClassUID) == "1.2.840.10008.5.1.4.31":  # Modality Worklist (REQ: DCM-05)
        yield from worklist.handle_worklist_find(event, ctx)
        return
    state = authorized(event)
    if not state.node.allows("find"):
        refuse_op(ctx, state, "find")
        yield status.REFUSED_NOT_AUTHORIZED, None
        return
    try:
        ident = event.identifier
        level = text(ident.get("QueryRetrieveLevel", ""))
        keys: dict[str, str] = {}
        for elem in ident:
            kw = elem.keyword
            if kw in ("QueryRetrieveLevel", "SpecificCharacterSet") or not kw or elem.VR == "SQ":
                continue
            keys[kw] = text(elem.value)
    except Exception:  # an identifier we cannot decode is the peer's error, not a crash
        yield status.FIND_UNABLE_TO_PROCESS, None
        return
    model = str(event.request.AffectedSOPClassUID)
    if level == "PATIENT" and model != _PATIENT_ROOT_FIND:
        yield status.FIND_IDENTIFIER_MISMATCH, None
        return
    try:
        with ctx.app.app_context(), uow.unit_of_work():
            rows = queries.find(state.node, level, keys, limit=ctx.find_limit, ip=state.ip)
    except queries.QueryError:
        yield status.FIND_IDENTIFIER_MISMATCH, None
        return
    for row in rows:
        if event.is_cancelled:
            yield status.CANCEL, None
            return
        rsp = Dataset()
        rsp.SpecificCharacterSet = "ISO_IR 192"
        rsp.QueryRetrieveLevel = level
        for kw in keys:
            value = row.get(kw, "")
            setattr(rsp, kw, _value(kw, value))
        yield status.PENDING, rsp


def bind(ctx: Context) -> list[tuple[Any, Any, list[Any]]]:
    """The (event, handler, args) list for AE.start_server / make_server."""
    return [
        (evt.EVT_REQUESTED, handle_requested, [ctx]),
        (evt.EVT_C_ECHO, handle_echo, [ctx]),
        (evt.EVT_C_STORE, handle_store, [ctx]),
        (evt.EVT_C_FIND, handle_find, [ctx]),
        *qr.bindings(ctx),  # C-MOVE, C-GET
        *worklist.bindings(ctx),  # MPPS N-CREATE, N-SET (the worklist C-FIND goes through handle_find)
    ]
