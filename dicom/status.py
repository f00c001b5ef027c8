"""Named DIMSE status codes (PS3.4 Annex B/C, PS3.7 Annex C); handlers return these, never bare literals."""

from __future__ import annotations

from pydicom.dataset import Dataset

SUCCESS = 0x0000
CANCEL = 0xFE00
PENDING = 0xFF00

# General (PS3.7 C)
REFUSED_NOT_AUTHORIZED = 0x0124
SOP_CLASS_NOT_SUPPORTED = 0x0122
DUPLICATE_SOP_INSTANCE = 0x0111
PROCESSING_FAILURE = 0x0110

# Storage (PS3.4 B.2.3)
STORE_OUT_OF_RESOURCES = 0xA700
STORE_DATASET_MISMATCH = 0xA900  # data set does not match SOP class (and mismatched Affected UIDs)
STORE_CANNOT_UNDERSTAND = 0xC000  # bad UIDs or an unreadable data set
STORE_ELEMENTS_DISCARDED = 0xB006

# Query (PS3.4 C.4.1.1.4)
FIND_OUT_OF_RESOURCES = 0xA700
FIND_IDENTIFIER_MISMATCH = 0xA900
FIND_UNABLE_TO_PROCESS = 0xC000

# Retrieve (PS3.4 C.4.2.1.5, C.4.3.1.4; REQ: AC-08)
MOVE_DESTINATION_UNKNOWN = 0xA801
RETRIEVE_IDENTIFIER_MISMATCH = 0xA900
RETRIEVE_SUBOPERATIONS_FAILED = 0xA702

# N-CREATE / N-SET (PS3.7 C; MPPS PS3.4 F.7.2)
NO_SUCH_SOP_INSTANCE = 0x0112
MISSING_ATTRIBUTE = 0x0120
INVALID_ATTRIBUTE_VALUE = 0x0106
MPPS_NO_LONGER_UPDATABLE = 0xA710  # the step is already COMPLETED or DISCONTINUED

NAMES = {
    SUCCESS: "Success",
    CANCEL: "Cancel",
    PENDING: "Pending",
    REFUSED_NOT_AUTHORIZED: "Refused: not authorized",
    SOP_CLASS_NOT_SUPPORTED: "Refused: SOP class not supported",
    DUPLICATE_SOP_INSTANCE: "Duplicate SOP instance",
    PROCESSING_FAILURE: "Processing failure",
    STORE_OUT_OF_RESOURCES: "Out of resources",
    STORE_DATASET_MISMATCH: "Data set does not match SOP class",
    STORE_CANNOT_UNDERSTAND: "Cannot understand",
    MOVE_DESTINATION_UNKNOWN: "Move destination unknown",
    RETRIEVE_SUBOPERATIONS_FAILED: "Unable to perform sub-operations",
    NO_SUCH_SOP_INSTANCE: "No such SOP instance",
    MISSING_ATTRIBUTE: "Missing attribute",
    INVALID_ATTRIBUTE_VALUE: "Invalid attribute value",
    MPPS_NO_LONGER_UPDATABLE: "Performed Procedure Step may no longer be updated",
}


def with_comment(code: int, comment: str) -> Dataset:
    """A failure status with its Error Comment (0000,0902), e.g. where a received data set is broken (REQ: DSEC-08).

    The comment is LO (≤ 64 characters) in a command set, which has no Specific Character Set: ASCII only; the
    Chinese reason goes to the audit log.
    """
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment.encode("ascii", "replace").decode("ascii")[:64]
    return ds
