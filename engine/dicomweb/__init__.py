"""DICOMweb over the archive (PS3.18; issue 15): the engine side of QIDO-RS, WADO-RS and STOW-RS — no Flask here
(api/dicomweb/).

qido.py: query parameters → the shared matcher (engine/imaging/queries.py) → DICOM JSON (json.py); resolve.py: a
StudyInstanceUID (which one of an institution's copies) for the actor; access_audit.py: DSEC-10 "accessed" once per
(session or client, study, day); wado.py, frames.py, rendered.py, media.py: WADO-RS/URI; stow.py: STOW-RS.
"""
