"""Sending a stored instance in a transfer syntax the peer accepts (REQ: DCM-04, IMG-08, IMG-04, DSEC-08).

Used by C-GET/C-MOVE (dicom/qr.py), forwarding (engine/imaging/forwarding.py), the SCU send (dicom/scu.py) and,
later, DICOMweb. The rule is the same everywhere: the stored bytes when the peer accepts the stored syntax, else an
uncompressed syntax (explicit VR little endian, then implicit), decoding the pixel data when the stored syntax is
compressed. Nothing is ever re-compressed here (policies that compress are engine/imaging/compression.py's).

Codec: pydicom 3's pixel decoders with the pylibjpeg plugins — libjpeg (JPEG baseline, extended, lossless),
openjpeg (JPEG 2000), rle (RLE) — and pyjpegls (JPEG-LS). Why these and not python-gdcm:
- they are already pinned and are the very decoders IMG-04's lossless check uses (compression.py), so what telerad
  compresses is decoded here by the same code that verified it;
- they take one frame's bytes, not a whole file: pydicom parses the data set (as it does everywhere in telerad)
  and the codec only ever sees the codestream, where GDCM would bring a second DICOM parser to the attack surface;
- measured on a 512×512 16-bit JPEG-lossless CT slice, GDCM decoded it in ~5.8 ms and libjpeg in ~8.8 ms of CPU,
  but libjpeg was 2-4× faster on RLE and JPEG 2000; the difference on JPEG lossless is hidden by decoding the
  next instance while the current one is on the wire (`Prefetch`), so GDCM's extra 30 MB wheel buys nothing.
Each syntax names its plugin (`_PLUGIN`): pydicom's own pure-Python RLE decoder is never picked by chance.

Decoding untrusted pixel data runs in a pool of engine.sandbox workers — child processes with an address-space,
CPU and wall-clock limit, replaced when they die (DSEC-08). A frame that cannot be decoded raises TranscodeError for
that instance only; the caller fails that one sub-operation. Decoding to native follows PS3.5 §8 and PS3.3
C.7.6.1.1.5: lossy JPEG YCbCr becomes RGB (PlanarConfiguration 0), sub-sampled YBR becomes YBR_FULL, JPEG 2000
ICT/RCT becomes RGB; data that was lossy compressed keeps or gains LossyImageCompression "01" (with method and
ratio when it had none); the SOP Instance UID is kept — decoding adds no loss.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_dataset
from pydicom.uid import UID

from engine.sandbox import Limits, SandboxError, Worker

log = logging.getLogger("telerad.transcode")

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
UNCOMPRESSED = (EXPLICIT_VR_LE, IMPLICIT_VR_LE)  # in order of preference
MAX_CONTEXTS = 128  # PS3.8 §9.3.2.2: odd presentation context IDs 1..255

_JPEG_LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}
_PLUGIN = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg",  # JPEG Baseline (libjpeg)
    "1.2.840.10008.1.2.4.51": "pylibjpeg",  # JPEG Extended
    "1.2.840.10008.1.2.4.57": "pylibjpeg",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": "pyjpegls",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": "pyjpegls",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg",  # JPEG 2000 Lossless (openjpeg)
    "1.2.840.10008.1.2.4.91": "pylibjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.5": "pylibjpeg",  # RLE Lossless (rle)
}
DECODABLE = frozenset(_PLUGIN)
# PS3.3 C.7.6.1.1.5.1: the defined terms of (0028,2114) Lossy Image Compression Method.
_LOSSY_METHOD = {
    "1.2.840.10008.1.2.4.50": "ISO_10918_1",
    "1.2.840.10008.1.2.4.51": "ISO_10918_1",
    "1.2.840.10008.1.2.4.81": "ISO_14495_1",
    "1.2.840.10008.1.2.4.91": "ISO_15444_1",
}
_SUBSAMPLED = {"YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420"}  # full resolution once decoded


class TranscodeError(Exception):
    """The instance cannot be sent in the wanted syntax (undecodable pixel data, limits exceeded, no decoder)."""


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


# -- in the sandbox ------------------------------------------------------------------------------------------------
def _warm_child() -> bool:
    """Import the decoders once, so the first instance does not pay for it."""
    import jpeg_ls  # noqa: F401
    import libjpeg  # noqa: F401
    import openjpeg  # noqa: F401
    import rle  # noqa: F401
    from pydicom.pixels import get_decoder

    return all(get_decoder(ts).is_available for ts in DECODABLE)


def _j2k_irreversible(frame: bytes) -> bool:
    """A JPEG 2000 codestream coded with the irreversible 9-7 wavelet (COD SPcod transformation 0): lossy."""
    pos = frame.find(b"\xff\x4f\xff\x51")  # SOC SIZ (a JP2 box header may come first)
    if pos < 0:
        return False
    pos += 2
    while pos + 4 <= len(frame):
        marker = frame[pos : pos + 2]
        if marker in (b"\xff\x90", b"\xff\x93"):  # SOT / SOD: the main header is over
            return False
        length = int.from_bytes(frame[pos + 2 : pos + 4], "big")
        if marker == b"\xff\x52":  # COD: Lcod, Scod, SGcod (4), levels, xcb, ycb, style, transformation
            return pos + 13 < len(frame) and frame[pos + 13] == 0
        pos += 2 + length
    return False


def _jpegls_near(frame: bytes) -> bool:
    """A JPEG-LS scan with NEAR > 0 (near-lossless)."""
    pos = 2  # after SOI
    while pos + 4 <= len(frame) and frame[pos] == 0xFF:
        length = int.from_bytes(frame[pos + 2 : pos + 4], "big")
        if frame[pos + 1] == 0xDA:  # SOS: Ls, Ns, Ns × (Ci, Tmi), NEAR, ILV, …
            ns = frame[pos + 4] if pos + 4 < len(frame) else 0
            near = pos + 5 + 2 * ns
            return near < len(frame) and frame[near] > 0
        pos += 2 + length
    return False


def _was_lossy(stored: str, first_frame: bytes) -> bool:
    if stored in _JPEG_LOSSY:
        return True
    if stored == "1.2.840.10008.1.2.4.91":
        return _j2k_irreversible(first_frame)
    if stored == "1.2.840.10008.1.2.4.81":
        return _jpegls_near(first_frame)
    return False


def _decode_pixels(ds: Any, stored: str) -> None:
    """Replace encapsulated Pixel Data by native pixel data and fix the image attributes that change."""
    import numpy as np
    from pydicom.encaps import generate_frames
    from pydicom.pixels import get_decoder
    from pydicom.pixels.utils import pack_bits

    nr_frames = int(ds.get("NumberOfFrames", 1) or 1)
    encapsulated = ds.PixelData
    first = next(generate_frames(encapsulated, number_of_frames=nr_frames), b"")
    bits = int(ds.BitsAllocated)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    frames: list[Any] = []
    meta: dict[str, Any] = {}
    decoder = get_decoder(UID(stored))
    for arr, frame_meta in decoder.iter_array(ds, decoding_plugin=_PLUGIN[stored], as_rgb=stored in _JPEG_LOSSY):
        meta = frame_meta
        if bits > 1 and arr.itemsize * 8 != bits:
            arr = arr.astype(f"<{'i' if signed else 'u'}{bits // 8}")
        frames.append(arr)
    if bits == 1:
        value = pack_bits(np.concatenate([f.ravel() for f in frames]))
    else:
        value = b"".join(f.tobytes() for f in frames)
    if len(value) % 2:
        value += b"\0"
    elem = ds["PixelData"]
    elem.value = value
    elem.is_undefined_length = False
    elem.VR = "OB" if bits <= 8 else "OW"
    pi = str(meta.get("photometric_interpretation") or ds.PhotometricInterpretation)
    ds.PhotometricInterpretation = "YBR_FULL" if pi in _SUBSAMPLED else pi
    if int(ds.get("SamplesPerPixel", 1)) > 1:
        ds.PlanarConfiguration = 0  # decoded arrays are colour-by-pixel
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            del ds[keyword]
    if _was_lossy(stored, first):
        if ds.get("LossyImageCompression") != "01" or "LossyImageCompressionMethod" not in ds:
            ds.LossyImageCompressionRatio = f"{len(value) / max(1, len(encapsulated)):.2f}"[:16]
            ds.LossyImageCompressionMethod = _LOSSY_METHOD[stored]
        ds.LossyImageCompression = "01"


def _drop_encapsulated_icons(ds: Any) -> None:
    """An icon in a compressed syntax may be encapsulated too (PS3.5 §8.2); the icon is optional: drop it."""
    icons = ds.get("IconImageSequence")
    if icons is not None and any("PixelData" in i and i["PixelData"].is_undefined_length for i in icons):
        del ds.IconImageSequence


def _native_child(path: str, target: str) -> bytes:
    """Runs in the sandbox: the data set of the Part-10 file `path` with its pixel data decoded, encoded in `target`
    (explicit or implicit VR little endian), without its File Meta Information."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    if target not in UNCOMPRESSED:
        raise TranscodeError(f"不支持转换到传输语法 {target}")
    ds = dcmread(path)
    stored = str(ds.file_meta.TransferSyntaxUID)
    if stored not in DECODABLE:
        raise TranscodeError(f"无法解码传输语法 {stored}")
    try:
        if "PixelData" in ds:
            _decode_pixels(ds, stored)
        _drop_encapsulated_icons(ds)
    except TranscodeError:
        raise
    except (ValueError, RuntimeError, NotImplementedError, KeyError, TypeError, AttributeError, StopIteration) as exc:
        raise TranscodeError(f"像素数据无法解码：{type(exc).__name__}: {exc}") from exc
    out = DicomBytesIO()
    out.is_little_endian = True
    out.is_implicit_VR = target == IMPLICIT_VR_LE
    write_dataset(out, ds)
    return out.getvalue()


# -- the parent side -----------------------------------------------------------------------------------------------
def dataset_of(data: bytes, ts: str) -> Dataset:
    """A data set encoded in `ts` (no File Meta Information), read lazily: its raw elements are written back byte
    for byte when it is sent in the same syntax."""
    ds = read_dataset(BytesIO(data), is_implicit_VR=ts == IMPLICIT_VR_LE, is_little_endian=True)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(ts)
    return ds


def _pool_size() -> int:
    return max(1, min(4, (os.cpu_count() or 2) - 1))


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
        self._cond = threading.Condition()
        self._closed = False

    def _acquire(self) -> Worker:
        with self._cond:
            while not self._idle and self._started >= self.workers:
                self._cond.wait()
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
                self._call(_warm_child)
            except (SandboxError, TranscodeError) as exc:
                log.warning("decoder warm-up failed: %s", exc)

        threading.Thread(target=run, daemon=True, name="telerad-decode-warm").start()

    def native(self, path: Path, target: str) -> bytes:
        """The data set of the Part-10 file `path`, its pixel data decoded, encoded in `target` (no meta).

        Raises:
            TranscodeError: not decodable, a frame failed to decode, or the sandbox's limits were exceeded.
        """
        try:
            return bytes(self._call(_native_child, str(path), target))
        except SandboxError as exc:
            raise TranscodeError(f"解码失败：{exc.message}") from exc

    def to_native(self, path: Path, target: str) -> Dataset:
        """`native` as a data set ready for pynetdicom (file_meta names `target`).

        Raises:
            TranscodeError: see `native`.
        """
        return dataset_of(self.native(path, target), target)

    def close(self) -> None:
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
    """`fn(item)` for each item, in order, computed up to `ahead` items before they are consumed by one background
    thread: decoding the next instance overlaps sending the current one. Closing it (or leaving the `with` block)
    stops the thread; results computed but never consumed are passed to `discard`."""

    _END = object()

    def __init__(
        self,
        items: Sequence[T],
        fn: Callable[[T], R],
        *,
        ahead: int = 2,
        discard: Callable[[R], None] | None = None,
    ) -> None:
        self._items = items
        self._fn = fn
        self._discard = discard
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, ahead))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="telerad-prefetch")
        self._thread.start()

    def _put(self, value: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        for item in self._items:
            if self._stop.is_set():
                return
            try:
                result: tuple[bool, Any] = (True, self._fn(item))
            except BaseException as exc:  # delivered to the consumer, in order
                result = (False, exc)
            if not self._put((item, result)):
                if result[0] and self._discard is not None:
                    self._discard(result[1])
                return
        self._put(self._END)

    def __iter__(self) -> Iterator[tuple[T, R]]:
        while True:
            got = self._queue.get()
            if got is self._END:
                return
            item, (ok, value) = got
            if not ok:
                raise value
            yield item, value

    def close(self) -> None:
        self._stop.set()
        while True:
            try:
                got = self._queue.get_nowait()
            except queue.Empty:
                break
            if got is not self._END and got[1][0] and self._discard is not None:
                self._discard(got[1][1])
        self._thread.join(timeout=30)

    def __enter__(self) -> Prefetch[T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
