"""Thin pynetdicom event handlers: decode the event, call an engine service, return a named status.

C-STORE hands each data set to the receive service (engine/imaging/receive.py, through dicom/receiving.py), the one
path every way in shares; C-MOVE/C-GET are in dicom/qr.py, worklist and MPPS in dicom/worklist.py.

Each handler runs in its association's thread, inside the Flask app context and one unit of work per event
(ARCHITECTURE.md: one commit per DICOM event).
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event
from pynetdicom.pdu_primitives import A_ASSOCIATE

from dicom import faults, qr, receiving, status, worklist
from dicom.context import AssociationState, Context, authorized, refuse_op, text
from engine import uow
from engine.imaging import queries, services

_PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"


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
        assoc.telerad = AssociationState.of(node, ip)  # type: ignore[attr-defined]
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
    """Storage (PS3.4 B): the receive service validates, makes durable, indexes and routes; only then is success
    answered (REQ: DSEC-04/05/06/09).

    A data set streamed by dicom/fastpath.py arrives with its digest and size (hashed while it was written): it is
    placed and fsynced in a helper thread while this one writes its rows. Otherwise it is hashed in a helper thread
    while this one checks it.
    """
    state = authorized(event)
    req = cast(C_STORE, event.request)  # EVT_C_STORE carries a C-STORE
    received = getattr(req, "_telerad_received", None)  # dicom/fastpath.py: (path, sha256, size) when streamed
    path = Path(received[0]) if received else Path(event.dataset_path)
    handed_over = False  # from then on the receive service owns (and removes) the file
    try:
        if not state.node.allows("store"):
            refuse_op(ctx, state, "store")
            return status.REFUSED_NOT_AUTHORIZED
        refused = receiving.context_mismatch(
            ctx.receiver, state.ingest, req.AffectedSOPClassUID, event.context.abstract_syntax
        )
        if refused is not None:
            return refused
        faults.hit("after_receive")  # REQ: DSEC-05 crash test (inert unless TELERAD_DICOM_FAULT is set)
        handed_over = True
        return receiving.store_status(
            ctx.receiver,
            state.ingest,
            path,
            req.AffectedSOPClassUID,
            req.AffectedSOPInstanceUID,
            ctx.conflict_status,
            digest=received[1] if received else None,
            size=received[2] if received else None,
        )
    finally:
        if not handed_over:
            path.unlink(missing_ok=True)


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
