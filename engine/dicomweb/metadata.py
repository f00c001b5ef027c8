"""WADO-RS metadata of one stored instance as DICOM JSON bytes, kept per stored file (issue 15).

A series' metadata is a JSON array of its instances' DICOM JSON (engine/dicomweb/wado.py metadata_of's document,
converted from the raw elements by engine/dicomweb/rawjson.py; pydicom's own conversion took ~1 ms an instance,
over a second for a 1,000-slice series). Stored files are content-addressed and never change under their path
(engine/imaging/storage.py), so an instance's JSON is built once and kept — as a template in which the server's
base URL, the only part that depends on the request, is a marker (`_MARK`, a random string no DICOM value
contains) — in a least-recently-used cache bounded by bytes. The cache holds what the stored files hold: it is read
only after the request's visibility check has named the instances.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import OrderedDict
from typing import Any

from engine.dicomweb.rawheader import read_header_fast
from engine.dicomweb.rawjson import dataset_json
from engine.dicomweb.wado import InstanceRef, instance_url, read_header, with_available_syntax

CAPACITY = 64 << 20  # bytes of JSON kept (~10,000 CT instances)
_MARK = f"\x00telerad-base:{secrets.token_hex(12)}\x00"
_MARK_JSON = json.dumps(_MARK)[1:-1].encode()  # how the marker reads inside a JSON string


class _Cache:
    """(path, study, series, instance UIDs) → JSON template, least recently used out first, at most `capacity`
    bytes."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str, str, str], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str, str]) -> bytes | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[str, str, str, str], value: bytes) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._items[key] = value
            self._size += len(value)
            while self._size > self.capacity and len(self._items) > 1:
                _k, gone = self._items.popitem(last=False)
                self._size -= len(gone)


_cache = _Cache()


def metadata_doc(ref: InstanceRef, base: str) -> dict[str, Any]:
    """`wado.metadata_of`'s document, converted from the raw elements (engine/dicomweb/rawjson.py).

    Raises:
        OSError, ValueError: the file cannot be read.
    """
    header = read_header_fast(ref.path) or read_header(ref.path)
    url = instance_url(base, ref)
    doc = with_available_syntax(dataset_json(header.ds, url), header.ts)
    if header.pixel_offset is not None:
        doc["7FE00010"] = {"vr": header.pixel_vr, "BulkDataURI": f"{url}/bulkdata/7FE00010"}
    return doc


def instance_json(ref: InstanceRef, base: str) -> bytes:
    """The DICOM JSON of one stored instance (wado.metadata_of's document), encoded, with BulkDataURIs under `base`.

    Raises:
        OSError, ValueError: the file cannot be read.
    """
    key = (str(ref.path), ref.study_uid, ref.series_uid, ref.sop_uid)
    template = _cache.get(key)
    if template is None:
        doc = metadata_doc(ref, _MARK)
        template = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        _cache.put(key, template)
    return template.replace(_MARK_JSON, json.dumps(base)[1:-1].encode())
