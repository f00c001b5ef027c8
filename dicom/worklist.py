"""Modality Worklist C-FIND SCP and MPPS N-CREATE/N-SET SCP (REQ: DCM-05, AC-08, DSEC-10).

Thin handlers over engine.imaging.worklist: the device must be allowed `worklist` / `mpps`, and sees or changes
only its institution's exams. Responses are UTF-8 (ISO_IR 192), so Chinese names arrive intact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom import evt
from pynetdicom.dimse_primitives import N_CREATE, N_SET
from pynetdicom.events import Event

from dicom import status
from dicom.context import Context, authorized, refuse_op, text
from engine import uow
from engine.imaging import worklist
from engine.imaging.queries import QueryError
from engine.imaging.worklist import MppsError, MppsFields, WorklistItem, WorklistQuery

MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
MPPS = "1.2.840.10008.3.1.2.3.3"

_MPPS_STATUS = {
    "duplicate": status.DUPLICATE_SOP_INSTANCE,
    "no_such_instance": status.NO_SUCH_SOP_INSTANCE,
    "missing": status.MISSING_ATTRIBUTE,
    "invalid_value": status.INVALID_ATTRIBUTE_VALUE,
    "final": status.MPPS_NO_LONGER_UPDATABLE,
}


def _first_item(ds: Dataset, keyword: str) -> Dataset | None:
    seq = ds.get(keyword)
    return seq[0] if seq else None


def _query(ident: Dataset) -> WorklistQuery:
    sps = _first_item(ident, "ScheduledProcedureStepSequence") or Dataset()
    return WorklistQuery(
        patient_name=text(ident.get("PatientName", "")),
        patient_id=text(ident.get("PatientID", "")),
        accession_number=text(ident.get("AccessionNumber", "")),
        requested_procedure_id=text(ident.get("RequestedProcedureID", "")),
        modality=text(sps.get("Modality", "")),
        station_aet=text(sps.get("ScheduledStationAETitle", "")),
        start_date=text(sps.get("ScheduledProcedureStepStartDate", "")),
    )


def _full_response(item: WorklistItem) -> Dataset:
    """Every attribute a worklist entry can return (PS3.4 K.6.1.2.2)."""
    sps = Dataset()
    sps.Modality = item.modality
    sps.ScheduledStationAETitle = item.station_aet
    sps.ScheduledProcedureStepStartDate = item.start.strftime("%Y%m%d")
    sps.ScheduledProcedureStepStartTime = item.start.strftime("%H%M%S")
    sps.ScheduledProcedureStepID = item.exam_no[:16]
    sps.ScheduledProcedureStepDescription = item.procedure_description
    sps.ScheduledPerformingPhysicianName = ""
    sps.ScheduledProcedureStepStatus = "SCHEDULED"
    rsp = Dataset()
    rsp.PatientName = item.patient_name
    rsp.PatientID = item.patient_id
    rsp.PatientBirthDate = item.patient_birth_date
    rsp.PatientSex = item.patient_sex
    rsp.AccessionNumber = item.accession_number[:16]
    rsp.RequestedProcedureID = item.exam_no[:16]
    rsp.RequestedProcedureDescription = item.procedure_description
    rsp.StudyInstanceUID = item.study_instance_uid
    rsp.ReferringPhysicianName = ""
    rsp.ScheduledProcedureStepSequence = Sequence([sps])
    return rsp


def _response(ident: Dataset, item: WorklistItem) -> Dataset:
    """The entry with only the requested keys (PS3.4 C.2.2.1.2); an empty SPS sequence asks for all of its keys."""
    full = _full_response(item)
    rsp = Dataset()
    rsp.SpecificCharacterSet = "ISO_IR 192"
    for elem in ident:
        kw = elem.keyword
        if not kw or kw == "SpecificCharacterSet":
            continue
        if kw == "ScheduledProcedureStepSequence":
            asked = _first_item(ident, kw)
            sps_full = full.ScheduledProcedureStepSequence[0]
            if asked is None or len(asked) == 0:
                rsp.ScheduledProcedureStepSequence = Sequence([sps_full])
                continue
            sps = Dataset()
            for sub in asked:
                if sub.keyword and sub.keyword in sps_full:
                    sps[sub.tag] = sps_full[sub.tag]
                elif sub.keyword:
                    setattr(sps, sub.keyword, None)
            rsp.ScheduledProcedureStepSequence = Sequence([sps])
        elif kw in full:
            rsp[elem.tag] = full[elem.tag]
        else:
            rsp[elem.tag] = elem.__class__(elem.tag, elem.VR, None)  # asked, unknown to us: returned empty
    return rsp


def handle_worklist_find(event: Event, ctx: Context) -> Iterator[tuple[int, Dataset | None]]:
    """Modality Worklist C-FIND (PS3.4 K): registered exams of the device's institution (REQ: DCM-05, AC-08)."""
    state = authorized(event)
    if not state.node.allows("worklist"):
        refuse_op(ctx, state, "worklist")
        yield status.REFUSED_NOT_AUTHORIZED, None
        return
    try:
        ident = event.identifier
        q = _query(ident)
    except Exception:  # an identifier we cannot decode is the peer's error, not a crash
        yield status.FIND_UNABLE_TO_PROCESS, None
        return
    try:
        with ctx.app.app_context(), uow.unit_of_work():
            items = worklist.find_scheduled(state.node, q, limit=ctx.find_limit, ip=state.ip)
    except QueryError:
        yield status.FIND_IDENTIFIER_MISMATCH, None
        return
    for item in items:
        if event.is_cancelled:
            yield status.CANCEL, None
            return
        yield status.PENDING, _response(ident, item)


def _mpps_fields(ds: Dataset) -> MppsFields:
    step = _first_item(ds, "ScheduledStepAttributesSequence") or Dataset()
    return MppsFields(
        status=text(ds.get("PerformedProcedureStepStatus", "")).upper(),
        accession_number=text(step.get("AccessionNumber", "")),
        study_instance_uid=text(step.get("StudyInstanceUID", "")),
        patient_id=text(ds.get("PatientID", "")),
        modality=text(ds.get("Modality", "")).upper(),
        station_aet=text(ds.get("PerformedStationAETitle", "")),
    )


def handle_n_create(event: Event, ctx: Context) -> tuple[int, Dataset | None]:
    """MPPS N-CREATE (PS3.4 F.7.2.1): keep the step; IN PROGRESS marks the exam 检查中 (REQ: DCM-05)."""
    state = authorized(event)
    request = cast(N_CREATE, event.request)  # EVT_N_CREATE carries an N-CREATE
    if str(request.AffectedSOPClassUID) != MPPS:
        return status.SOP_CLASS_NOT_SUPPORTED, None
    if not state.node.allows("mpps"):
        refuse_op(ctx, state, "mpps")
        return status.REFUSED_NOT_AUTHORIZED, None
    try:
        attrs = event.attribute_list
        fields = _mpps_fields(attrs)
    except Exception:
        return status.PROCESSING_FAILURE, None
    try:
        with ctx.app.app_context(), uow.unit_of_work():
            worklist.create_mpps(state.node, state.ip, text(request.AffectedSOPInstanceUID), fields)
    except MppsError as exc:
        return _MPPS_STATUS[exc.code], None
    return status.SUCCESS, attrs


def handle_n_set(event: Event, ctx: Context) -> tuple[int, Dataset | None]:
    """MPPS N-SET (PS3.4 F.7.2.2): COMPLETED → 已检查, DISCONTINUED → 已登记 (REQ: DCM-05)."""
    state = authorized(event)
    request = cast(N_SET, event.request)  # EVT_N_SET carries an N-SET
    if str(request.RequestedSOPClassUID) != MPPS:
        return status.SOP_CLASS_NOT_SUPPORTED, None
    if not state.node.allows("mpps"):
        refuse_op(ctx, state, "mpps")
        return status.REFUSED_NOT_AUTHORIZED, None
    try:
        mods = event.modification_list
        new_status = text(mods.get("PerformedProcedureStepStatus", "")).upper() or None
    except Exception:
        return status.PROCESSING_FAILURE, None
    try:
        with ctx.app.app_context(), uow.unit_of_work():
            worklist.update_mpps(state.node, state.ip, text(request.RequestedSOPInstanceUID), new_status)
    except MppsError as exc:
        return _MPPS_STATUS[exc.code], None
    return status.SUCCESS, mods


def bindings(ctx: Context) -> list[tuple[Any, Any, list[Any]]]:
    """N-CREATE/N-SET; the worklist C-FIND is reached through handlers.handle_find (one C-FIND handler)."""
    return [(evt.EVT_N_CREATE, handle_n_create, [ctx]), (evt.EVT_N_SET, handle_n_set, [ctx])]
