"""Decoding a stored instance to native pixel data — the half of engine/imaging/transcode.py that runs inside an
engine.sandbox worker (REQ: DSEC-08, DCM-04). See transcode.py for the codec choice and the rules applied here.

Nothing here is called in the server or worker process itself: `native_child` and `warm_child` are handed to the
sandbox, which imports this module in the child.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from pydicom import dcmread
from pydicom.uid import UID

from engine.imaging import elements

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
UNCOMPRESSED = (EXPLICIT_VR_LE, IMPLICIT_VR_LE)  # in order of preference

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


def warm_child() -> bool:
    """Import the decoders once, so the first instance does not pay for it."""
    import imagecodecs
    import jpeg_ls  # noqa: F401
    import libjpeg  # noqa: F401
    import openjpeg  # noqa: F401
    import rle  # noqa: F401
    from pydicom.pixels import get_decoder

    fast = (imagecodecs.JPEG8, imagecodecs.JPEGLS, imagecodecs.DICOMRLE)  # imagecodecs loads a codec on first use
    return all(codec.available for codec in fast) and all(get_decoder(ts).is_available for ts in DECODABLE)


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


def pydicom_frames(ds: Any, stored: str) -> tuple[list[Any], str]:
    """The frames decoded by pydicom's decoder for `stored` with its named plugin (the fallback of
    engine/imaging/fastdecode.py), each in a Bits Allocated container, and the decoded Photometric Interpretation."""
    from pydicom.pixels import get_decoder

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
    return frames, str(meta.get("photometric_interpretation") or ds.PhotometricInterpretation)


def _decode_pixels(ds: Any, stored: str, fast: bool = True) -> None:
    """Replace encapsulated Pixel Data by native pixel data and fix the image attributes that change: imagecodecs
    where it takes the case (engine/imaging/fastdecode.py), else (or with `fast` False) pydicom's decoders."""
    import numpy as np
    from pydicom.encaps import generate_frames
    from pydicom.pixels.utils import pack_bits

    from engine.imaging import fastdecode

    nr_frames = int(ds.get("NumberOfFrames", 1) or 1)
    encapsulated = ds.PixelData
    first = next(generate_frames(encapsulated, number_of_frames=nr_frames), b"")
    bits = int(ds.BitsAllocated)
    decoded = fastdecode.decode(ds, stored) if fast else None
    frames, pi = decoded if decoded is not None else pydicom_frames(ds, stored)
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


_LONG_HEADER_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
# The top-level elements decoding may change or remove; every other element is copied as stored.
_TOUCHED = {
    0x00280004,  # Photometric Interpretation
    0x00280006,  # Planar Configuration
    0x00282110,  # Lossy Image Compression
    0x00282112,  # Lossy Image Compression Ratio
    0x00282114,  # Lossy Image Compression Method
    0x00880200,  # Icon Image Sequence
    0x7FE00001,  # Extended Offset Table
    0x7FE00002,  # Extended Offset Table Lengths
    0x7FE00010,  # Pixel Data
}


def _spans(ds: Any, end: int) -> dict[int, tuple[int, int]] | None:
    """The byte range of each top-level element in the (explicit VR little endian) stored file, from the positions
    pydicom read them at; None unless they tile the data set exactly (then the data set is re-encoded instead)."""
    found: list[tuple[int, int, int | None]] = []  # (tag, start, defined length + header, when known)
    for tag in ds.keys():
        elem = ds.get_item(tag)  # raw: no value is converted
        raw_tell = getattr(elem, "value_tell", None)
        tell = raw_tell if raw_tell is not None else getattr(elem, "file_tell", None)
        if tell is None or not elem.VR:
            return None
        header = 12 if str(elem.VR) in _LONG_HEADER_VRS else 8
        length = int(elem.length) if raw_tell is not None and int(elem.length) != 0xFFFFFFFF else None
        found.append((int(tag), int(tell) - header, None if length is None else header + length))
    if not found or [t for t, _s, _n in found] != sorted(t for t, _s, _n in found):
        return None
    spans: dict[int, tuple[int, int]] = {}
    for i, (tag, start, size) in enumerate(found):
        stop = found[i + 1][1] if i + 1 < len(found) else end
        if stop <= start or (size is not None and start + size != stop):
            return None
        spans[tag] = (start, stop)
    return spans


def _encode_spliced(raw: bytes, ds: Any, spans: dict[int, tuple[int, int]]) -> bytes:
    """Explicit VR little endian: the stored bytes of every element decoding did not touch, and the touched ones
    (decoded Pixel Data included) encoded anew — no other element is parsed or re-encoded (saves ~1.5 ms of a CT
    slice's ~10 ms in the sandbox)."""
    import struct

    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    chunks: list[bytes] = []
    for tag in sorted(set(spans) | {int(t) for t in ds.keys()}):
        if tag & 0xFFFF == 0:
            continue  # group lengths (retired, PS3.5 §7.2) would no longer be right: dropped, as pydicom does
        if tag not in _TOUCHED:
            start, stop = spans[tag]
            chunks.append(raw[start:stop])
        elif tag == 0x7FE00010:
            elem = ds["PixelData"]
            vr = str(elem.VR).encode()
            chunks += [struct.pack("<HH2sHI", 0x7FE0, 0x0010, vr, 0, len(elem.value)), elem.value]
        elif tag in ds:
            fp = DicomBytesIO()
            fp.is_little_endian, fp.is_implicit_VR = True, False
            write_data_element(fp, ds[tag])
            chunks.append(fp.getvalue())
    return b"".join(chunks)


_IMAGE_TAGS = {0x00880200, 0x7FE00001, 0x7FE00002, 0x7FE00010}  # and group 0028


def _image_elements(raw: bytes, spans: dict[int, tuple[int, int]], stored: str) -> Any:
    """A data set of only the elements decoding reads or changes — group 0028, the Icon Image Sequence, Extended
    Offset Table and Pixel Data — read by pydicom from their stored bytes; every other element is copied as stored
    (`_encode_spliced`)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filereader import read_dataset

    wanted = b"".join(raw[a:b] for tag, (a, b) in spans.items() if tag >> 16 == 0x0028 or tag in _IMAGE_TAGS)
    ds = read_dataset(BytesIO(wanted), is_implicit_VR=False, is_little_endian=True)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(stored)
    return ds


def native_child(path: str, target: str) -> bytes:
    """Runs in the sandbox: the data set of the Part-10 file `path` with its pixel data decoded, encoded in `target`
    (explicit or implicit VR little endian), without its File Meta Information."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    if target not in UNCOMPRESSED:
        raise TranscodeError(f"不支持转换到传输语法 {target}")
    with open(path, "rb") as fh:
        raw = fh.read()
    head = elements.meta(raw) if target == EXPLICIT_VR_LE else None  # compressed syntaxes are explicit VR LE
    spans = elements.spans(raw, head[1]) if head is not None and head[0] in DECODABLE else None
    if head is not None and spans is not None:
        stored, ds = head[0], _image_elements(raw, spans, head[0])
    else:  # pydicom reads it all (implicit VR target, or a data set the walker does not take)
        ds = dcmread(BytesIO(raw))
        stored = str(ds.file_meta.TransferSyntaxUID)
        if stored not in DECODABLE:
            raise TranscodeError(f"无法解码传输语法 {stored}")
        spans = _spans(ds, len(raw)) if target == EXPLICIT_VR_LE else None
    try:
        if "PixelData" in ds:
            _decode_pixels(ds, stored)
        _drop_encapsulated_icons(ds)
    except TranscodeError:
        raise
    except (ValueError, RuntimeError, NotImplementedError, KeyError, TypeError, AttributeError, StopIteration) as exc:
        raise TranscodeError(f"像素数据无法解码：{type(exc).__name__}: {exc}") from exc
    if spans is not None:
        return _encode_spliced(raw, ds, spans)
    out = DicomBytesIO()
    out.is_little_endian = True
    out.is_implicit_VR = target == IMPLICIT_VR_LE
    write_dataset(out, ds)
    return out.getvalue()


def frames_child(path: str, numbers: list[int]) -> tuple[str, list[tuple[bool, bytes | str]]]:
    """Runs in the sandbox: frames `numbers` (1-based) of the compressed Part-10 file `path`, each decoded on its
    own by the decoders `native_child` uses (imagecodecs, else pydicom's) to native little endian bytes in a Bits
    Allocated container (colour-by-pixel; 1-bit data packed), with the decoded Photometric Interpretation. A frame
    that does not decode is `(False, reason)`: the others are still returned (DICOMweb answers them; issue 15)."""
    from pydicom.encaps import get_frame

    ds = dcmread(path)
    stored = str(ds.file_meta.TransferSyntaxUID)
    if stored not in DECODABLE:
        raise TranscodeError(f"无法解码传输语法 {stored}")
    nr_frames = int(ds.get("NumberOfFrames", 1) or 1)
    encapsulated = ds.PixelData
    extended = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
        del ds["ExtendedOffsetTable"], ds["ExtendedOffsetTableLengths"]
    if "NumberOfFrames" in ds:
        ds.NumberOfFrames = 1
    pi = str(ds.PhotometricInterpretation)
    out: list[tuple[bool, bytes | str]] = []
    for number in numbers:
        try:
            frame = get_frame(encapsulated, number - 1, number_of_frames=nr_frames, extended_offsets=extended)
        except (ValueError, KeyError, IndexError) as exc:
            out.append((False, f"{type(exc).__name__}: {str(exc)[:200]}"))
            continue
        pi = _decode_frame(ds, stored, frame, out, pi)
    return pi, out


# The image attributes decoding one frame depends on (fastdecode._Frames, pydicom's decoders), in this order: what
# engine/dicomweb/frame_index.py keeps of each stored file so a frame can be decoded without re-reading its header.
IMAGE_KEYWORDS = (
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "PlanarConfiguration",
)


def _decode_frame(ds: Any, stored: str, frame: bytes, out: list[tuple[bool, bytes | str]], pi: str) -> str:
    """Decode one encapsulated `frame` of `ds` (its image attributes, NumberOfFrames 1) to native little endian
    bytes in a Bits Allocated container (1-bit data packed), appended to `out` as (True, bytes) or (False, reason);
    returns the decoded Photometric Interpretation (`pi` when the frame failed)."""
    import numpy as np
    from pydicom.encaps import encapsulate
    from pydicom.pixels.utils import pack_bits

    from engine.imaging import fastdecode

    try:
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].is_undefined_length = True
        decoded = fastdecode.decode(ds, stored)
        arrays, pi = decoded if decoded is not None else pydicom_frames(ds, stored)
        arr = arrays[0]
        data = bytes(pack_bits(arr.ravel())) if int(ds.BitsAllocated) == 1 else np.ascontiguousarray(arr).tobytes()
        out.append((True, data))
    except (ValueError, RuntimeError, NotImplementedError, KeyError, TypeError, AttributeError, IndexError) as exc:
        out.append((False, f"{type(exc).__name__}: {str(exc)[:200]}"))
    return pi


def decode_frames_child(
    stored: str, image: tuple[tuple[str, Any], ...], frames: list[bytes]
) -> tuple[str, list[tuple[bool, bytes | str]]]:
    """Runs in the sandbox: encapsulated frames already cut from a stored file (engine/dicomweb/frame_index.py)
    decoded as `frames_child` decodes them, from the file's image attributes `image` ((keyword, value) pairs of
    IMAGE_KEYWORDS) — no file is opened or parsed here (issue 16: ~4.5 → ~2 ms of CPU for a 512×512 16-bit
    JPEG-lossless slice)."""
    from pydicom.dataset import Dataset, FileMetaDataset

    if stored not in DECODABLE:
        raise TranscodeError(f"无法解码传输语法 {stored}")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(stored)
    for keyword, value in image:
        if keyword in IMAGE_KEYWORDS and value is not None:
            setattr(ds, keyword, value)
    ds.NumberOfFrames = 1
    pi = str(ds.get("PhotometricInterpretation", ""))
    out: list[tuple[bool, bytes | str]] = []
    for frame in frames:
        pi = _decode_frame(ds, stored, frame, out, pi)
    return pi, out
