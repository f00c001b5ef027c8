"""The UIDs telerad negotiates — storage SOP classes, transfer syntaxes, the query/retrieve, worklist and MPPS
models — and the SCP's presentation contexts (REQ: DSEC-09, DCM-03/04/05).

Shared by the SCP (dicom/scp.py, dicom/qr.py, dicom/worklist.py) and the SCU (dicom/scu.py); imports nothing of
telerad, so any DICOM module may use it without importing the server.
"""

from __future__ import annotations

from pynetdicom.presentation import PresentationContext, build_context

# Transfer syntaxes accepted for storage: stored as received (REQ: DSEC-09). No Deflate (decompression bombs) and
# no retired big endian.
STORAGE_TRANSFER_SYNTAXES = [
    # Compressed first: when an SCU offers a compressed syntax and uncompressed ones in one context, we take the
    # compressed one and store it as received (pynetdicom picks the first of ours that the SCU proposed).
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51",  # JPEG Extended (Process 2 & 4)
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless (Process 14)
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
]
QUERY_TRANSFER_SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]
# For storage contexts on which the peer takes the SCP role (C-GET sub-operations): uncompressed first. Only one
# syntax is accepted per context, and every stored instance can be sent uncompressed (decoded when compressed),
# whereas a compressed syntax fits only the instances stored in it (issue 12 §3).
RETRIEVE_TRANSFER_SYNTAXES = [
    *QUERY_TRANSFER_SYNTAXES,
    *(ts for ts in STORAGE_TRANSFER_SYNTAXES if ts not in QUERY_TRANSFER_SYNTAXES),
]

# Storage SOP classes we archive (issue 4: CT, MR, CR, DX, RF, US, XA, MG, NM, PT, SC, SR, encapsulated PDF).
# Anything else — RT objects, private classes — is refused at negotiation (REQ: DSEC-09).
STORAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1": "CR Image",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image - For Processing",
    "1.2.840.10008.5.1.4.1.1.1.2": "Digital Mammography X-Ray Image - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.2.1": "Digital Mammography X-Ray Image - For Processing",
    "1.2.840.10008.5.1.4.1.1.1.3": "Digital Intra-Oral X-Ray Image - For Presentation",
    "1.2.840.10008.5.1.4.1.1.2": "CT Image",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image",
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame Image",
    "1.2.840.10008.5.1.4.1.1.4": "MR Image",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image",
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image",
    "1.2.840.10008.5.1.4.1.1.7.1": "Multi-frame Single Bit Secondary Capture Image",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte Secondary Capture Image",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word Secondary Capture Image",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture Image",
    "1.2.840.10008.5.1.4.1.1.12.1": "X-Ray Angiographic Image",
    "1.2.840.10008.5.1.4.1.1.12.1.1": "Enhanced XA Image",
    "1.2.840.10008.5.1.4.1.1.12.2": "X-Ray Radiofluoroscopic Image",
    "1.2.840.10008.5.1.4.1.1.12.2.1": "Enhanced XRF Image",
    "1.2.840.10008.5.1.4.1.1.20": "Nuclear Medicine Image",
    "1.2.840.10008.5.1.4.1.1.128": "Positron Emission Tomography Image",
    "1.2.840.10008.5.1.4.1.1.130": "Enhanced PET Image",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic Image",
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR",
    "1.2.840.10008.5.1.4.1.1.88.59": "Key Object Selection Document",
    "1.2.840.10008.5.1.4.1.1.88.67": "X-Ray Radiation Dose SR",
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.11.1": "Grayscale Softcopy Presentation State",
}
VERIFICATION = "1.2.840.10008.1.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
RETRIEVE_SOP_CLASSES = (PATIENT_ROOT_MOVE, PATIENT_ROOT_GET, STUDY_ROOT_MOVE, STUDY_ROOT_GET)
MWL_FIND = "1.2.840.10008.5.1.4.31"  # Modality Worklist Information Model - FIND
MPPS = "1.2.840.10008.3.1.2.3.3"  # Modality Performed Procedure Step


def retrieve_contexts(contexts: list[PresentationContext], sop_classes: set[str]) -> list[PresentationContext]:
    """`contexts` (the acceptor's, shared and left unchanged) with, for the storage SOP classes in `sop_classes` —
    those the peer proposed to take the SCP role for, i.e. to receive C-GET sub-operations — the uncompressed
    syntaxes preferred (RETRIEVE_TRANSFER_SYNTAXES). A peer proposing a compressed syntax and the uncompressed ones
    in one context (getscu +xs) then gets every instance, the compressed ones decoded; one proposing them in separate
    contexts still gets each compressed syntax it offered accepted, and the stored bytes where they fit. Contexts for
    other classes (C-STORE to telerad) keep the compressed-first preference: received data is stored as sent."""
    out: list[PresentationContext] = []
    for cx in contexts:
        if cx.abstract_syntax in sop_classes and cx.abstract_syntax in STORAGE_SOP_CLASSES:
            mine = set(cx.transfer_syntax)
            new = build_context(cx.abstract_syntax, [ts for ts in RETRIEVE_TRANSFER_SYNTAXES if ts in mine])
            new.scu_role, new.scp_role = cx.scu_role, cx.scp_role
            cx = new
        out.append(cx)
    return out


def supported_contexts() -> list[PresentationContext]:
    """The acceptor's presentation contexts: built once and shared by every association (see transport.py)."""
    contexts = [build_context(VERIFICATION, QUERY_TRANSFER_SYNTAXES)]
    contexts += [build_context(uid, STORAGE_TRANSFER_SYNTAXES) for uid in STORAGE_SOP_CLASSES]
    contexts += [build_context(uid, QUERY_TRANSFER_SYNTAXES) for uid in (PATIENT_ROOT_FIND, STUDY_ROOT_FIND)]
    # C-MOVE/C-GET (dicom/qr.py), Modality Worklist and MPPS (dicom/worklist.py); REQ: DCM-04, DCM-05.
    contexts += [build_context(uid, QUERY_TRANSFER_SYNTAXES) for uid in (*RETRIEVE_SOP_CLASSES, MWL_FIND, MPPS)]
    return contexts
