"""STOW-RS (PS3.18 §10.5; issue 15): the streamed multipart/related parser and the Store Instances Response.

The request body (`multipart/related; type="application/dicom"`, RFC 2387) is read in 1 MiB chunks and each part
written straight into the object store's tmp/ directory (engine/imaging/storage.py) while it is hashed, so memory
stays bounded whatever the size of a part and `Receiver.receive` gets the digest and size it would otherwise compute
again. A small parser of our own rather than a library: streaming-form-data and python-multipart parse
multipart/form-data (they key parts by a Content-Disposition name, which multipart/related parts do not carry), and
the boundary scan is a few lines over `bytes.find`.

The whole body is spooled before any part is received: a request over the size cap, or a malformed one, is refused
as a whole (413 / 400) with nothing stored and its temp files removed — a 413 carries no per-instance results
(PS3.18 Table 10.5.3-1), so the client would not know which of its instances a partly received request stored.
The receiving itself (the one receive path, the source, the status per instance) is api/dicomweb/stow.py's.

Nothing here imports Flask.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from engine.errors import DomainError

CHUNK = 1 << 20
MAX_PART_HEADER = 16 * 1024  # the header block of one part (Content-Type, Content-Length, …)
MAX_PARTS = 2500  # instances in one request by default (Settings.stow_max_parts, TELERAD_STOW_MAX_PARTS)
ACCEPTED_PART_TYPES = frozenset({"application/dicom", ""})  # a part without Content-Type has the request's type

_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{1,70}$")  # RFC 2046 §5.1.1 bchars


class StowRefused(DomainError):
    """The request as a whole is refused: nothing of it was stored."""


class PayloadTooLarge(StowRefused):
    status = 413


class BadMultipart(StowRefused):
    status = 400


class UnsupportedPart(StowRefused):
    status = 415


@dataclass
class Part:
    """One spooled part: a file in the store's tmp/ with its SHA-256 and size."""

    path: Path
    digest: str
    size: int


@dataclass
class Outcome:
    """What became of one part (the api layer fills it in while receiving)."""

    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    failure: int | None = None  # FailureReason (0008,1197)
    warning: int | None = None  # WarningReason (0008,1196)
    reason: str = ""  # the Chinese reason, as TextValue (0040,A160) of the item
    details: dict[str, Any] = field(default_factory=dict)


def check_boundary(boundary: str) -> bytes:
    """The boundary parameter of the request's Content-Type, checked against RFC 2046.

    Raises:
        BadMultipart: missing or not a valid boundary.
    """
    if not boundary or not _BOUNDARY.match(boundary) or boundary.endswith(" "):
        raise BadMultipart("bad_boundary", "multipart 请求缺少有效的 boundary 参数")
    return boundary.encode("ascii")


def human_size(n: int) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}".replace(".0 ", " ")
    return f"{n} 字节"


def too_large(limit: int, length: int | None = None) -> PayloadTooLarge:
    """413: the body is (or is declared) larger than the STOW-RS cap; nothing of it is stored."""
    sent = f"（{human_size(length)}）" if length is not None else ""
    details: dict[str, Any] = {"limit": limit} if length is None else {"limit": limit, "content_length": length}
    return PayloadTooLarge(
        "stow_too_large", f"上传内容{sent}超过 STOW-RS 单次请求上限 {human_size(limit)}，未存储任何实例", details
    )


class _Body:
    """The request body, read in chunks and counted against the cap (also without a Content-Length)."""

    def __init__(self, read: Callable[[int], bytes], limit: int) -> None:
        self._read = read
        self.limit = limit
        self.total = 0
        self.buf = bytearray()
        self.eof = False

    def fill(self) -> bool:
        """Append one chunk to `buf`; False at the end of the body."""
        if self.eof:
            return False
        chunk = self._read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.total += len(chunk)
        if self.total > self.limit:
            raise too_large(self.limit)
        self.buf += chunk
        return True

    def until(self, marker: bytes, max_len: int) -> int:
        """Read on until `marker` is in `buf` within the first `max_len` bytes; its index.

        Raises:
            BadMultipart: the body ends, or `max_len` bytes pass, without it.
        """
        start = 0
        while True:
            at = self.buf.find(marker, start)
            if at >= 0 and at <= max_len:
                return at
            if len(self.buf) > max_len + len(marker) or not self.fill():
                raise BadMultipart("bad_multipart", "multipart 请求格式错误：缺少分隔符或部分头")
            start = max(0, len(self.buf) - CHUNK - len(marker))


def _part_type(header: bytes) -> str:
    for line in header.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return ""


def _spool_one(body: _Body, delimiter: bytes, tmp_dir: Path) -> Part:
    """Write the body of the current part into tmp/ up to the next delimiter (left at the start of `buf`)."""
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="in-", suffix=".part")
    path = Path(name)
    h = hashlib.sha256()
    size = 0
    keep = len(delimiter) - 1
    try:
        with os.fdopen(fd, "wb") as fh:
            while True:
                at = body.buf.find(delimiter)
                if at >= 0:
                    data = memoryview(body.buf)[:at]
                    h.update(data)
                    fh.write(data)
                    size += at
                    del data
                    del body.buf[:at]
                    return Part(path, h.hexdigest(), size)
                cut = len(body.buf) - keep
                if cut > 0:
                    data = memoryview(body.buf)[:cut]
                    h.update(data)
                    fh.write(data)
                    size += cut
                    del data
                    del body.buf[:cut]
                if not body.fill():
                    raise BadMultipart("bad_multipart", "multipart 请求格式错误：部分未以分隔符结束")
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _parts(body: _Body, boundary: bytes, tmp_dir: Path, max_parts: int) -> Iterator[Part]:
    dash = b"--" + boundary
    delimiter = b"\r\n" + dash
    # preamble: the first boundary may start the body or follow a CRLF (RFC 2046 §5.1.1)
    at = body.until(dash, MAX_PART_HEADER)
    if at and not body.buf[:at].endswith(b"\r\n"):
        raise BadMultipart("bad_multipart", "multipart 请求格式错误：缺少起始分隔符")
    del body.buf[: at + len(dash)]
    count = 0
    while True:
        while len(body.buf) < 2 and body.fill():
            pass
        if body.buf[:2] == b"--":  # the close delimiter; the epilogue is ignored
            return
        end = body.until(b"\r\n\r\n", MAX_PART_HEADER)
        header = bytes(body.buf[:end])
        padded = header.lstrip(b" \t")  # transport padding after the boundary, then CRLF, then the header lines
        if padded and not padded.startswith(b"\r\n"):
            raise BadMultipart("bad_multipart", "multipart 请求格式错误：分隔符后缺少换行")
        ptype = _part_type(header)
        if ptype not in ACCEPTED_PART_TYPES:
            raise UnsupportedPart(
                "unsupported_part_type",
                f"STOW-RS 只接受 application/dicom 部分，收到 {ptype[:64]}",
                {"content_type": ptype[:64]},
            )
        del body.buf[: end + 4]
        count += 1
        if count > max_parts:  # REQ: WEB-06 — counted before the part is written
            raise PayloadTooLarge(
                "stow_too_many_parts",
                f"单次 STOW-RS 请求最多 {max_parts} 个实例，本次请求未存储任何实例，请分批上传",
                {"max_parts": max_parts},
            )
        yield _spool_one(body, delimiter, tmp_dir)
        del body.buf[: len(delimiter)]


def spool(
    read: Callable[[int], bytes], boundary: bytes, tmp_dir: Path, limit: int, max_parts: int = MAX_PARTS
) -> list[Part]:
    """Read the whole multipart/related body through `read` (a stream's read), each part into a temp file of
    `tmp_dir`, counting the bytes against `limit` and the parts against `max_parts`.

    Raises:
        PayloadTooLarge: more than `limit` bytes (or too many parts); every temp file written is removed.
        BadMultipart, UnsupportedPart: not a multipart/related body of application/dicom parts; likewise.
    """
    body = _Body(read, limit)
    parts: list[Part] = []
    try:
        for part in _parts(body, boundary, tmp_dir, max_parts):
            parts.append(part)
        if not parts:
            raise BadMultipart("empty_stow", "STOW-RS 请求中没有任何实例")
        while body.fill():  # the epilogue still counts against the cap
            body.buf.clear()
    except BaseException:
        discard(parts)
        raise
    return parts


def discard(parts: list[Part]) -> None:
    for part in parts:
        part.path.unlink(missing_ok=True)


_PEEK_TAGS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


def peek(path: Path) -> Outcome:
    """The UIDs of a part, for its response item (the receive path validates the data set itself); empty strings
    when the part is not readable as DICOM at all."""
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=list(_PEEK_TAGS), force=False)
        values = [str(ds.get(tag, "") or "").strip("\0 ")[:64] for tag in _PEEK_TAGS]
    except (InvalidDicomError, OSError, ValueError, TypeError, KeyError, EOFError, AttributeError):
        values = ["", "", "", ""]
    return Outcome(
        sop_class_uid=values[0], sop_instance_uid=values[1], study_instance_uid=values[2], series_instance_uid=values[3]
    )


def response(outcomes: list[Outcome], base_url: str, study_uid: str | None) -> tuple[int, dict[str, Any]]:
    """The Store Instances Response (PS3.18 §10.5.3) as DICOM JSON, and its HTTP status: 200 all stored, 202 some
    failed (or stored with a warning), 409 none stored."""
    ds = Dataset()
    referenced: list[Dataset] = []
    failed: list[Dataset] = []
    other: list[Dataset] = []
    studies = {o.study_instance_uid for o in outcomes if o.failure is None and o.study_instance_uid}
    the_study = study_uid or (next(iter(studies)) if len(studies) == 1 else None)
    if the_study:
        ds.RetrieveURL = f"{base_url}/studies/{the_study}"
    for o in outcomes:
        item = Dataset()
        if not o.sop_instance_uid:  # not even readable as DICOM: no SOP to name (PS3.18 Other Failures Sequence)
            item.FailureReason = o.failure if o.failure is not None else 0xC000
            item.TextValue = o.reason
            other.append(item)
            continue
        item.ReferencedSOPClassUID = o.sop_class_uid
        item.ReferencedSOPInstanceUID = o.sop_instance_uid
        if o.failure is not None:
            item.FailureReason = o.failure
            item.TextValue = o.reason
            failed.append(item)
            continue
        item.RetrieveURL = (
            f"{base_url}/studies/{o.study_instance_uid}/series/{o.series_instance_uid}/instances/{o.sop_instance_uid}"
        )
        if o.warning is not None:
            item.WarningReason = o.warning
            item.TextValue = o.reason
        referenced.append(item)
    if referenced:
        ds.ReferencedSOPSequence = referenced
    if failed:
        ds.FailedSOPSequence = failed
    if other:
        ds.OtherFailuresSequence = other
    if not referenced:
        status = 409
    elif failed or other or any(o.warning is not None for o in outcomes):
        status = 202
    else:
        status = 200
    return status, ds.to_json_dict()
