"""Decoding a stored instance's frames with imagecodecs — the fast path of engine/imaging/native.py (runs inside an
engine.sandbox worker; REQ: DCM-04, DSEC-08; issue 12 §3).

Why: a 512×512 16-bit JPEG-lossless CT slice takes ~8.6 ms of CPU with pydicom + pylibjpeg-libjpeg and ~1.5 ms with
imagecodecs' libjpeg-turbo 3 (`jpeg8_decode` reads lossless process 14 at 2-16 bits), bit for bit the same — the
decode was most of a C-GET's cost for an uncompressed-only peer. CPU per 512×512 16-bit frame, pydicom's plugin →
imagecodecs (measured for this module):
- JPEG lossless (.57/.70) 8.6 → 1.5 ms, extended 12-bit (.51) 8.7 → 2.8 ms, baseline (.50) 1.4 → 0.2 ms:
  libjpeg-turbo;
- JPEG-LS (.80/.81) 3.8 → 3.6 ms (CharLS in both; without pyjpegls' wrapping); RLE (.5) 0.48 → 0.40 ms;
- JPEG 2000 is not taken: OpenJPEG in both, 26 ms either way — pylibjpeg-openjpeg stays.

The result is what pydicom's decoders give (native.pydicom_frames; tests compare the two over pydicom's compressed
test files): lossless syntaxes bit for bit; the same photometric rules (JPEG component IDs "RGB" or a JFIF marker
correct the stored value; lossy JPEG YBR_FULL/YBR_FULL_422 becomes RGB — converted by libjpeg-turbo, which differs
from libjpeg's upsampling and pydicom's float conversion by at most 3 levels on those files, as two JPEG decoders
do; RGB and lossless colour are kept as coded: the colour space is named, never guessed from markers); the same
sign and unused-bit corrections (JPEG and RLE: bits above Bits Stored cleared or sign-extended; JPEG-LS: signed data
sign-extended from the codestream's precision); colour-by-pixel; a Bits Allocated container. Anything else —
1-bit, Bits Allocated other than 8/16 (32 for RLE), other colour spaces, an Extended Offset Table, a frame of
another shape, or any error raised by imagecodecs — returns None, and pydicom's decoders take the instance (and
report what is wrong with the data).
"""

from __future__ import annotations

from typing import Any

JPEG_LOSSY = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"})
JPEG_LOSSLESS = frozenset({"1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"})
JPEG_LS = frozenset({"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})
RLE = "1.2.840.10008.1.2.5"
SYNTAXES = JPEG_LOSSY | JPEG_LOSSLESS | JPEG_LS | {RLE}

_MONO = {"MONOCHROME1", "MONOCHROME2"}
_YBR = {"YBR_FULL", "YBR_FULL_422"}


class Unsupported(Exception):
    """Not a case for this module: pydicom's decoders take it."""


def _jpeg_photometric(stored: str, pi: str, samples: int, frame: bytes) -> str:
    """pydicom's DecodeRunner._conform_jpg_colorspace: the codestream's "RGB" component IDs or a JFIF marker
    override the stored Photometric Interpretation of three-sample data."""
    from pydicom.pixels.utils import _get_jpg_parameters

    if samples != 3:
        return pi
    info = _get_jpg_parameters(frame)
    if info.get("component_ids") in ([82, 71, 66], [114, 103, 98]):
        return "RGB"
    if any(m.startswith(b"JFIF") for m in info.get("app", {}).values()) and "YBR" not in pi:
        return "YBR_FULL_422" if stored == "1.2.840.10008.1.2.4.50" else "YBR_FULL"
    return pi


def _shift(arr: Any, bits: int) -> Any:
    """Keep the low `bits` bits of each value: cleared above (unsigned dtype) or sign-extended (signed dtype)."""
    import numpy as np

    shift = arr.dtype.itemsize * 8 - bits
    if shift > 0:
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)
    return arr


def _as_signed(arr: Any, signed: bool) -> Any:
    """The decoded values' bit patterns viewed with the signedness of Pixel Representation (a writable array)."""
    kind = "i" if signed else "u"
    arr = arr.view(f"{kind}{arr.dtype.itemsize}")
    return arr if arr.flags.writeable else arr.copy()


class _Frames:
    """The image attributes decoding depends on, checked once."""

    def __init__(self, ds: Any, stored: str) -> None:
        if stored not in SYNTAXES:
            raise Unsupported(stored)
        if "ExtendedOffsetTable" in ds:
            raise Unsupported("extended offset table")
        self.stored = stored
        self.rows, self.columns = int(ds.Rows), int(ds.Columns)
        self.samples = int(ds.get("SamplesPerPixel", 1) or 1)
        self.bits = int(ds.BitsAllocated)
        self.bits_stored = int(ds.get("BitsStored", self.bits) or self.bits)
        self.signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
        self.pi = str(ds.PhotometricInterpretation)
        if self.samples not in (1, 3) or self.rows < 1 or self.columns < 1:
            raise Unsupported("geometry")
        if self.bits not in ((8, 16, 32) if stored == RLE else (8, 16)) or not 0 < self.bits_stored <= self.bits:
            raise Unsupported(f"bits allocated {self.bits}, stored {self.bits_stored}")
        if (self.samples == 1) != (self.pi in _MONO):
            raise Unsupported(f"photometric interpretation {self.pi}")
        self.shape = (self.rows, self.columns) if self.samples == 1 else (self.rows, self.columns, self.samples)

    def _check(self, arr: Any) -> Any:
        if arr.shape != self.shape:
            raise Unsupported(f"decoded shape {arr.shape}, expected {self.shape}")
        return arr

    def jpeg(self, frame: bytes, pi: str) -> tuple[Any, str]:
        """libjpeg-turbo: lossless and lossy, 8 and 12 bits (lossless 2-16). The colour conversion is named, not
        guessed from markers: lossy YBR_FULL(_422) → RGB, everything else kept as coded."""
        import imagecodecs

        lossy = self.stored in JPEG_LOSSY
        if self.samples == 1:
            space: tuple[str, str] = ("GRAYSCALE", "GRAYSCALE")
        elif lossy and pi in _YBR:
            space, pi = ("YCbCr", "RGB"), "RGB"
        elif pi == "RGB" or (not lossy and pi in _YBR):
            space = ("RGB", "RGB")  # no conversion: the samples as coded
        else:
            raise Unsupported(f"JPEG in {pi}")
        arr = self._check(imagecodecs.jpeg8_decode(frame, colorspace=space[0], outcolorspace=space[1]))
        if arr.dtype.itemsize * 8 != self.bits:
            raise Unsupported(f"{arr.dtype} samples for bits allocated {self.bits}")
        arr = _as_signed(arr, self.signed)
        return (_shift(arr, self.bits_stored) if self.bits_stored < self.bits else arr), pi

    def jpeg_ls(self, frame: bytes) -> Any:
        """CharLS; JPEG-LS has no signedness: signed data is sign-extended from the codestream's precision."""
        import imagecodecs
        from pydicom.pixels.utils import _get_jpg_parameters

        arr = _as_signed(self._check(imagecodecs.jpegls_decode(frame)), self.signed)
        if self.signed:
            arr = _shift(arr, int(_get_jpg_parameters(frame).get("precision", self.bits_stored)))
        return arr

    def rle(self, frame: bytes) -> Any:
        """DICOM RLE (PS3.5 Annex G): segments decode colour-by-plane; interleaved here."""
        import imagecodecs
        import numpy as np

        dtype = np.dtype(f"<{'i' if self.signed else 'u'}{self.bits // 8}")
        raw = imagecodecs.dicomrle_decode(frame, dtype)
        if len(raw) != self.rows * self.columns * self.samples * dtype.itemsize:
            raise Unsupported("RLE frame length")
        arr = np.frombuffer(raw, dtype)
        if self.samples == 1:
            arr = arr.reshape(self.shape).copy()
        else:
            arr = np.ascontiguousarray(arr.reshape(self.samples, self.rows, self.columns).transpose(1, 2, 0))
        return _shift(arr, self.bits_stored) if self.bits_stored < self.bits else arr


def decode(ds: Any, stored: str) -> tuple[list[Any], str] | None:
    """The frames of `ds`'s encapsulated Pixel Data decoded with imagecodecs, each a (rows, columns[, samples])
    array in a Bits Allocated container of Pixel Representation's signedness, and the Photometric Interpretation of
    the decoded data; None when this module does not take the case or imagecodecs fails (pydicom's decoders then)."""
    from pydicom.encaps import generate_frames

    try:
        spec = _Frames(ds, stored)
        nr_frames = int(ds.get("NumberOfFrames", 1) or 1)
        out: list[Any] = []
        pi = spec.pi
        for index, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=nr_frames)):
            if stored in JPEG_LOSSY or stored in JPEG_LOSSLESS:
                arr, frame_pi = spec.jpeg(frame, _jpeg_photometric(stored, spec.pi, spec.samples, frame))
                if index and frame_pi != pi:
                    raise Unsupported("frames in different colour spaces")
                pi = frame_pi
            elif stored in JPEG_LS:
                arr = spec.jpeg_ls(frame)
                pi = _jpeg_photometric(stored, spec.pi, spec.samples, frame) if not index else pi
            else:
                arr = spec.rle(frame)
            out.append(arr.astype(f"<{'i' if spec.signed else 'u'}{spec.bits // 8}", copy=False))
        if not out:
            raise Unsupported("no frames")
        return out, pi
    except Unsupported:
        return None
    except (RuntimeError, ValueError, TypeError, IndexError, KeyError):
        return None  # imagecodecs' *Error classes are RuntimeErrors: pydicom's decoders decide
