"""The DICOM JSON model (PS3.18 Annex F.2) for the attributes of the archive index.

`element(keyword, value)` gives one attribute's JSON object (`{"vr": …, "Value": […]}`, no "Value" when empty);
`dataset(row)` a whole response item. PN values keep their `^` component separators and split their `=` groups into
Alphabetic / Ideographic / Phonetic (F.2.2): the JSON is data for a DICOM client, never text shown in the UI.

Private attributes (PS3.5 §7.8): telerad's block in group 0009, creator "TELERAD" at (0009,0010), so its elements
are (0009,10xx). (0009,1001) LO = the code of the institution that holds the study. One StudyInstanceUID can be
stored by two institutions (DSEC-03): a central user's QIDO lists both, told apart by InstitutionName (0008,0080)
and this code, which WADO/viewer URLs take as `institution=`.
"""

from __future__ import annotations

import functools
import json
import json.encoder
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.tag import Tag

PRIVATE_CREATOR = "TELERAD"
PRIVATE_CREATOR_TAG = "00090010"
INSTITUTION_CODE_TAG = "00091001"
_NUMBERS = {"IS", "DS", "US", "UL", "SS", "SL", "FL", "FD", "SV", "UV"}


def tag_of(keyword_or_tag: str) -> str | None:
    """ "PatientName" or "00100010" (or "0010,0010") → "00100010"; None for neither a known keyword nor a tag."""
    text = keyword_or_tag.strip()
    compact = text.replace(",", "").replace("(", "").replace(")", "")
    if len(compact) == 8 and all(c in "0123456789abcdefABCDEF" for c in compact):
        return compact.upper()
    tag = tag_for_keyword(text)
    return None if tag is None else f"{tag:08X}"


def keyword_of(tag: str) -> str | None:
    """ "00100010" → "PatientName" (None for a private or unknown tag)."""
    try:
        return keyword_for_tag(Tag(int(tag, 16))) or None
    except (ValueError, OverflowError):
        return None


@functools.cache
def _tag_vr(keyword: str) -> tuple[str, str]:
    """keyword → ("00100010", "PN"), looked up once per keyword (a QIDO-RS answer asks ~17 per row)."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    vr = str(dictionary_VR(tag))
    return f"{tag:08X}", "US" if vr == "US or SS" else vr.split(" ")[0]


def vr_of(keyword: str) -> str:
    return _tag_vr(keyword)[1]


def tag_and_vr(keyword: str) -> tuple[str, str]:
    """("00100010", "PN") for "PatientName"."""
    return _tag_vr(keyword)


def _pn(value: str) -> dict[str, str]:
    groups = value.split("=")
    out = {}
    for name, group in zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False):
        if group:
            out[name] = group
    return out


def element(keyword: str, value: Any, vr: str | None = None) -> dict[str, Any]:
    vr = vr or vr_of(keyword)
    values = value if isinstance(value, list) else [value]
    values = [v for v in values if v is not None and v != ""]
    if not values:
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [_pn(str(v)) for v in values]}
    if vr in _NUMBERS:
        return {"vr": vr, "Value": [int(v) if vr != "DS" and vr not in ("FL", "FD") else float(v) for v in values]}
    return {"vr": vr, "Value": [str(v) for v in values]}


text_json = json.encoder.encode_basestring  # a JSON string literal, non-ASCII kept (as ensure_ascii=False)
_text = text_json


def element_json(vr: str, value: Any) -> str:
    """`element(…, value, vr)` as JSON text: what a QIDO-RS answer of many rows writes without building dicts and
    encoding them again (issue 15)."""
    values = value if isinstance(value, list) else [value]
    values = [v for v in values if v is not None and v != ""]
    if not values:
        return f'{{"vr":"{vr}"}}'
    if vr == "PN":
        items = ",".join("{" + ",".join(f'"{k}":{_text(g)}' for k, g in _pn(str(v)).items()) + "}" for v in values)
    elif vr in _NUMBERS:
        floats = vr in ("DS", "FL", "FD")
        items = ",".join(json.dumps(float(v)) if floats else str(int(v)) for v in values)
    else:
        items = ",".join(_text(str(v)) for v in values)
    return f'{{"vr":"{vr}","Value":[{items}]}}'


def dataset(attributes: dict[str, Any]) -> dict[str, Any]:
    """keyword → value (and already-built private elements under their tag) as one DICOM JSON object, tags sorted."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if isinstance(value, dict) and "vr" in value:
            out[key] = value
        else:
            tag, vr = _tag_vr(key)
            out[tag] = element(key, value, vr)
    return dict(sorted(out.items()))


def private_institution(code: str) -> dict[str, Any]:
    """telerad's private block naming the holding institution (see the module docstring)."""
    return {
        PRIVATE_CREATOR_TAG: {"vr": "LO", "Value": [PRIVATE_CREATOR]},
        INSTITUTION_CODE_TAG: {"vr": "LO", "Value": [code]},
    }
