"""DICOMweb over the archive (PS3.18; issue 15): QIDO-RS, WADO-RS/URI and STOW-RS under `/dicomweb`.

Plain Flask blueprints, not flask-smorest: the payloads are DICOM JSON (application/dicom+json) and multipart/
related DICOM, which the OpenAPI document of `/api` does not describe. The request guard (api/security.py) covers
`/dicomweb/` as it covers `/api/`: deny by default (every view declares its permission with `requires`), the
session or a bearer token, CSRF on unsafe methods from the browser, `Cache-Control: no-store` (WEB-04). An unknown
path under `/dicomweb` answers the JSON 404, never the SPA's index.html.

Each resource lives in its own module (qido.py, wado.py, stow.py) and registers its routes on `blp`.
"""

from __future__ import annotations

from flask import Blueprint

blp = Blueprint("dicomweb", __name__, url_prefix="/dicomweb")

#: media types (PS3.18 §8.7)
DICOM_JSON = "application/dicom+json"
DICOM = "application/dicom"
