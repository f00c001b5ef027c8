"""C-MOVE and C-GET SCP (Patient Root and Study Root; PATIENT/STUDY/SERIES/IMAGE) — REQ: DCM-04, AC-08, DSEC-10.

Thin handlers over engine.imaging.retrieve: the device must be allowed `move`/`get`; only its institution's
instances are selected; a C-MOVE goes only to an enabled registered node with a port of the same institution
(anything else: 0xA801 and a security alert). Sub-operations send each stored file's data set as stored: the file is
read without decoding (every element stays raw), so pynetdicom writes back the same bytes in the stored transfer
syntax, proposed as the only syntax of its context.

pynetdicom drives the sub-operations and the pending/final statuses with their counts (PS3.4 C.4.2.3, C.4.3.3).
A request we refuse before choosing a destination (operation not allowed, bad identifier) raises in the handler,
which pynetdicom answers with a 0xC5xx/0xC4xx "unable to process" failure; a C-GET refused for the operation
answers 0x0124.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.events import Event
from pynetdicom.presentation import build_context

from dicom import status
from dicom.context import Context
from dicom.context import authorized as _state
from dicom.context import refuse_op as _refuse_op
from dicom.context import text as _text
from engine import uow
from engine.imaging import retrieve
from engine.imaging.retrieve import RetrieveError, RetrieveItem

log = logging.getLogger("telerad.dicom")

PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
RETRIEVE_SOP_CLASSES = (PATIENT_ROOT_MOVE, PATIENT_ROOT_GET, STUDY_ROOT_MOVE, STUDY_ROOT_GET)
_PATIENT_ROOT = {PATIENT_ROOT_MOVE, PATIENT_ROOT_GET}
_MAX_CONTEXTS = 127  # odd context ids 1..255


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


def _load(ctx: Context, item: RetrieveItem) -> Dataset:
    """The stored instance, undecoded (raw elements are written back byte for byte). An unreadable file yields a
    data set pynetdicom cannot send, so the sub-operation counts as failed and its UID is listed as failed."""
    try:
        return dcmread(item.path or ctx.store.path(item.storage_key), defer_size=None)
    except (OSError, ValueError, EOFError) as exc:
        log.error("retrieve: stored file of %s unreadable: %s", item.sop_instance_uid, exc)
        failed = Dataset()
        failed.SOPClassUID = item.sop_class_uid
        failed.SOPInstanceUID = item.sop_instance_uid
        return failed  # no file meta: send_c_store refuses it → a failed sub-operation


def _sub_operations(event: Event, ctx: Context, items: list[RetrieveItem]) -> Iterator[tuple[int, Dataset | None]]:
    for item in items:
        if event.is_cancelled:
            yield status.CANCEL, None
            return
        yield status.PENDING, _load(ctx, item)


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
    pairs = sorted({(i.sop_class_uid, i.transfer_syntax_uid) for i in items})[:_MAX_CONTEXTS]
    contexts = [build_context(sop_class, [ts]) for sop_class, ts in pairs]
    with ctx.app.app_context(), uow.unit_of_work():  # before the transfer: pynetdicom stops at 0 sub-operations
        retrieve.record_retrieve(state.node, state.ip, "move", level, items, dest.aet, {})
    yield dest.host, dest.port, {"contexts": contexts} if contexts else {}
    yield len(items)
    yield from _sub_operations(event, ctx, items)


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
    yield from _sub_operations(event, ctx, items)


def bindings(ctx: Context) -> list[tuple[Any, Any, list[Any]]]:
    return [(evt.EVT_C_MOVE, handle_move, [ctx]), (evt.EVT_C_GET, handle_get, [ctx])]
