"""The imagecodecs fast path of retrieval transcoding (engine/imaging/fastdecode.py; REQ: DCM-04, DSEC-08; issue 12
§3) gives what pydicom's decoders gave: bit for bit for lossless syntaxes, within a JPEG decoder's rounding for lossy
JPEG — and there bit for bit what DCMTK's dcmdjpeg gives — with the same Photometric Interpretation, over every
compressed test file bundled with pydicom and over data dcmtk and pydicom compress here (signed, 12 of 16 bits,
multi-frame, colour). What it does not take (JPEG 2000, an Extended Offset Table, a frame it cannot decode) goes to
pydicom's decoders.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, RLELossless

from engine.imaging import fastdecode, native, transcode
from tests.dicom.conftest import dcmtk, sample_file

BUNDLED = Path(pydicom.__file__).parent / "data" / "test_files"  # only what pydicom ships: nothing is downloaded
JPEG_2000 = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}
LOSSY_JPEG_DIFF = 3  # libjpeg + pydicom's YCbCr→RGB vs libjpeg-turbo, measured over pydicom's files: ≤ 3 levels


def _read(path: Path, **kwargs: Any) -> Any:
    """dcmread without pydicom's warnings about the odd test files (e.g. SC_rgb_jpeg.dcm's implicit VR)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(path, **kwargs)


def _compressed_bundled() -> list[str]:
    names = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(BUNDLED.glob("*.dcm")):
            try:
                ds = dcmread(path)
                ts = str(ds.file_meta.TransferSyntaxUID)
            except Exception:  # noqa: S112 - not a Part-10 file: not a decoder test case
                continue
            if ts in native.DECODABLE and "PixelData" in ds:
                names.append(path.name)
    return names


COMPRESSED = _compressed_bundled()


def _decode_both(ds: Any, ts: str) -> tuple[Any, Any]:
    """(imagecodecs, pydicom) — each (frames, photometric) or the exception pydicom raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = fastdecode.decode(ds, ts)
        try:
            old: Any = native.pydicom_frames(ds, ts)
        except Exception as exc:
            old = exc
    return fast, old


def _dcmdjpeg(src: Path, tmp: Path) -> np.ndarray[Any, Any]:
    """DCMTK's decode of `src`'s image (copied into a clean file first: dcmtk refuses some of pydicom's malformed
    samples, e.g. SC_rgb_jpeg.dcm's blank VRs)."""
    clean, out = tmp / f"{src.stem}-clean.dcm", tmp / f"{src.stem}-dcmdjpeg.dcm"
    ds = _read(src)
    image = Dataset()
    image.file_meta = ds.file_meta
    for keyword in ("SOPClassUID", "SOPInstanceUID", *_IMAGE_PIXEL, "PixelData"):
        if keyword in ds:
            image[keyword] = ds[keyword]
    image.save_as(clean, enforce_file_format=True)
    res = dcmtk("dcmdjpeg", str(clean), str(out))
    assert res.returncode == 0, res.stderr
    return np.asarray(_read(out).pixel_array)


_IMAGE_PIXEL = ("SamplesPerPixel", "PhotometricInterpretation", "NumberOfFrames", "Rows", "Columns", "BitsAllocated",
                "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration")  # fmt: skip


def _stack(frames: list[Any]) -> np.ndarray[Any, Any]:
    return frames[0] if len(frames) == 1 else np.stack(frames)


def test_dcm04_every_bundled_compressed_file_is_a_case() -> None:
    assert len(COMPRESSED) >= 35  # the list is pydicom's, read from its package
    syntaxes = {str(_read(BUNDLED / n, stop_before_pixels=True).file_meta.TransferSyntaxUID) for n in COMPRESSED}
    # every decodable syntax but JPEG lossless with any predictor (.57), which dcmcjpeg +el makes below
    assert syntaxes == set(native.DECODABLE) - {"1.2.840.10008.1.2.4.57"}


@pytest.mark.parametrize("name", COMPRESSED)
def test_dcm04_imagecodecs_decode_equals_pydicom(name: str, tmp_path: Path) -> None:
    path = sample_file(name)
    ds = _read(path)
    ts = str(ds.file_meta.TransferSyntaxUID)
    fast, old = _decode_both(ds, ts)
    if ts in JPEG_2000:  # OpenJPEG either way and no faster through imagecodecs: pylibjpeg-openjpeg keeps it
        assert fast is None
        return
    assert fast is not None, name
    frames, pi = fast
    assert all(f.flags.c_contiguous and f.dtype.itemsize * 8 == ds.BitsAllocated for f in frames)
    assert all(f.dtype.kind == ("i" if ds.PixelRepresentation else "u") for f in frames)
    if isinstance(old, Exception):  # pydicom's libjpeg cannot read it (JPEG-lossy.dcm): DCMTK's decoder agrees
        assert ts in fastdecode.JPEG_LOSSY, (name, old)
        assert np.array_equal(_stack(frames), _dcmdjpeg(path, tmp_path))
        return
    old_frames, old_pi = old
    assert pi == old_pi
    assert len(frames) == len(old_frames)
    for new, ref in zip(frames, old_frames, strict=True):
        assert (new.shape, new.dtype) == (ref.shape, ref.dtype)
        if ts in fastdecode.JPEG_LOSSY:
            diff = np.abs(new.astype(np.int64) - ref.astype(np.int64))
            assert diff.max() <= LOSSY_JPEG_DIFF, name
            assert diff.mean() < 0.2, name
        else:
            assert new.tobytes() == ref.tobytes(), name
    if ts in fastdecode.JPEG_LOSSY:  # and bit for bit what DCMTK (Orthanc's decoder, dcmdjpeg) gives
        assert np.array_equal(_stack(frames), _dcmdjpeg(path, tmp_path))


def _image(tmp: Path, bits_stored: int, signed: bool) -> Path:
    """A 512×512 16-bit image with `bits_stored` bits of noise (full range, signed or not)."""
    ds = dcmread(sample_file("CT_small.dcm"))
    rng = np.random.default_rng(bits_stored + signed)
    top = 1 << (bits_stored - 1 if signed else bits_stored)
    arr = rng.integers(-top if signed else 0, top, (512, 512)).astype(np.int16 if signed else np.uint16)
    ds.Rows, ds.Columns, ds.BitsStored, ds.HighBit = 512, 512, bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(signed)
    ds.PixelData = arr.tobytes()
    path = tmp / f"img{bits_stored}{'s' if signed else 'u'}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("bits_stored", [12, 16])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("codec", ["dcmcjpeg +e1", "dcmcjpeg +el", "dcmcjpls", "dcmcrle", "pyjpegls", "pydicom-rle"])
def test_dcm04_lossless_signed_and_12_bit_data_decodes_to_the_source(
    codec: str, signed: bool, bits_stored: int, tmp_path: Path
) -> None:
    """JPEG lossless (SV1 and any predictor), JPEG-LS and RLE, from dcmtk and from pydicom's encoders: imagecodecs
    gives the source's pixels exactly, as pydicom's decoders do (unused high bits sign-extended or cleared)."""
    src = _image(tmp_path, bits_stored, signed)
    out = tmp_path / "compressed.dcm"
    tool, *opts = codec.split()
    if tool.startswith("dcmc"):
        res = dcmtk(tool, *opts, str(src), str(out))
        assert res.returncode == 0, res.stderr
    else:
        ds = dcmread(src)
        ds.compress(JPEGLSLossless if tool == "pyjpegls" else RLELossless, encoding_plugin=tool.split("-")[0])
        ds.save_as(out, enforce_file_format=True)
    ds = dcmread(out)
    ts = str(ds.file_meta.TransferSyntaxUID)
    fast, old = _decode_both(ds, ts)
    assert fast is not None
    want = dcmread(src).pixel_array
    assert fast[0][0].tobytes() == want.tobytes() == old[0][0].tobytes()
    assert fast[1] == old[1] == "MONOCHROME2"


@pytest.mark.parametrize("bits_stored", [8, 12])
def test_dcm04_lossy_jpeg_equals_dcmtk_bit_for_bit(bits_stored: int, tmp_path: Path) -> None:
    """JPEG extended 12-bit and baseline 8-bit (dcmcjpeg): what Orthanc's DCMTK decodes, within pydicom's rounding."""
    src = _image(tmp_path, bits_stored, False)
    out = tmp_path / "lossy.dcm"
    res = dcmtk("dcmcjpeg", "+eb" if bits_stored == 8 else "+ee", str(src), str(out))
    assert res.returncode == 0, res.stderr
    ds = dcmread(out)
    ts = str(ds.file_meta.TransferSyntaxUID)
    assert ts in fastdecode.JPEG_LOSSY
    fast, old = _decode_both(ds, ts)
    assert fast is not None
    assert np.array_equal(fast[0][0], _dcmdjpeg(out, tmp_path))
    assert np.abs(fast[0][0].astype(int) - old[0][0].astype(int)).max() <= LOSSY_JPEG_DIFF


def test_dsec08_what_imagecodecs_does_not_take_goes_to_pydicom(tmp_path: Path) -> None:
    """An Extended Offset Table, or a frame imagecodecs refuses: None, and the instance is decoded (or refused) by
    pydicom's decoders in the sandbox as before."""
    ds = dcmread(sample_file("SC_rgb_rle_2frame.dcm"))
    frames = list(generate_frames(ds.PixelData, number_of_frames=2))
    ds.PixelData, offsets, lengths = (
        encapsulate(frames, has_bot=False),
        [0, len(frames[0]) + 8],
        [len(f) for f in frames],
    )
    ds.ExtendedOffsetTable = np.asarray(offsets, "<u8").tobytes()
    ds.ExtendedOffsetTableLengths = np.asarray(lengths, "<u8").tobytes()
    assert fastdecode.decode(ds, RLELossless) is None
    path = tmp_path / "eot.dcm"
    ds.save_as(path, enforce_file_format=True)
    out = transcode.dataset_of(native.native_child(str(path), ExplicitVRLittleEndian), ExplicitVRLittleEndian)
    assert np.array_equal(out.pixel_array, dcmread(sample_file("SC_rgb_rle_2frame.dcm")).pixel_array)
    assert "ExtendedOffsetTable" not in out

    bad = dcmread(sample_file("SC_rgb_jpeg_gdcm.dcm"))  # JPEG lossless
    frame = next(generate_frames(bad.PixelData, number_of_frames=1))
    native_bad = tmp_path / "no-header.dcm"
    frame_hdr = bytearray(frame)
    frame_hdr[2:40] = bytes(38)  # SOF/DHT gone: neither imagecodecs nor pydicom can read it
    bad.PixelData = encapsulate([bytes(frame_hdr)])
    assert fastdecode.decode(bad, str(bad.file_meta.TransferSyntaxUID)) is None
    bad.save_as(native_bad, enforce_file_format=True)
    with pytest.raises(native.TranscodeError, match="无法解码"):
        native.native_child(str(native_bad), ExplicitVRLittleEndian)
