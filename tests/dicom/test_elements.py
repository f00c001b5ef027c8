"""engine/imaging/elements.py: the top-level element spans the sandboxed decoder copies stored elements by
(REQ: DCM-04, DSEC-08; issue 12 §3) are the ones pydicom reads — over pydicom's bundled files and data sets with
nested undefined-length sequences, an undefined-length UN and encapsulated Pixel Data — and anything unexpected is
None (pydicom then reads the file). The decoded output is the same either way.
"""

from __future__ import annotations

import struct
import warnings
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from engine.imaging import elements, native, transcode
from tests.dicom.conftest import sample_file

BUNDLED = Path(pydicom.__file__).parent / "data" / "test_files"


def _read(path: Path | BytesIO) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(path)


def _explicit_part10() -> list[str]:
    names = []
    for path in sorted(BUNDLED.glob("*.dcm")):
        head = elements.meta(path.read_bytes())
        if head is not None and head[0] not in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"):
            names.append(path.name)
    return names


EXPLICIT = _explicit_part10()


@pytest.mark.parametrize("name", EXPLICIT)
def test_dcm04_spans_are_where_pydicom_reads_each_element(name: str) -> None:
    raw = (BUNDLED / name).read_bytes()
    head = elements.meta(raw)
    assert head is not None
    ds = _read(BytesIO(raw))
    assert head[0] == ds.file_meta.TransferSyntaxUID
    by_pydicom = native._spans(ds, len(raw))
    mine = elements.spans(raw, head[1])
    if by_pydicom is not None:  # pydicom knows every element's position: the same spans
        assert mine == by_pydicom
    elif mine is not None:  # pydicom kept no position for some: the same tags, tiling the data set
        assert list(mine) == [int(t) for t in ds.keys()]
        assert [s for s, _e in mine.values()][1:] == [e for _s, e in mine.values()][:-1]
        assert next(iter(mine.values()))[0] == head[1]
        assert list(mine.values())[-1][1] == len(raw)


def _nested(depth: int) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator = "T-D0050", "SRT"
    for level in range(depth):
        outer = Dataset()
        outer.CodeMeaning = f"level {level}"
        item.is_undefined_length_sequence_item = True  # an item of undefined length too
        outer.ConceptNameCodeSequence = Sequence([item])
        outer["ConceptNameCodeSequence"].is_undefined_length = True
        item = outer
    item.is_undefined_length_sequence_item = True
    return item


def _with_sequences(tmp: Path, depth: int) -> Path:
    """A JPEG-lossless-encapsulated image with undefined-length sequences `depth` deep, a private undefined-length
    UN holding implicit VR items, and a defined-length sequence."""
    ds = _read(sample_file("SC_rgb_jpeg_gdcm.dcm"))
    ds.ReferencedStudySequence = Sequence([_nested(depth)])
    ds["ReferencedStudySequence"].is_undefined_length = True
    ds.ProcedureCodeSequence = Sequence([_nested(2)])
    ds["ProcedureCodeSequence"].is_undefined_length = False
    path = tmp / f"seq{depth}.dcm"
    ds.save_as(path, enforce_file_format=True)
    ds = _read(path)
    raw = bytearray(path.read_bytes())
    # a private UN of undefined length (PS3.5 §6.2.2): an item of implicit VR elements, then the delimiters
    implicit = struct.pack("<HHI", 0x0008, 0x0100, 6) + b"ABC123"
    un = struct.pack("<HH2sHI", 0x0009, 0x1010, b"UN", 0, 0xFFFFFFFF)
    un += struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + implicit + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    un += struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    creator = struct.pack("<HH2sH", 0x0009, 0x0010, b"LO", 6) + b"TEST  "
    after = next(t for t in ds.keys() if t > 0x00091010)  # where pydicom read the first element after it
    elem = ds.get_item(after)
    at = elem.value_tell - (
        12 if elem.VR in ("OB", "OW", "SQ", "UN", "UT", "UC", "UR", "OF", "OD", "OL", "OV", "SV", "UV") else 8
    )
    raw[at:at] = creator + un
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("depth", [1, 5, 40])
def test_dcm04_undefined_length_sequences_un_and_fragments_are_skipped_exactly(depth: int, tmp_path: Path) -> None:
    path = _with_sequences(tmp_path, depth)
    raw = path.read_bytes()
    head = elements.meta(raw)
    assert head is not None
    mine = elements.spans(raw, head[1])
    assert mine is not None
    ds = _read(path)
    assert list(mine) == [int(t) for t in ds.keys()]
    assert len(ds.ReferencedStudySequence[0].ConceptNameCodeSequence) == 1
    start, stop = mine[0x00091010]
    assert raw[start + 4 : start + 6] == b"UN"
    assert raw[stop - 8 : stop] == struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    pixels = mine[0x7FE00010]
    assert pixels[1] == len(raw)
    assert raw[pixels[1] - 8 : pixels[1]] == struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    # the decoded data set keeps them as stored, and equals what the pydicom path gives
    out = native.native_child(str(path), ExplicitVRLittleEndian)
    assert out.find(raw[start:stop]) >= 0
    decoded = transcode.dataset_of(out, ExplicitVRLittleEndian)
    assert decoded.ReferencedStudySequence[0].CodeMeaning == f"level {depth - 1}"
    assert (decoded.PhotometricInterpretation, decoded.PlanarConfiguration) == ("RGB", 0)


def test_dsec08_what_the_walker_does_not_expect_is_none(tmp_path: Path) -> None:
    raw = _with_sequences(tmp_path, 2).read_bytes()
    head = elements.meta(raw)
    assert head is not None
    start = head[1]
    assert elements.spans(raw, start) is not None
    assert elements.spans(raw[:-3], start) is None  # cut inside the last delimiter
    assert elements.spans(raw[:-8], start) is None  # no sequence delimiter after the fragments
    swapped = bytearray(raw)
    swapped[start : start + 2] = b"\xff\x7f"  # the first tag now sorts after the others
    assert elements.spans(bytes(swapped), start) is None
    bad_vr = bytearray(raw)
    bad_vr[start + 4 : start + 6] = b"ZZ"
    assert elements.spans(bytes(bad_vr), start) is None
    too_deep = _with_sequences(tmp_path, elements.MAX_DEPTH + 5).read_bytes()
    deep_head = elements.meta(too_deep)
    assert deep_head is not None
    assert elements.spans(too_deep, deep_head[1]) is None
    assert elements.meta(b"\0" * 200) is None
    # the decoder then reads the file with pydicom: same pixels
    path = tmp_path / "deep.dcm"
    path.write_bytes(too_deep)
    out = transcode.dataset_of(native.native_child(str(path), ExplicitVRLittleEndian), ExplicitVRLittleEndian)
    assert out.PhotometricInterpretation == "RGB"


@pytest.mark.parametrize(
    "name", ["MR_small_RLE.dcm", "JPEGLSNearLossless_16.dcm", "examples_ybr_color.dcm", "693_J2KI.dcm"]
)
def test_dcm04_walker_and_pydicom_paths_decode_to_the_same_bytes(name: str) -> None:
    """native_child (walker) equals the pydicom path: the whole file read by pydicom, its element positions, the
    same decode and splice."""
    src = sample_file(name)
    raw = src.read_bytes()
    ds = _read(src)
    spans = native._spans(ds, len(raw))
    assert spans is not None
    native._decode_pixels(ds, str(ds.file_meta.TransferSyntaxUID))
    native._drop_encapsulated_icons(ds)
    assert native.native_child(str(src), ExplicitVRLittleEndian) == native._encode_spliced(raw, ds, spans)
