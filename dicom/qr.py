"""C-MOVE and C-GET SCP (Patient Root and Study Root; PATIENT/STUDY/SERIES/IMAGE) — REQ: DCM-04, AC-08, DSEC-10,
DSEC-08.

Thin handlers over engine.imaging.retrieve: the device must be allowed `move`/`get`; only its institution's
instances are selected; a C-MOVE goes only to an enabled registered node with a port of the same institution
(anything else: 0xA801 and a security alert).

Each instance goes out in a transfer syntax the peer accepted (engine.imaging.transcode): the stored bytes when the
peer accepted the stored syntax for its SOP class, else explicit (then implicit) VR little endian, decoded in the
sandbox when the stored data is compressed. C-GET: the peer proposed the storage contexts (SCP/SCU role selection)
and we pick per instance among those it accepted; such a context is negotiated uncompressed-first
(`handle_requested`), so a peer offering JPEG lossless and uncompressed in one context (getscu +xs) takes every
instance. C-MOVE: we propose, per SOP class, each stored syntax and the uncompressed ones in separate contexts
(transcode.plan_contexts). The next instances are prepared (read or decoded) while the current one is on the wire;
prepared data sets are sent by dicom/outgoing.py without being re-encoded. An instance that cannot be read or
decoded fails its sub-operation alone and is listed in the Failed SOP Instance UID List.

pynetdicom drives the sub-operations and the pending/final statuses with their counts (PS3.4 C.4.2.3, C.4.3.3).
A request we refuse before choosing a destination (operation not allowed, bad identifier) raises in the handler,
which pynetdicom answers with a 0xC5xx/0xC4xx "unable to process" failure; a C-GET refused for the operation
answers 0x0124.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.presentation import build_context

from dicom import outgoing, status, uids
from dicom.context import Context
from dicom.context import authorized as _state
from dicom.context import refuse_op as _refuse_op
from dicom.context import text as _text
from engine import uow
from engine.imaging import retrieve, transcode
from engine.imaging.retrieve import RetrieveError, RetrieveItem

log = logging.getLogger("telerad.dicom")

PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
RETRIEVE_SOP_CLASSES = (PATIENT_ROOT_MOVE, PATIENT_ROOT_GET, STUDY_ROOT_MOVE, STUDY_ROOT_GET)
_PATIENT_ROOT = {PATIENT_ROOT_MOVE, PATIENT_ROOT_GET}


class Refused(Exception):
    """The request is refused before any sub-operation (pynetdicom answers a failure status)."""


def _identifier(event: Event) -> tuple[str, dict[str, str]]:
    ident = event.identifier
    keys: dict[str, str] = {}
    for elem in ident:
        if elem.keyword and elem.VR != "SQ" and elem.keyword not in ("QueryRetrieveLevel", "SpecificCharacterSet"):
            keys[elem.keyword] = _text(elem.value)
    return _text(ident.get("QueryRetrieveLevel", "")).upper(), keys


def _select(event: Event, ctx: Context, op: str) -> tuple[str, list[RetrieveItem]]:
    state = _state(event)
    level, keys = _identifier(event)
    patient_root = str(event.request.AffectedSOPClassUID) in _PATIENT_ROOT
    with ctx.app.app_context(), uow.unit_of_work():
        return level, retrieve.select_instances(state.node, level, keys, patient_root=patient_root)


def accepted_storage(assoc: Association) -> dict[str, set[str]]:
    """Per storage SOP class, the transfer syntaxes of the contexts the peer accepted with us as the C-STORE SCU
    (C-GET: the storage contexts it proposed with the SCP role; C-MOVE: the destination association's)."""
    out: dict[str, set[str]] = {}
    for cx in assoc.accepted_contexts:
        if cx.as_scu and cx.transfer_syntax:
            out.setdefault(str(cx.abstract_syntax), set()).add(str(cx.transfer_syntax[0]))
    return out


def _prepare(ctx: Context, item: RetrieveItem, accepted: dict[str, set[str]], pool: transcode.Transcoder) -> Dataset:
    """The sub-operation's data set: the instance as stored, re-encoded or decoded for what the peer accepted; or a
    data set that fails to send (unreadable file, undecodable frame, no acceptable syntax), so pynetdicom counts
    the sub-operation as failed and lists its UID (DSEC-08: nothing else fails)."""
    path = Path(item.path) if item.path else ctx.store.path(item.storage_key)
    try:
        return outgoing.Prepared.of(transcode.prepare(path, accepted.get(item.sop_class_uid, set()), pool))
    except transcode.TranscodeError as exc:
        log.warning("retrieve: %s not sent: %s", item.sop_instance_uid, exc)
        error = str(exc)
    except Exception as exc:  # unreadable or not a Part-10 file: this sub-operation fails, the others go on
        log.error("retrieve: stored file of %s unreadable: %s", item.sop_instance_uid, exc)
        error = f"stored file unreadable: {type(exc).__name__}"
    return outgoing.Prepared.failed(item.sop_class_uid, item.sop_instance_uid, error)


_BIG = 32 * 1024 * 1024  # a stored file this large is prepared one at a time (its decoded form may be ~10× that)
_SMALL = 1024 * 1024  # when none is larger, up to _AHEAD instances wait decoded (≤ ~10 MB each)
_AHEAD = 8


def _size(ctx: Context, item: RetrieveItem) -> int:
    try:
        return (Path(item.path) if item.path else ctx.store.path(item.storage_key)).stat().st_size
    except OSError:
        return 0


def _warm_if_needed(items: list[RetrieveItem], accepted: dict[str, set[str]] | None) -> transcode.Transcoder:
    """The decoder pool; started in the background when some instance will be decoded (the worker's start and
    imports overlap the rest of the request)."""
    pool = transcode.transcoder()
    for item in items:
        ok = accepted.get(item.sop_class_uid, set()) if accepted is not None else set()
        if item.transfer_syntax_uid in transcode.DECODABLE and item.transfer_syntax_uid not in ok:
            pool.warm()
            break
    return pool


def _sub_operations(
    event: Event, ctx: Context, assoc: Association | None, items: list[RetrieveItem]
) -> Iterator[tuple[int, Dataset | None]]:
    """One pending yield per instance, each prepared ahead of its turn; C-CANCEL is honoured between instances."""
    accepted = accepted_storage(assoc) if assoc is not None else {}
    if assoc is not None:
        outgoing.install(assoc)
    pool = _warm_if_needed(items, accepted)
    largest = max((_size(ctx, item) for item in items), default=0)
    workers = 1 if largest > _BIG else pool.workers  # big ones: one at a time
    # Slices: decoded well ahead, so a decoder the busy machine deschedules for a while does not stall the sending
    # (500 CT slices to getscu, 2 decoders: 2.1 -> 1.3 s with 8 ahead instead of 3).
    ahead = max(_AHEAD, workers + 1) if largest <= _SMALL else workers + 1
    prefetch = transcode.Prefetch(items, lambda item: _prepare(ctx, item, accepted, pool), workers=workers, ahead=ahead)
    try:
        with prefetch as ready:
            for _item, ds in ready:
                if event.is_cancelled:
                    yield status.CANCEL, None
                    return
                yield status.PENDING, ds
    finally:
        pool.trim_when_idle(keep=1)  # one stays warm; the others once idle (the next retrieve may need them)


def handle_move(event: Event, ctx: Context) -> Iterator[Any]:
    """C-MOVE SCP (PS3.4 C.4.2): destination, number of sub-operations, then one pending yield per instance."""
    state = _state(event)
    if not state.node.allows("move"):
        _refuse_op(ctx, state, "move")
        raise Refused("move not allowed")
    dest_aet = _text(event.move_destination)
    try:
        level, items = _select(event, ctx, "move")
    except RetrieveError as exc:
        raise Refused(str(exc)) from exc
    with ctx.app.app_context(), uow.unit_of_work():
        dest = retrieve.move_destination(state.node, state.ip, dest_aet)
    if dest is None:
        yield None, None  # → 0xA801 Move destination unknown
        return
    # Per SOP class, each stored syntax and the uncompressed ones in separate contexts (≤ 128).
    plan = transcode.plan_contexts((i.sop_class_uid, i.transfer_syntax_uid) for i in items)
    contexts = [build_context(sop_class, syntaxes) for sop_class, syntaxes in plan]
    with ctx.app.app_context(), uow.unit_of_work():  # before the transfer: pynetdicom stops at 0 sub-operations
        retrieve.record_retrieve(state.node, state.ip, "move", level, items, dest.aet, {})
    _warm_if_needed(items, None)
    store: list[Association] = []  # the association pynetdicom opens to the destination
    options = {"contexts": contexts, "evt_handlers": [(evt.EVT_ESTABLISHED, lambda ev: store.append(ev.assoc))]}
    yield dest.host, dest.port, options if contexts else {}
    yield len(items)
    yield from _sub_operations(event, ctx, store[0] if store else None, items)


def handle_get(event: Event, ctx: Context) -> Iterator[Any]:
    """C-GET SCP (PS3.4 C.4.3): number of sub-operations, then C-STORE over this association (SCP/SCU role
    selection negotiated for the storage contexts)."""
    state = _state(event)
    if not state.node.allows("get"):
        _refuse_op(ctx, state, "get")
        yield 1
        yield status.REFUSED_NOT_AUTHORIZED, None
        return
    try:
        level, items = _select(event, ctx, "get")
    except RetrieveError:
        yield 1
        yield status.RETRIEVE_IDENTIFIER_MISMATCH, None
        return
    with ctx.app.app_context(), uow.unit_of_work():
        retrieve.record_retrieve(state.node, state.ip, "get", level, items, None, {})
    yield len(items)
    yield from _sub_operations(event, ctx, event.assoc, items)


def handle_requested(event: Event) -> None:
    """A-ASSOCIATE-RQ, before negotiation: storage classes the peer proposes to take the SCP role for (C-GET
    sub-operations, SCP/SCU role selection) are negotiated uncompressed-first on this association
    (uids.retrieve_contexts): getscu +xs proposes JPEG lossless and the uncompressed syntaxes in one context per
    class, and with JPEG lossless accepted every instance stored otherwise had no usable context (issue 12 §3)."""
    assoc = event.assoc
    roles = assoc.requestor.role_selection
    classes = {str(uid) for uid, item in roles.items() if item.scp_role}
    if classes and assoc.acceptor.writeable:
        assoc.acceptor.supported_contexts = uids.retrieve_contexts(assoc.acceptor.supported_contexts, classes)


def bindings(ctx: Context) -> list[tuple[Any, Any, list[Any]]]:
    return [
        (evt.EVT_REQUESTED, handle_requested, []),
        (evt.EVT_C_MOVE, handle_move, [ctx]),
        (evt.EVT_C_GET, handle_get, [ctx]),
    ]
