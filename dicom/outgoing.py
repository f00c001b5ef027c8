"""C-STORE of prepared instances (engine.imaging.transcode.Outgoing) on an established association (REQ: DCM-04,
IMG-08): the stored data set streamed from its file as stored, or a decoded data set's bytes, without pydicom
parsing and re-encoding them element by element (pynetdicom's `send_c_store` of a Dataset: ~2 ms per CT slice).

pynetdicom 3.0.4's C-GET and C-MOVE SCPs (QueryRetrieveServiceClass) require a Dataset for each sub-operation and
send it through `assoc.send_c_store`; `install(assoc)` lets that association's `send_c_store` take a `Prepared`
data set (an instance attribute: the class and other associations are untouched). Anything else still goes through
pynetdicom's own method. A `Prepared` that carries an error raises, so pynetdicom counts that sub-operation as
failed and lists its SOP Instance UID (PS3.4 C.4.2.1.4.2, C.4.3.1.3.2).
"""

from __future__ import annotations

import time
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE

from engine.imaging.transcode import Outgoing


class Prepared(Dataset):
    """A sub-operation's data set for pynetdicom: only the UIDs it reads, the bytes are in `outgoing`."""

    def __init__(self, sop_class: str, sop_instance: str, outgoing: Outgoing | None = None, error: str = "") -> None:
        super().__init__()
        self.SOPClassUID = sop_class
        self.SOPInstanceUID = sop_instance
        self.file_meta = FileMetaDataset()
        if outgoing is not None:
            self.file_meta.TransferSyntaxUID = UID(outgoing.ts)
        self._outgoing = outgoing
        self._error = error or ("" if outgoing is not None else "nothing to send")

    @classmethod
    def of(cls, outgoing: Outgoing) -> Prepared:
        return cls(outgoing.sop_class, outgoing.sop_instance, outgoing)

    @classmethod
    def failed(cls, sop_class: str, sop_instance: str, error: str) -> Prepared:
        return cls(sop_class, sop_instance, None, error)

    @property
    def outgoing(self) -> Outgoing | None:
        return self._outgoing

    @property
    def error(self) -> str:
        return self._error


def send_c_store(
    assoc: Association,
    outgoing: Outgoing,
    msg_id: int = 1,
    priority: int = 2,
    originator_aet: str | None = None,
    originator_id: int | None = None,
) -> Dataset:
    """pynetdicom's `Association.send_c_store` for an `Outgoing`: the same primitive, context rules and response
    handling, the data set's bytes taken as they are (exact transfer syntax match, no conversion).

    Raises:
        RuntimeError: the association is not established.
        ValueError: no accepted presentation context for the SOP class in that transfer syntax.
    """
    if not assoc.is_established:
        raise RuntimeError("the association is not established")
    req = C_STORE()
    req.MessageID = msg_id
    req.Priority = priority
    req.MoveOriginatorApplicationEntityTitle = originator_aet
    req.MoveOriginatorMessageID = originator_id
    req.AffectedSOPClassUID = outgoing.sop_class
    req.AffectedSOPInstanceUID = outgoing.sop_instance
    context = assoc._get_valid_context(outgoing.sop_class, outgoing.ts, "scu", allow_conversion=False)
    if outgoing.data is not None:
        req.DataSet = BytesIO(outgoing.data)
    elif outgoing.path is not None:
        req._dataset_path = (outgoing.path, outgoing.offset)  # streamed from the stored file (pynetdicom encode_msg)
    else:
        raise ValueError("nothing to send")
    # Pause the reactor so it does not take the response off the queue (as pynetdicom's send_c_store does).
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.0001)
    try:
        assoc.dimse.send_msg(req, int(context.context_id or 0))
        _cx_id, rsp = assoc.dimse.get_msg(block=True)
    finally:
        assoc._reactor_checkpoint.set()
    if rsp is None:
        assoc._handle_no_response()
        return Dataset()
    return assoc._check_received_status(rsp)


def install(assoc: Association) -> None:
    """Let `assoc.send_c_store` (called by pynetdicom's C-GET/C-MOVE SCP) send `Prepared` data sets."""
    if getattr(assoc, "_telerad_outgoing", False):
        return
    original = type(assoc).send_c_store

    def send(
        dataset: Any, msg_id: int = 1, priority: int = 2, originator_aet: Any = None, originator_id: Any = None
    ) -> Dataset:
        if isinstance(dataset, Prepared):
            if dataset.outgoing is None:
                raise ValueError(dataset.error)
            return send_c_store(assoc, dataset.outgoing, msg_id, priority, originator_aet, originator_id)
        return original(assoc, dataset, msg_id, priority, originator_aet, originator_id)

    assoc.send_c_store = send  # type: ignore[method-assign]
    assoc._telerad_outgoing = True  # type: ignore[attr-defined]
