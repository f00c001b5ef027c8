"""DICOM JSON (PS3.18 F.2) of a stored instance's header straight from pydicom's raw elements (WADO-RS metadata;
issue 15).

pydicom's `Dataset.to_json_dict` turns every raw element into a DataElement (value conversion, validation, VM) and
then into JSON: ~1 ms for a CT header, over a second for a 1,000-slice series. Here the common elements are
converted from their raw bytes directly, with pydicom's own rules (pydicom/values.py: which VRs split on `\\`, what
is stripped, which character set decodes them):
- numbers in binary (US, SS, UL, SL, FL, FD, SV, UV): unpacked;
- CS, AS, DA, DT, TM (default encoding), AE (each value stripped), UI (nulls and spaces stripped);
- LO, SH, UC (the data set's character set, each value stripped at the end) and LT, ST, UT (not split);
- IS and DS when every value is a plain number;
- sequences item by item, with the item's character set (its own, else its parent's).
Everything else — PN (PersonName components), AT, UR, binary values (InlineBinary or BulkDataURI), UN, a value
with ISO 2022 escape sequences or not decodable, numbers that are not plain, an implicit VR that is private or
ambiguous, any pydicom configuration that changes these conversions — is left to pydicom, element by element, so
the document is the one `wado.metadata_of` builds (tests/dicomweb/test_metadata_json.py compares them on pydicom's
test files).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import Any

from pydicom import config as pydicom_config
from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

BULK_THRESHOLD = 1024  # engine/dicomweb/wado.py's
_BINARY = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_SIZES = {vr: struct.calcsize("=" + f) for vr, f in _BINARY.items()}
_DATES = frozenset({"DA", "DT", "TM"})
_STRINGS = frozenset({"CS", "AS"})
_TEXT = frozenset({"LO", "SH", "UC"})
_SINGLE = frozenset({"LT", "ST", "UT"})
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_SLOW = None  # _fast's answer: leave this element to pydicom


def _strings(items: list[str], vr: str) -> dict[str, Any]:
    if len(items) == 1 and items[0] == "":
        return {"vr": vr}
    return {"vr": vr, "Value": items}


def _fast(raw: RawDataElement, vr: str, encodings: list[str]) -> dict[str, Any] | None:
    """The JSON of one raw element of a little-endian data set by pydicom's rules, or None (left to pydicom)."""
    value = raw.value
    if not isinstance(value, bytes):
        return _SLOW
    fmt = _BINARY.get(vr)
    if fmt is not None:
        size = _SIZES[vr]
        if len(value) % size:
            return _SLOW
        numbers = struct.unpack(f"<{len(value) // size}{fmt}", value)
        if not numbers:
            return {"vr": vr}
        kind: Callable[[Any], Any] = float if vr in ("FL", "FD") else int
        return {"vr": vr, "Value": [kind(n) for n in numbers]}
    if vr in _STRINGS or (vr in _DATES and not pydicom_config.datetime_conversion):
        return _strings(value.decode(default_encoding).rstrip(" \x00").split("\\"), vr)
    if vr == "UI":
        return _strings(value.decode(default_encoding).rstrip("\x00 ").split("\\"), vr)
    if vr == "AE":
        return _strings([v.strip() for v in value.decode(default_encoding).split("\\")], vr)
    if vr in _TEXT or vr in _SINGLE:
        if b"\x1b" in value:  # ISO 2022 code extensions
            return _SLOW
        try:
            text = value.decode(encodings[0])
        except (LookupError, UnicodeError):
            return _SLOW
        if vr in _SINGLE:
            text = text.rstrip("\x00 ")
            return {"vr": vr, "Value": [text]} if text else {"vr": vr}
        return _strings([v.rstrip("\x00 ") for v in text.split("\\")], vr)
    if vr == "IS" and not pydicom_config.use_IS_numpy:
        items = value.decode(default_encoding).rstrip(" \x00").split("\\")
        if items == [""]:
            return {"vr": vr}
        if not all(_INT.fullmatch(v.strip()) for v in items):
            return _SLOW
        return {"vr": vr, "Value": [int(v) for v in items]}
    if vr == "DS" and not pydicom_config.use_DS_numpy and not pydicom_config.use_DS_decimal:
        items = value.decode(default_encoding).strip().rstrip(" \x00").split("\\")
        if items == [""]:
            return {"vr": vr}
        if not all(_FLOAT.fullmatch(v.strip()) for v in items):
            return _SLOW
        return {"vr": vr, "Value": [float(v) for v in items]}
    return _SLOW


def _vr(raw: RawDataElement) -> str | None:
    """The raw element's VR as pydicom would take it (pydicom/hooks.py raw_element_vr); None: leave it to pydicom."""
    if raw.VR is not None:
        return None if raw.VR == "UN" else str(raw.VR)
    tag = BaseTag(raw.tag)
    if tag.is_private or not dictionary_has_tag(tag):
        return "UL" if not tag.is_private and tag.element == 0 else None
    vr = str(dictionary_VR(tag))
    return None if " or " in vr or vr == "UN" else vr


class _Uri:
    """The BulkDataURI handler of one element (pydicom calls it with the element)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __call__(self, _elem: Any) -> str:
        return self.uri


def dataset_json(ds: Dataset, url: str, prefix: str = "") -> dict[str, Any]:
    """`ds.to_json_dict(BULK_THRESHOLD, handler)` with the BulkDataURIs of `wado.metadata_of`: `url`/bulkdata/
    followed by the element's tag path ("00420011", "00540016/0/00181072")."""
    encodings = list(ds._character_set) if not isinstance(ds._character_set, str) else [ds._character_set]
    out: dict[str, Any] = {}
    for tag in ds.keys():
        key = f"{tag:08X}"
        raw = ds.get_item(tag)
        vr = _vr(raw) if isinstance(raw, RawDataElement) and raw.is_little_endian else None
        if vr == "SQ" or (vr is None and ds[tag].VR == "SQ"):
            items = ds[tag].value
            out[key] = {
                "vr": "SQ",
                "Value": [dataset_json(item, url, f"{prefix}{key}/{i}/") for i, item in enumerate(items)],
            }
            continue
        found = _fast(raw, vr, encodings) if vr is not None and isinstance(raw, RawDataElement) else _SLOW
        if found is None:
            found = ds[tag].to_json_dict(_Uri(f"{url}/bulkdata/{prefix}{key}"), BULK_THRESHOLD)
        out[key] = found
    return out
