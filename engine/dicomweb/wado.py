"""WADO-RS over the archive: which stored instances a request names, the instances as multipart/related DICOM, their
metadata as DICOM JSON and their bulk data (PS3.18 §10.4; REQ: VIEW transport, AC-02, DSEC-03, WEB-04; issue 15).

Everything is read from the stored Part-10 files (engine/imaging/storage.py) and streamed: the index is queried once
(`select_instances`, before the response starts: the unit of work ends when the headers go out), then the generators
read only files. Instances go out as stored when the Accept header allows the stored transfer syntax (or `*`), else
decoded to explicit VR little endian by engine/imaging/transcode.py in its sandboxed pool, a few ahead of the one
being sent. Headers are read by pydicom up to the Pixel Data (no pixel decoding); each file's metadata JSON is kept
in the database once built (engine/dicomweb/metadata.py).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from sqlalchemy import select

from engine import uow
from engine.dicomweb.media import ANY_SYNTAX, Multipart, NotAcceptable
from engine.errors import NotFound, ValidationFailed
from engine.imaging import targets, transcode
from engine.imaging.models import Instance, Series, Study
from engine.imaging.native import DECODABLE, UNCOMPRESSED, TranscodeError

log = logging.getLogger("telerad.dicomweb")

CHUNK = 1 << 20
BULK_THRESHOLD = 1024  # values longer than this (bytes, base64) go out as BulkDataURI (PS3.18 F.2.7)
MAX_INSTANCES = 65535
PIXEL_DATA = 0x7FE00010


@dataclass(frozen=True)
class InstanceRef:
    """One stored instance a request names; `path` is the file on whichever storage target holds it."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class: str
    ts: str
    path: Path
    key: str = ""  # its content key (engine/imaging/storage.py): what metadata templates are kept by


def select_instances(study: Study, series_uid: str | None = None, sop_uid: str | None = None) -> list[InstanceRef]:
    """The stored instances of a study (resolved for the caller by engine/dicomweb/resolve.py), or of one of its
    series or instances, in series and instance number order.

    Raises:
        NotFound: the series or instance is not in the study.
        ValidationFailed: more than MAX_INSTANCES instances.
    """
    return select_instances_of(study.id, study.study_instance_uid, series_uid, sop_uid)


def select_instances_of(
    study_id: int, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
) -> list[InstanceRef]:
    """`select_instances` by the study's id and UID (a frame request's cached decision: engine/dicomweb/decisions)."""
    stmt = (
        select(
            Series.series_instance_uid,
            Instance.sop_instance_uid,
            Instance.sop_class_uid,
            Instance.transfer_syntax_uid,
            Instance.storage_target_id,
            Instance.storage_key,
        )
        .join(Series, Series.id == Instance.series_id)
        .where(Instance.study_id == study_id)
    )
    if series_uid is not None:
        stmt = stmt.where(Series.series_instance_uid == series_uid)
    if sop_uid is not None:
        stmt = stmt.where(Instance.sop_instance_uid == sop_uid)
    stmt = stmt.order_by(Series.series_number, Series.id, Instance.instance_number, Instance.id)
    rows = uow.session().execute(stmt.limit(MAX_INSTANCES + 1)).all()
    if not rows:
        what = "实例" if sop_uid is not None else "序列"
        raise NotFound("not_found", f"{what}不存在")
    if len(rows) > MAX_INSTANCES:
        raise ValidationFailed("too_many_instances", f"实例超过 {MAX_INSTANCES} 个，请按序列获取")
    paths: dict[tuple[int | None, str], Path] = {}
    out = []
    for series, sop, sop_class, ts, target, key in rows:
        path = paths.get((target, key)) or targets.path_of(target, key)
        paths[(target, key)] = path
        out.append(InstanceRef(study_uid, series, sop, sop_class, ts, path, key))
    return out


# -- the stored file ---------------------------------------------------------------------------------------------
@dataclass
class Header:
    """A stored instance's data set up to its Pixel Data, and where the Pixel Data value lies in the file."""

    ds: Dataset
    ts: str
    pixel_offset: int | None = None  # the first byte of the value (the Basic Offset Table item when encapsulated)
    pixel_length: int | None = None  # None: undefined length (encapsulated)
    pixel_vr: str = "OW"

    @property
    def frames(self) -> int:
        return int(self.ds.get("NumberOfFrames", 1) or 1)


def read_header(path: Path) -> Header:
    """The header of a stored Part-10 file (pydicom, stopped before the Pixel Data; no pixel decoding).

    Raises:
        OSError, ValueError: the file cannot be read.
    """
    with open(path, "rb") as fp:
        ds = dcmread(fp, stop_before_pixels=True)
        pos = fp.tell()
        head = fp.read(12)
    ts = str(ds.file_meta.TransferSyntaxUID)
    header = Header(ds, ts)
    if len(head) >= 8 and struct.unpack_from("<HH", head) == (0x7FE0, 0x0010):
        if ts == "1.2.840.10008.1.2":  # implicit VR: tag, 4-byte length
            (length,) = struct.unpack_from("<I", head, 4)
            header.pixel_offset, header.pixel_vr = pos + 8, "OW"
        else:
            header.pixel_vr = head[4:6].decode("ascii", "replace")
            (length,) = struct.unpack_from("<I", head, 8)
            header.pixel_offset = pos + 12
        header.pixel_length = None if length == 0xFFFFFFFF else length
    return header


def encapsulated_length(path: Path, offset: int) -> int:
    """The length of an undefined-length Pixel Data value from `offset` up to and including its sequence delimiter
    (items are skipped by their lengths, no fragment is read).

    Raises:
        ValueError: the items do not end in a sequence delimiter.
    """
    with open(path, "rb") as fp:
        fp.seek(offset)
        pos = offset
        while True:
            item = fp.read(8)
            if len(item) < 8:
                raise ValueError("像素数据缺少序列结束标记")
            group, elem, length = struct.unpack("<HHI", item)
            pos += 8
            if (group, elem) == (0xFFFE, 0xE0DD):
                return pos - offset
            if (group, elem) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF:
                raise ValueError("像素数据的封装项不正确")
            pos += length
            fp.seek(pos)


def file_chunks(path: Path, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
    """The bytes of `path` from `offset`, `length` of them (to the end when None), in CHUNK pieces."""
    with open(path, "rb") as fp:
        fp.seek(offset)
        left = length
        while left is None or left > 0:
            data = fp.read(CHUNK if left is None else min(CHUNK, left))
            if not data:
                return
            if left is not None:
                left -= len(data)
            yield data


# -- retrieve ----------------------------------------------------------------------------------------------------
def choose_syntax(stored: str, accepted: list[str]) -> str | None:
    """The syntax to send an instance stored in `stored`, for syntaxes in preference order (`*`: as stored): the
    stored one, or an uncompressed one when the stored data is uncompressed or decodable; None when none fits
    (telerad never compresses for a client)."""
    for ts in accepted:
        if ts in (ANY_SYNTAX, stored):
            return stored
        if ts in UNCOMPRESSED and (stored in UNCOMPRESSED or stored in DECODABLE):
            return ts
    return None


def plan(refs: list[InstanceRef], accepted: list[str]) -> list[tuple[InstanceRef, str]]:
    """Each instance with the syntax it goes out in; instances no accepted syntax fits are left out.

    Raises:
        NotAcceptable: none of the instances fits.
    """
    out = [(ref, ts) for ref in refs if (ts := choose_syntax(ref.ts, accepted)) is not None]
    if not out:
        raise NotAcceptable(details={"accepted": accepted[:8], "stored": sorted({r.ts for r in refs})[:8]})
    return out


def part10(ref: InstanceRef, ts: str, data: bytes) -> bytes:
    """Preamble, File Meta Information (the stored one, with the new Transfer Syntax UID) and the data set."""
    stored, _offset = transcode.stored_meta(ref.path)
    meta = FileMetaDataset()
    for elem in stored:
        if elem.tag != 0x00020000:  # group length: written anew
            meta.add(elem)
    meta.TransferSyntaxUID = UID(ts)
    out = DicomBytesIO()
    out.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    return bytes(out.getvalue()) + data


def outgoing(item: tuple[InstanceRef, str]) -> transcode.Outgoing | Exception:
    ref, ts = item
    try:
        return transcode.prepare(ref.path, [ts])
    except (TranscodeError, OSError, ValueError) as exc:
        return exc


class InstanceFailed(Exception):
    """An instance could not be read or decoded after the response had started: the body is cut short. `ts`: the
    transfer syntax (or media type) it was to go out in; `sent`: the instances sent before it."""

    def __init__(self, ref: InstanceRef, ts: str, error: Exception, sent: int) -> None:
        super().__init__(f"instance {ref.sop_uid} could not be sent as {ts}: {error}")
        self.ref, self.ts, self.error, self.sent = ref, ts, error, sent


class InstanceStream:
    """The multipart/related body of a WADO-RS retrieve (PS3.18 §10.4.1.1.1), each instance as stored or transcoded;
    the next instances are prepared (decoded in the sandbox pool) while the current one is sent (`Prefetch`).

    An instance that cannot be read or decoded is never silently left out:
    - `start()`, called before the status line goes out, waits for the first instance (the wait the first byte
      needs anyway); the ones failing at the head of the list are known then (`skipped`), and the caller answers
      206 with a Warning naming them (PS3.18 §8.6.1), or an error when nothing is left;
    - once the body has begun, a failing instance ends it with InstanceFailed: no closing boundary, and the
      server, which sees the exception, drops the connection without ending the chunked message — a client's
      multipart parser or its HTTP layer fails instead of taking a shorter study for a complete one.
    """

    def __init__(self, items: list[tuple[InstanceRef, str]], mp: Multipart) -> None:
        self.mp = mp
        self.skipped: list[tuple[InstanceRef, str, Exception]] = []
        workers = transcode.transcoder().workers if any(ref.ts != ts for ref, ts in items) else 1
        self._ahead = transcode.Prefetch(items, outgoing, workers=workers, ahead=workers + 1)
        self._results = iter(self._ahead)
        self._first: tuple[InstanceRef, transcode.Outgoing] | None = None
        self.sent = 0

    def start(self) -> bool:
        """Wait for the first instance that can be sent; False when none can (every one failed)."""
        for (ref, ts), out in self._results:
            if isinstance(out, Exception):
                log.warning("WADO: instance %s cannot be sent in %s, left out (206): %s", ref.sop_uid, ts, out)
                self.skipped.append((ref, ts, out))
                continue
            self._first = (ref, out)
            return True
        self.close()
        return False

    def _part(self, ref: InstanceRef, out: transcode.Outgoing) -> Iterator[bytes]:
        chunks = file_chunks(ref.path) if out.data is None else iter([part10(ref, out.ts, out.data)])
        yield from self.mp.part(chunks)
        self.sent += 1

    def body(self) -> Iterator[bytes]:
        """The parts, then the closing boundary — or InstanceFailed, without it (see the class)."""
        try:
            if self._first is not None:
                yield from self._part(*self._first)
                self._first = None
                for (ref, ts), out in self._results:
                    if isinstance(out, Exception):
                        raise InstanceFailed(ref, ts, out, self.sent)
                    yield from self._part(ref, out)
            yield self.mp.close()
        finally:
            self.close()

    def close(self) -> None:
        """Cancel what has not been prepared (the client went away, or the body was never read)."""
        self._ahead.close()


# -- metadata ----------------------------------------------------------------------------------------------------
def instance_url(base: str, ref: InstanceRef) -> str:
    return f"{base}/studies/{ref.study_uid}/series/{ref.series_uid}/instances/{ref.sop_uid}"


_BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW", "US or SS or OW"})


def _bulk_paths(ds: Dataset, prefix: str, out: dict[int, str]) -> None:
    """id(element) → its bulkdata tag path ("00420011", "00540016/0/00181072") for the binary elements of `ds` (the
    ones DICOM JSON may give as BulkDataURI); other values are not converted here (pydicom's raw VR is read)."""
    for tag in list(ds.keys()):
        raw_vr = ds.get_item(tag).VR  # type: ignore[union-attr]
        if raw_vr is not None and raw_vr != "SQ" and raw_vr not in _BULK_VRS:
            continue
        elem = ds[tag]
        path = f"{prefix}{int(tag):08X}"
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                _bulk_paths(item, f"{path}/{i}/", out)
        elif elem.VR in _BULK_VRS:
            out[id(elem)] = path


def with_available_syntax(doc: dict[str, Any], ts: str) -> dict[str, Any]:
    """`doc` with (0008,3002) Available Transfer Syntax UID = the stored syntax (PS3.18 §10.4.1.2), in tag order:
    the syntax the frames can be had in as stored — the viewer chooses its frames' Accept header by it (issue 16,
    web/src/viewer/core/frameSyntax.ts)."""
    if not ts:
        return doc
    return dict(sorted({**doc, "00083002": {"vr": "UI", "Value": [ts]}}.items()))


def metadata_of(ref: InstanceRef, base: str) -> dict[str, Any]:
    """The DICOM JSON of one stored instance: values over BULK_THRESHOLD and the Pixel Data as BulkDataURI."""
    header = read_header(ref.path)
    url = instance_url(base, ref)
    paths: dict[int, str] = {}
    _bulk_paths(header.ds, "", paths)

    def bulk(elem: DataElement) -> str:
        return f"{url}/bulkdata/{paths.get(id(elem), f'{elem.tag:08X}')}"

    doc: dict[str, Any] = with_available_syntax(header.ds.to_json_dict(BULK_THRESHOLD, bulk), header.ts)
    if header.pixel_offset is not None:
        doc["7FE00010"] = {"vr": header.pixel_vr, "BulkDataURI": f"{url}/bulkdata/7FE00010"}
    return doc


def stream_metadata(refs: list[InstanceRef], base: str, kept: dict[str, Any] | None = None) -> Iterator[bytes]:
    """A JSON array of the instances' DICOM JSON, one instance at a time: from `kept` (content key → template,
    engine/dicomweb/metadata.py `templates`, read before the response starts) or built here. An instance whose file
    cannot be read ends it with InstanceFailed, without the closing bracket: never an array that silently lacks an
    instance."""
    from engine.dicomweb.metadata import instance_json  # it builds on metadata_of

    kept = kept or {}
    yield b"["
    sent = 0
    for ref in refs:
        template = kept.get(ref.key) if ref.key else None
        try:
            data = template.render(instance_url(base, ref)) if template is not None else instance_json(ref, base)
        except (OSError, ValueError) as exc:
            raise InstanceFailed(ref, ref.ts, exc, sent) from exc
        yield (b"," if sent else b"") + data
        sent += 1
    yield b"]"


# -- bulk data ---------------------------------------------------------------------------------------------------
def _parse_tag_path(raw: str) -> list[int | str]:
    parts = [p for p in raw.strip("/").split("/")]
    if not parts or len(parts) % 2 == 0 or len(parts) > 15:
        raise ValidationFailed("bad_bulkdata_path", "批量数据路径格式不正确")
    out: list[int | str] = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            if len(part) != 8 or not all(c in "0123456789abcdefABCDEF" for c in part):
                raise ValidationFailed("bad_bulkdata_path", "批量数据路径中的标签格式不正确")
            out.append(part.upper())
        else:
            if not part.isdigit():
                raise ValidationFailed("bad_bulkdata_path", "批量数据路径中的条目序号格式不正确")
            out.append(int(part))
    return out


@dataclass(frozen=True)
class Bulk:
    """A bulk data value: `size` bytes at `offset` of the file `path`, or `data`."""

    size: int
    path: Path | None = None
    offset: int = 0
    data: bytes | None = None

    def chunks(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        stop = self.size if stop is None else stop
        if self.data is not None:
            yield self.data[start:stop]
        elif self.path is not None:
            yield from file_chunks(self.path, self.offset + start, stop - start)


def bulk_value(ref: InstanceRef, tag_path: str) -> Bulk:
    """The value a BulkDataURI of `metadata_of` names: the Pixel Data straight from the file (as stored), any other
    element from the header.

    Raises:
        ValidationFailed: the path is malformed. NotFound: no such element or item.
    """
    parts = _parse_tag_path(tag_path)
    header = read_header(ref.path)
    if parts == ["7FE00010"]:
        if header.pixel_offset is None:
            raise NotFound("bulkdata_not_found", "该实例没有像素数据")
        size = header.pixel_length
        if size is None:
            size = encapsulated_length(ref.path, header.pixel_offset)
        return Bulk(size, path=ref.path, offset=header.pixel_offset)
    ds: Any = header.ds
    elem: Any = None
    for i, part in enumerate(parts):
        if i % 2 == 0:
            tag = int(str(part), 16)
            if tag not in ds:
                raise NotFound("bulkdata_not_found", "批量数据不存在")
            elem = ds[tag]
        else:
            items = elem.value if elem.VR == "SQ" else []
            if not isinstance(part, int) or part >= len(items):
                raise NotFound("bulkdata_not_found", "批量数据不存在")
            ds = items[part]
    if elem is None or elem.VR == "SQ":
        raise NotFound("bulkdata_not_found", "批量数据不存在")
    value = elem.value
    data = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return Bulk(len(data), data=data)
