"""DICOMweb (PS3.18; issue 15): the engine side of QIDO-RS, WADO-RS and STOW-RS — no Flask here (api/dicomweb/)."""
