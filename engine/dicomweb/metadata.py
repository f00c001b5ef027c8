"""WADO-RS metadata of one stored instance as DICOM JSON bytes, kept per stored file (issue 15, issue 16).

A series' metadata is a JSON array of its instances' DICOM JSON (engine/dicomweb/wado.py metadata_of's document,
converted from the raw elements by engine/dicomweb/rawjson.py). Building it costs ~1–2 ms an instance (header
parsing and conversion; measured by bench/bench_metadata.py: 1.9 s cold for a 1,000-slice CT series), so it is built
once per stored file and kept as a template in which the instance's URL, the only part that does not come from the
file, is a marker — a random token per template that no DICOM value contains:
- in the database (engine/dicomweb/models.py InstanceMetadata, keyed by the file's content key: stored files never
  change under their key, engine/imaging/storage.py, so a row is right as long as it exists, and an instance re-sent
  with other content or moved to a transcoded copy names another key). Rows are written by the worker when it drains the
  study's ingest outbox row (engine/dicomweb/prebuild.py; never by a receiver) and, for whatever is missing, by the
  first request (`templates`); a removed file's row goes with it (engine/imaging/ingest.py forget_derived);
- in this process, a least-recently-used cache bounded by bytes, in front of the database.
Templates are read only after the request's visibility check has named the instances.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select, text

from engine import uow
from engine.db import UTCDateTime, utcnow
from engine.dicomweb.models import InstanceMetadata
from engine.dicomweb.rawheader import read_header_fast
from engine.dicomweb.rawjson import dataset_json
from engine.dicomweb.wado import InstanceRef, instance_url, read_header, with_available_syntax

log = logging.getLogger("telerad.dicomweb")

CAPACITY = 64 << 20  # bytes of JSON kept (~10,000 CT instances)
CHUNK = 500  # keys per database query
_MARK = f"\x00telerad-base:{secrets.token_hex(12)}\x00"
_MARK_JSON = json.dumps(_MARK)[1:-1].encode()  # how the marker reads inside a JSON string


class _Cache:
    """Key → JSON template, least recently used out first, at most `capacity` bytes."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Any, Any] = OrderedDict()  # bytes or Template
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= _size_of(old)
            self._items[key] = value
            self._size += _size_of(value)
            while self._size > self.capacity and len(self._items) > 1:
                _k, gone = self._items.popitem(last=False)
                self._size -= _size_of(gone)


def _size_of(value: Any) -> int:
    return len(value.doc) + len(value.mark) if isinstance(value, Template) else len(value)


_cache = _Cache()


def metadata_doc(ref: InstanceRef, base: str) -> dict[str, Any]:
    """`wado.metadata_of`'s document, converted from the raw elements (engine/dicomweb/rawjson.py).

    Raises:
        OSError, ValueError: the file cannot be read.
    """
    return _doc(ref.path, instance_url(base, ref))


def _doc(path: Path, url: str) -> dict[str, Any]:
    """The DICOM JSON of the stored file at `path` whose instance resource is `url` (one construction for the
    documents built per request and the templates kept per file)."""
    header = read_header_fast(path) or read_header(path)
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


# -- templates kept per stored file (issue 16) ----------------------------------------------------------------------
class Template:
    """One stored file's DICOM JSON with `mark` (JSON-escaped, bytes) where the instance URL goes."""

    __slots__ = ("doc", "mark")

    def __init__(self, doc: bytes, mark: bytes) -> None:
        self.doc, self.mark = doc, mark

    def render(self, url: str) -> bytes:
        return self.doc.replace(self.mark, json.dumps(url)[1:-1].encode())


def _mark_of(token: str) -> bytes:
    return json.dumps(f"\x00telerad-url:{token}\x00")[1:-1].encode()


def build(path: Path) -> tuple[str, bytes]:
    """The template of the stored file at `path`: (its token, its JSON) — `metadata_doc` with the instance URL the
    marker of a new random token.

    Raises:
        OSError, ValueError: the file cannot be read.
    """
    token = secrets.token_hex(12)
    doc = _doc(path, f"\x00telerad-url:{token}\x00")
    return token, json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


# One textual statement, valid on SQLite (≥ 3.35) and PostgreSQL alike (as engine/imaging/ingest.py's): a template
# another process wrote first is the same document (another token), and is kept.
_INSERT = text(
    "INSERT INTO dicomweb_instance_metadata (storage_key, marker, doc, created_at) "
    "VALUES (:storage_key, :marker, :doc, :created_at) ON CONFLICT (storage_key) DO NOTHING"
).bindparams(bindparam("created_at", type_=UTCDateTime()))


def store(rows: list[dict[str, Any]]) -> None:
    """Write templates ({storage_key, marker, doc}) in the current unit of work; keys already kept are left."""
    if rows:
        now = utcnow()
        uow.session().execute(_INSERT, [{**r, "created_at": now} for r in rows])


def missing(keys: Iterable[str]) -> set[str]:
    """The keys among `keys` that have no template in the database."""
    wanted = list(dict.fromkeys(keys))
    found: set[str] = set()
    for i in range(0, len(wanted), CHUNK):
        part = wanted[i : i + CHUNK]
        stmt = select(InstanceMetadata.storage_key).where(InstanceMetadata.storage_key.in_(part))
        found.update(uow.session().execute(stmt).scalars())
    return set(wanted) - found


def templates(refs: list[InstanceRef]) -> dict[str, Template]:
    """The templates of the instances `refs` names, by content key, in the current unit of work: from this process's
    cache, else the database, else built now and written to both (one bulk build for what a series lacks). An
    instance whose file cannot be read is left out (`stream_metadata` reports it where it comes)."""
    out: dict[str, Template] = {}
    wanted: list[str] = []
    for ref in refs:
        if not ref.key or ref.key in out:
            continue
        hit = _cache.get(("key", ref.key))
        if hit is not None:
            out[ref.key] = hit
        else:
            wanted.append(ref.key)
    s = uow.session()
    pending = list(dict.fromkeys(wanted))
    for i in range(0, len(pending), CHUNK):
        part = pending[i : i + CHUNK]
        rows = s.execute(
            select(InstanceMetadata.storage_key, InstanceMetadata.marker, InstanceMetadata.doc).where(
                InstanceMetadata.storage_key.in_(part)
            )
        ).all()
        for key, token, doc in rows:
            out[key] = _keep(key, token, bytes(doc))
    built: list[dict[str, Any]] = []
    for ref in refs:
        if not ref.key or ref.key in out:
            continue
        try:
            token, doc = build(ref.path)
        except Exception:  # noqa: BLE001, S112 - left to stream_metadata, which fails there as it always did
            continue
        out[ref.key] = _keep(ref.key, token, doc)
        built.append({"storage_key": ref.key, "marker": token, "doc": doc})
    if built:
        try:
            with s.begin_nested():  # a failed write costs only the keeping, never the answer
                store(built)
        except Exception:  # noqa: BLE001 - e.g. SQLite busy: built again next time
            log.warning("keeping %d metadata templates failed", len(built), exc_info=True)
    return out


def _keep(key: str, token: str, doc: bytes) -> Template:
    template = Template(doc, _mark_of(token))
    _cache.put(("key", key), template)
    return template


def forget() -> None:
    """Empty this process's cache (benchmarks and tests: a request as after a restart)."""
    global _cache
    _cache = _Cache(_cache.capacity)
