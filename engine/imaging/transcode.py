"""Sending a stored instance in a transfer syntax the peer accepts (REQ: DCM-04, IMG-08, IMG-04, DSEC-08).

Used by C-GET/C-MOVE (dicom/qr.py), forwarding (engine/imaging/forwarding.py), the SCU send (dicom/scu_transfer.py) and
DICOMweb WADO (engine/dicomweb: instances, frames, rendered images). The rule is the same everywhere: the stored
bytes when the peer accepts the stored syntax, else an uncompressed syntax (explicit VR little endian, then
implicit), decoding the pixel data when the stored syntax is compressed. Nothing is ever re-compressed here
(policies that compress are engine/imaging/compression.py's).

Codec: imagecodecs (engine/imaging/fastdecode.py) for JPEG (libjpeg-turbo 3: lossless, baseline, extended), JPEG-LS
(CharLS) and RLE — a 512×512 16-bit JPEG-lossless CT slice in ~1.5 ms of CPU instead of ~8.6 ms, lossless bit for
bit and lossy JPEG bit for bit what DCMTK decodes; pydicom 3's pixel decoders (pylibjpeg's libjpeg, openjpeg and rle
plugins, pyjpegls) for JPEG 2000 (OpenJPEG either way: imagecodecs is no faster) and whatever the fast path does not
take (see fastdecode.py). Why these and not python-gdcm (both measured here, CPU per frame,
pydicom 3.0.2 / python-gdcm 3.2.6):
- they are already pinned and are the decoders IMG-04's lossless check uses (compression.py): what telerad
  compresses is decoded here by the code that verified it;
- they take one frame's codestream; pydicom stays the only DICOM parser. GDCM is only fast through its own
  pipeline (read + change syntax + write: 4.5 ms for a 512×512 JPEG-lossless CT slice), and that pipeline rewrites
  the data set — it added empty Patient/Study elements and Nominal Scanned Pixel Spacing, dropped Number of Frames,
  and got a 16-bit RGB RLE sample wrong. Through pydicom's GDCM plugin it takes 6.5 ms (libjpeg: 9 ms), has no RLE,
  fails a J2K sample whose pixel representation disagrees with its codestream, decodes an RGB JPEG without colour
  transform differently, and is 2-3× slower than openjpeg on JPEG 2000;
- the data set is not re-parsed or re-encoded (the stored bytes of every element decoding does not touch are
  copied), the parent sends the bytes as they come (dicom/outgoing.py), and the next instances are decoded in other
  workers while the current one is sent (`Prefetch`).
Each syntax names its plugin (native._PLUGIN): pydicom's own pure-Python RLE decoder is never picked by chance.

Decoding untrusted pixel data (engine/imaging/native.py) runs in a pool of engine.sandbox workers — child processes
with an address-space, CPU and wall-clock limit, replaced when they die (DSEC-08). A frame that cannot be decoded
raises TranscodeError for that instance only; the caller fails that one sub-operation. Decoding to native follows
PS3.5 §8 and PS3.3 C.7.6.1.1.5: lossy JPEG YCbCr becomes RGB (PlanarConfiguration 0), sub-sampled YBR becomes
YBR_FULL, JPEG 2000 ICT/RCT becomes RGB; data that was lossy compressed keeps or gains LossyImageCompression "01" (with
method and ratio when it had none); the SOP Instance UID is kept — decoding adds no loss.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_dataset
from pydicom.uid import UID

from engine.imaging import native
from engine.imaging.native import (  # noqa: F401 - re-exported: the syntax names and the error are transcode's API
    DECODABLE,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    UNCOMPRESSED,
    TranscodeError,
)
from engine.sandbox import Limits, SandboxError, Worker

log = logging.getLogger("telerad.transcode")

MAX_CONTEXTS = 128  # PS3.8 §9.3.2.2: odd presentation context IDs 1..255
IDLE_TRIM_S = 60.0  # after a retrieve, decoders beyond one live this long without work (Transcoder.trim_when_idle)


def choose_syntax(stored: str, accepted: Collection[str]) -> str | None:
    """The syntax to send an instance stored in `stored` to a peer that accepted `accepted` for its SOP class:
    the stored one, else explicit then implicit VR little endian when the stored data is uncompressed or decodable,
    else None (nothing fits; telerad never re-compresses for a peer)."""
    if stored in accepted:
        return stored
    if stored in UNCOMPRESSED or stored in DECODABLE:
        for ts in UNCOMPRESSED:
            if ts in accepted:
                return ts
    return None


def needs_decoding(stored: str, target: str) -> bool:
    """True when sending in `target` means decoding the pixel data (explicit ↔ implicit is only re-encoding)."""
    return stored != target and stored not in UNCOMPRESSED


def plan_contexts(pairs: Iterable[tuple[str, str]], limit: int = MAX_CONTEXTS) -> list[tuple[str, list[str]]]:
    """The presentation contexts to propose for (SOP class, stored syntax) pairs (C-MOVE, forwarding, SCU send).

    Per SOP class, each stored compressed syntax in a context of its own and one context of the uncompressed
    syntaxes, so a peer that accepts a stored syntax receives the stored bytes and one that does not receives
    uncompressed data. Over `limit` (PS3.8: 128), the compressed syntaxes of the SOP classes with the most of them
    share one context first; then SOP classes lose their compressed context (they are sent uncompressed).

    Raises:
        ValueError: more SOP classes than `limit`.
    """
    by_class: dict[str, list[str]] = {}
    for sop_class, ts in pairs:
        syntaxes = by_class.setdefault(sop_class, [])
        if ts not in UNCOMPRESSED and ts not in syntaxes:
            syntaxes.append(ts)
    if len(by_class) > limit:
        raise ValueError(f"{len(by_class)} SOP classes do not fit in {limit} presentation contexts")
    groups = {c: [[ts] for ts in sorted(tss)] for c, tss in by_class.items()}
    total = len(groups) + sum(len(g) for g in groups.values())
    while total > limit:
        widest = max(groups, key=lambda c: (len(groups[c]), c))
        if len(groups[widest]) > 1:  # one context for all of this class's compressed syntaxes
            total -= len(groups[widest]) - 1
            groups[widest] = [[ts for g in groups[widest] for ts in g]]
            continue
        dropped = max((c for c in groups if groups[c]), key=lambda c: c)  # uncompressed only from now on
        groups[dropped] = []
        total -= 1
    out: list[tuple[str, list[str]]] = []
    for sop_class in sorted(groups):
        out += [(sop_class, g) for g in groups[sop_class]]
        out.append((sop_class, list(UNCOMPRESSED)))
    return out


# -- the parent side -----------------------------------------------------------------------------------------------
def dataset_of(data: bytes, ts: str) -> Dataset:
    """A data set encoded in `ts` (no File Meta Information), read lazily: its raw elements are written back byte
    for byte when it is sent in the same syntax."""
    ds = read_dataset(BytesIO(data), is_implicit_VR=ts == IMPLICIT_VR_LE, is_little_endian=True)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(ts)
    return ds


def _pool_size() -> int:
    """One decoder per core, at most 4: a retrieve decodes the next instances in parallel while it sends."""
    return max(1, min(4, os.cpu_count() or 1))


class Transcoder:
    """A small pool of sandboxed decoders (engine.sandbox.Worker); each call takes an idle worker or starts one,
    up to `workers`. A worker lives on between instances (the decoders are imported once) and is replaced by the
    sandbox when it dies or overruns."""

    def __init__(self, limits: Limits | None = None, workers: int | None = None, max_bytes: int = 1 << 30) -> None:
        self.limits = limits or Limits(memory_mb=4096, cpu_s=60, wall_s=120.0)
        self.workers = workers or _pool_size()
        self.max_bytes = max_bytes
        self._idle: list[Worker] = []
        self._started = 0
        self._waiting = 0
        self._cond = threading.Condition()
        self._closed = False
        self._last_used = time.monotonic()
        self._trimmer: threading.Thread | None = None
        self._trim_keep, self._trim_after = 1, IDLE_TRIM_S
        self._stop = threading.Event()

    def _acquire(self) -> Worker:
        with self._cond:
            self._waiting += 1
            try:
                while not self._idle and self._started >= self.workers:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            if self._idle:
                return self._idle.pop()
            self._started += 1
        return Worker(
            self.limits,
            start_method="spawn",
            raises=(TranscodeError,),
            max_reply_bytes=self.max_bytes,
            name="telerad-decode",
        )

    def _release(self, worker: Worker) -> None:
        with self._cond:
            self._last_used = time.monotonic()
            if self._closed:
                self._started -= 1
                worker.close()
            else:
                self._idle.append(worker)
            self._cond.notify()

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        worker = self._acquire()
        try:
            return worker.call(fn, *args)
        finally:
            self._release(worker)

    def warm(self) -> None:
        """Start a worker in the background if none is running yet (a retrieve is about to need one)."""
        with self._cond:
            if self._started or self._closed:
                return

        def run() -> None:
            try:
                self._call(native.warm_child)
            except (SandboxError, TranscodeError) as exc:
                log.warning("decoder warm-up failed: %s", exc)

        threading.Thread(target=run, daemon=True, name="telerad-decode-warm").start()

    def native(self, path: Path, target: str) -> bytes:
        """The data set of the Part-10 file `path`, its pixel data decoded, encoded in `target` (no meta).

        Raises:
            TranscodeError: not decodable, a frame failed to decode, or the sandbox's limits were exceeded.
        """
        try:
            return bytes(self._call(native.native_child, str(path), target))
        except SandboxError as exc:
            raise TranscodeError(f"解码失败：{exc.message}") from exc

    def frames(self, path: Path, numbers: list[int]) -> tuple[str, list[tuple[bool, bytes | str]]]:
        """Frames `numbers` (1-based) of the compressed Part-10 file `path` decoded one by one to native bytes
        (DICOMweb frames and rendered images), and the decoded Photometric Interpretation; a frame that does not
        decode is `(False, reason)`, the others are returned.

        Raises:
            TranscodeError: not decodable at all, or the sandbox's limits were exceeded.
        """
        try:
            pi, frames = self._call(native.frames_child, str(path), list(numbers))
        except SandboxError as exc:
            raise TranscodeError(f"解码失败：{exc.message}") from exc
        return str(pi), [(bool(ok), value) for ok, value in frames]

    def decode(
        self, stored: str, image: tuple[tuple[str, Any], ...], frames: list[bytes]
    ) -> tuple[str, list[tuple[bool, bytes | str]]]:
        """Encapsulated frames already cut from a stored file decoded to native bytes with the file's image
        attributes (native.decode_frames_child; DICOMweb frames, issue 16), as `frames` returns them.

        Raises:
            TranscodeError: the syntax is not decodable, or the sandbox's limits were exceeded.
        """
        try:
            pi, out = self._call(native.decode_frames_child, stored, image, list(frames))
        except SandboxError as exc:
            raise TranscodeError(f"解码失败：{exc.message}") from exc
        return str(pi), [(bool(ok), value) for ok, value in out]

    def waiting(self) -> int:
        """How many calls wait for a decoder now (all `workers` busy): the DICOMweb frames route sends the stored
        syntax instead when the client also accepts it and this queue is long (engine/dicomweb/negotiate.py)."""
        with self._cond:
            return self._waiting

    def trim(self, keep: int = 1) -> None:
        """Close idle workers beyond `keep` (one warm decoder stays, not one per core)."""
        with self._cond:
            extra = self._idle[keep:] if keep < len(self._idle) else []
            del self._idle[keep:]
            self._started -= len(extra)
        for worker in extra:
            worker.close()

    def trim_when_idle(self, keep: int = 1, after: float = IDLE_TRIM_S) -> None:
        """`trim(keep)` once no call has used the pool for `after` seconds, in a background thread (a retrieve is
        over). Not at once: a worker costs ~0.4 s of CPU to start (spawn, imports) and the next retrieve — getscu
        fetching series after series — would pay for it again; nor on the way to a C-GET's final response."""
        with self._cond:
            self._trim_keep, self._trim_after = keep, after
            if self._trimmer is not None or self._closed:
                return
            self._trimmer = threading.Thread(target=self._trim_idle, daemon=True, name="telerad-decode-trim")
            self._trimmer.start()

    def _trim_idle(self) -> None:
        while True:
            with self._cond:
                busy = self._started > len(self._idle)
                left = self._trim_after - (time.monotonic() - self._last_used)
                if self._closed or (not busy and left <= 0):
                    self._trimmer = None
                    keep = self._trim_keep
                    break
            self._stop.wait(self._trim_after if busy else left)
        if not self._closed:
            self.trim(keep)

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._started -= len(idle)
        for worker in idle:
            worker.close()


_default: Transcoder | None = None
_default_lock = threading.Lock()


def transcoder() -> Transcoder:
    """The process-wide decoder pool (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Transcoder()
        return _default


def shutdown() -> None:
    """Stop the process-wide pool's workers (at exit, and in tests)."""
    global _default
    with _default_lock:
        pool, _default = _default, None
    if pool is not None:
        pool.close()


@dataclass(frozen=True)
class Outgoing:
    """One instance ready for a C-STORE in `ts`: its data set's bytes are the stored file's from `offset` on (sent
    as stored, streamed from the file) or `data` (decoded, or re-encoded explicit ↔ implicit)."""

    sop_class: str
    sop_instance: str
    ts: str
    path: Path | None = None
    offset: int = 0
    data: bytes | None = None
    decoded: bool = False


def _not_meta(tag: Any, vr: Any, length: int) -> bool:
    return bool(tag.group != 2)


def stored_meta(path: Path) -> tuple[Dataset, int]:
    """The File Meta Information of a Part-10 file and the offset of its data set.

    Raises:
        OSError, ValueError: unreadable, not a Part-10 file, or no Transfer Syntax UID.
    """
    from pydicom.filereader import read_preamble

    with open(path, "rb") as fp:
        read_preamble(fp, False)
        meta = read_dataset(fp, is_implicit_VR=False, is_little_endian=True, stop_when=_not_meta)
        offset = fp.tell()
    if "TransferSyntaxUID" not in meta:
        raise ValueError("no (0002,0010) Transfer Syntax UID")
    return meta, offset


def _reencode(path: Path, target: str) -> bytes:
    """The stored data set re-encoded explicit ↔ implicit VR little endian (no pixel data is decoded)."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    out = DicomBytesIO()
    out.is_little_endian = True
    out.is_implicit_VR = target == IMPLICIT_VR_LE
    write_dataset(out, dcmread(path))
    return out.getvalue()


def prepare(path: Path, accepted: Collection[str], pool: Transcoder | None = None) -> Outgoing:
    """The stored instance at `path` ready for a peer that accepted `accepted` for its SOP class
    (`choose_syntax`): as stored, re-encoded, or decoded in the sandbox.

    Raises:
        TranscodeError: nothing the peer accepted fits, or decoding failed.
        OSError, ValueError: the stored file cannot be read.
    """
    meta, offset = stored_meta(path)
    stored = str(meta.TransferSyntaxUID)
    sop_class = str(meta.get("MediaStorageSOPClassUID", ""))
    sop_instance = str(meta.get("MediaStorageSOPInstanceUID", ""))
    target = choose_syntax(stored, accepted)
    if target is None:
        raise TranscodeError(f"对方不接受传输语法 {stored}，且无法解码为未压缩格式")
    if target == stored:
        return Outgoing(sop_class, sop_instance, stored, path=path, offset=offset)
    if needs_decoding(stored, target):
        data = (pool or transcoder()).native(path, target)
        return Outgoing(sop_class, sop_instance, target, data=data, decoded=True)
    return Outgoing(sop_class, sop_instance, target, data=_reencode(path, target))


T = TypeVar("T")
R = TypeVar("R")


class Prefetch(Generic[T, R]):
    """`fn(item)` for each item, yielded in order, computed ahead by up to `workers` threads with at most `ahead`
    results waiting: decoding the next instances (in as many sandbox workers) overlaps sending the current one.
    Closing it (or leaving the `with` block) cancels what has not started and waits for what has."""

    def __init__(self, items: Iterable[T], fn: Callable[[T], R], *, workers: int = 1, ahead: int = 2) -> None:
        self._items = iter(items)
        self._fn = fn
        self._ahead = max(1, ahead, workers)
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="telerad-prefetch")
        self._pending: deque[tuple[T, Future[R]]] = deque()

    def _fill(self) -> None:
        while len(self._pending) < self._ahead:
            try:
                item = next(self._items)
            except StopIteration:
                return
            self._pending.append((item, self._pool.submit(self._fn, item)))

    def __iter__(self) -> Iterator[tuple[T, R]]:
        self._fill()
        while self._pending:
            item, future = self._pending.popleft()
            self._fill()
            yield item, future.result()

    def close(self) -> None:
        for _item, future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Prefetch[T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
