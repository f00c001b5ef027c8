"""Transcoding stored instances for storage and forwarding policies (REQ: IMG-04, DSEC-08).

Policies: lossless RLE, JPEG-LS and JPEG 2000 (pydicom's encoders with the pylibjpeg / pyjpegls plugins); lossy
JPEG 2000 and JPEG-LS near-lossless; JPEG baseline for 8-bit images through Pillow (pydicom has no JPEG baseline
encoder, so the frames are encapsulated here, PS3.5 §A.4); and "uncompressed" (Explicit VR Little Endian).

Decoding untrusted pixel data is the riskiest thing the archive does, so it never happens on the receive path and
never in the calling process: every transcode runs in a spawned helper process (engine.sandbox) with an address-space
limit, a CPU limit per job (RLIMIT_CPU) and a wall-clock timeout; a helper that dies or overruns is replaced (DSEC-08).
Lossless results are decoded again in the helper and compared with the source pixels before they are accepted.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from engine.imaging.storage import ObjectStore
from engine.sandbox import Limits, SandboxError, Worker

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
UNCOMPRESSED = (EXPLICIT_VR_LE, IMPLICIT_VR_LE)


@dataclass(frozen=True)
class Policy:
    uid: str
    lossy: bool
    label: str
    options: tuple[tuple[str, Any], ...] = ()


POLICIES: dict[str, Policy] = {
    "uncompressed": Policy(EXPLICIT_VR_LE, False, "不压缩"),
    "rle": Policy("1.2.840.10008.1.2.5", False, "RLE 无损"),
    "jpegls": Policy("1.2.840.10008.1.2.4.80", False, "JPEG-LS 无损"),
    "j2k": Policy("1.2.840.10008.1.2.4.90", False, "JPEG 2000 无损"),
    "j2k_lossy": Policy("1.2.840.10008.1.2.4.91", True, "JPEG 2000 有损", (("j2k_cr", [10]),)),
    "jpegls_near": Policy("1.2.840.10008.1.2.4.81", True, "JPEG-LS 近无损", (("jls_error", 2),)),
    "jpeg_baseline": Policy("1.2.840.10008.1.2.4.50", True, "JPEG 基线（8 位）", (("quality", 90),)),
}
# PS3.3 C.7.6.1.1.5: the method names of (0028,2114).
_LOSSY_METHOD = {
    "1.2.840.10008.1.2.4.91": "ISO_15444_1",
    "1.2.840.10008.1.2.4.81": "ISO_14495_1",
    "1.2.840.10008.1.2.4.50": "ISO_10918_1",
}


class TranscodeError(Exception):
    """The instance cannot be transcoded (unsupported pixel data, a failed check, limits exceeded)."""


@dataclass(frozen=True)
class Transcoded:
    ts: str
    sop_instance_uid: str
    lossy: bool


@dataclass(frozen=True)
class StoredTranscode:
    key: str
    sha256: str
    size: int
    ts: str


def validate_policy(policy: str) -> str:
    """'' (none) or a key of POLICIES.

    Raises:
        ValueError: unknown policy.
    """
    if policy and policy not in POLICIES:
        raise ValueError(f"unknown compression policy {policy!r}")
    return policy


def target_syntax(policy: str) -> str:
    return POLICIES[policy].uid


# -- the helper process (engine.sandbox.Worker runs these) ------------------------------------------------------------
def _jpeg_baseline(ds: Any, quality: int) -> None:
    """Encode 8-bit MONOCHROME/RGB pixel data as JPEG baseline frames with Pillow and encapsulate them."""
    import numpy as np
    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    if int(ds.BitsAllocated) != 8 or int(ds.get("BitsStored", 8)) != 8:
        raise TranscodeError("JPEG 基线只支持 8 位图像")
    spp = int(ds.SamplesPerPixel)
    pi = str(ds.PhotometricInterpretation)
    if not ((spp == 1 and pi in ("MONOCHROME1", "MONOCHROME2")) or (spp == 3 and pi == "RGB")):
        raise TranscodeError(f"JPEG 基线不支持 {pi}")
    if int(ds.get("PixelRepresentation", 0)) != 0:
        raise TranscodeError("JPEG 基线不支持有符号像素")
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames == 1:
        arr = arr[np.newaxis, ...]
    encoded = []
    for frame in arr:
        img = Image.fromarray(np.ascontiguousarray(frame.astype(np.uint8)), mode="L" if spp == 1 else "RGB")
        buf = BytesIO()
        # 4:2:2 chroma subsampling is what YBR_FULL_422 declares (PS3.3 C.7.6.3.1.2).
        img.save(buf, format="JPEG", quality=quality, subsampling=1, optimize=False)
        encoded.append(buf.getvalue())
    ds.PixelData = encapsulate(encoded)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    if spp == 3:
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.PlanarConfiguration = 0


def _transcode_child(src: str, out: str, policy_name: str) -> tuple[str, str, bool]:
    """Runs in the helper: read, decode, encode, check, write `out`; returns (ts, SOP Instance UID, lossy)."""
    import numpy as np
    from pydicom import dcmread
    from pydicom.uid import UID, generate_uid

    policy = POLICIES[policy_name]
    ds = dcmread(src)
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    if "PixelData" not in ds:
        raise TranscodeError("没有像素数据")
    target = UID(policy.uid)
    if ts == target:
        shutil.copyfile(src, out)
        return str(ts), str(ds.SOPInstanceUID), False
    if ts.is_compressed:
        # To Explicit VR Little Endian (YBR from JPEG becomes RGB). A lossless change of transfer syntax keeps the
        # SOP Instance UID (PS3.5 §10); pydicom would generate a new one by default.
        ds.decompress(generate_instance_uid=False)
    source = ds.pixel_array.copy()
    options = dict(policy.options)
    if policy_name == "uncompressed":
        pass
    elif policy_name == "jpeg_baseline":
        _jpeg_baseline(ds, int(options.get("quality", 90)))
    else:
        ds.compress(target, generate_instance_uid=False, **options)
    if policy.lossy:
        ratio = (source.nbytes / max(1, len(ds.PixelData))) if ds.PixelData else 0
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = f"{ratio:.2f}"[:16]
        ds.LossyImageCompressionMethod = _LOSSY_METHOD[policy.uid]
        # PS3.3 C.12.1.1.1: a lossy derivative is a new instance. Deterministic, so a re-send is the same UID.
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(ds.SOPInstanceUID), policy_name])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    else:
        check = dcmread(BytesIO(_encode(ds)))
        if not np.array_equal(check.pixel_array, source):
            raise TranscodeError("无损压缩校验失败：像素数据不一致")
    ds.save_as(out, enforce_file_format=True)
    return str(ds.file_meta.TransferSyntaxUID), str(ds.SOPInstanceUID), policy.lossy


def _encode(ds: Any) -> bytes:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


# -- the parent side -----------------------------------------------------------------------------------------------
class Sandbox:
    """A spawned helper process with resource limits; replaced after a crash or a timeout (engine.sandbox).

    The helper lives on between transcodes (it imports pydicom and the codecs once), so ``spawn``'s start cost is
    paid once per helper, and it never forks a threaded server.
    """

    _MESSAGES = {
        "timeout": "转码超时",
        "memory": "转码内存超限",
        "cpu": "转码进程异常退出（可能超出资源限制）",
        "crashed": "转码进程异常退出（可能超出资源限制）",
    }

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._worker = Worker(self.limits, start_method="spawn", raises=(TranscodeError,), name="telerad-transcode")

    def run(self, src: Path, out: Path, policy: str) -> Transcoded:
        """Transcode `src` into `out` by `policy` in the helper.

        Raises:
            TranscodeError: the helper refused, crashed, ran out of memory or time.
        """
        validate_policy(policy)
        try:
            ts, uid, lossy = self._worker.call(_transcode_child, str(src), str(out), policy)
        except SandboxError as exc:
            # any decoder/encoder error on untrusted data is a refusal
            raise TranscodeError(self._MESSAGES.get(exc.reason) or f"转码失败：{exc.message}") from exc
        return Transcoded(ts, uid, lossy)

    def close(self) -> None:
        self._worker.close()


_default: Sandbox | None = None
_default_lock = threading.Lock()


def sandbox() -> Sandbox:
    """The process-wide sandbox (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Sandbox()
        return _default


def transcode_file(src: Path, out: Path, policy: str, box: Sandbox | None = None) -> Transcoded:
    """Transcode one Part-10 file into `out` (a new file) in the sandbox.

    Raises:
        TranscodeError: see Sandbox.run.
    """
    return (box or sandbox()).run(src, out, policy)


def transcode_to_store(src: Path, dest: ObjectStore, policy: str, box: Sandbox | None = None) -> StoredTranscode:
    """Transcode `src` into `dest` under its new content key (durable, like any stored object).

    Raises:
        TranscodeError: see Sandbox.run.
    """
    fd, name = tempfile.mkstemp(dir=dest.tmp_dir, prefix="tc-", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        result = transcode_file(src, tmp, policy, box)
        stored = dest.adopt(tmp)
    finally:
        tmp.unlink(missing_ok=True)
    return StoredTranscode(stored.key, stored.sha256, stored.size, result.ts)


def shutdown() -> None:
    """Stop the process-wide helper (at exit, and in tests)."""
    global _default
    with _default_lock:
        box, _default = _default, None
    if box is not None:
        box.close()


atexit.register(shutdown)
