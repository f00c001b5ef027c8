"""engine/imaging/validate.py on files (issue 12 §1; REQ: DSEC-05, DSEC-08): every pydicom test file of an
allowlisted SOP class passes (native, big endian, deflated, RLE, JPEG family, JPEG-LS, JPEG 2000, multi-frame,
1-bit, YBR), the broken corpus is refused with its code, the Image Pixel length rules, nesting and deflate limits,
the values collected on the walk, and reads bounded by the walk (long values are skipped, never read)."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from dicom.uids import STORAGE_SOP_CLASSES
from engine.imaging import validate
from engine.imaging.validate import BrokenDataset
from tests.dicom import broken, synthetic

TEST_FILES = Path(str(get_testdata_file("CT_small.dcm"))).parent

# pydicom test files of allowlisted classes that are broken on purpose: refused, with the reason.
KNOWN_BROKEN = {
    "MR_truncated.dcm": "dataset_truncated",  # Pixel Data cut short on disk
    "SC_rgb_jpeg.dcm": "dataset_vr",  # an implicit VR data set under JPEG Baseline (explicit VR) in its meta
}


def _allowlisted() -> dict[str, str]:
    """{path under pydicom's test files: transfer syntax} of every Part-10 test file of an allowlisted class."""
    found = {}
    for name in sorted(get_testdata_files("**/*")):
        path = Path(name)
        if not path.is_file() or path.read_bytes()[128:132] != b"DICM":
            continue
        with warnings.catch_warnings():  # pydicom warns about the files broken on purpose
            warnings.simplefilter("ignore")
            ds = dcmread(path, stop_before_pixels=True)
        if str(ds.get("SOPClassUID", "")) in STORAGE_SOP_CLASSES:
            found[path.relative_to(TEST_FILES).as_posix()] = str(ds.file_meta.TransferSyntaxUID)
    return found


ALLOWLISTED = _allowlisted()


def test_dsec08_the_valid_corpus_covers_every_family() -> None:
    syntaxes = set(ALLOWLISTED.values())
    for ts in (
        "1.2.840.10008.1.2",  # implicit
        "1.2.840.10008.1.2.1",  # explicit
        "1.2.840.10008.1.2.2",  # explicit big endian
        "1.2.840.10008.1.2.1.99",  # deflated
        "1.2.840.10008.1.2.5",  # RLE
        "1.2.840.10008.1.2.4.50",  # JPEG baseline
        "1.2.840.10008.1.2.4.51",  # JPEG extended
        "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
        "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
        "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
    ):
        assert ts in syntaxes
    assert len(ALLOWLISTED) > 100


@pytest.mark.parametrize("name", [n for n in ALLOWLISTED if n not in KNOWN_BROKEN])
def test_dsec08_allowlisted_pydicom_file_passes(name: str) -> None:
    syntax, found = validate.check_file(TEST_FILES / name)
    assert syntax == ALLOWLISTED[name]
    assert 0x00080016 in found  # the SOP Class UID is always collected


@pytest.mark.parametrize(("name", "code"), sorted(KNOWN_BROKEN.items()))
def test_dsec08_pydicom_file_broken_on_purpose_is_refused(name: str, code: str) -> None:
    with pytest.raises(BrokenDataset) as err:
        validate.check_file(TEST_FILES / name)
    assert err.value.code == code


@pytest.mark.parametrize("case", broken.cases(), ids=lambda c: c.name)
def test_dsec08_broken_corpus_refused_with_its_code(tmp_path: Path, case: broken.Case) -> None:
    path = tmp_path / "case.dcm"
    path.write_bytes(case.part10())
    with pytest.raises(BrokenDataset) as err:
        validate.check_file(path)
    assert err.value.code == case.code if case.code else err.value.code.startswith("dataset_")
    assert err.value.message.startswith("数据集结构损坏：")
    comment = err.value.details["comment"]
    assert comment.isascii()
    assert 0 < len(comment) <= 64
    with pytest.raises(BrokenDataset):  # the same without a file: the data set alone
        validate.check_bytes(case.body, case.transfer_syntax)


@pytest.mark.parametrize(
    "valid",
    [broken.ct, lambda: broken.ct(broken.IMPLICIT_LE), broken.multiframe, broken.rle, broken.sr],
    ids=["ct", "ct_implicit", "multiframe", "rle", "sr"],
)
def test_dsec08_the_broken_corpus_is_built_from_valid_data_sets(tmp_path: Path, valid: object) -> None:
    base = valid()  # type: ignore[operator]
    case = base.case("unchanged", base.body, None)
    path = tmp_path / "valid.dcm"
    path.write_bytes(case.part10())
    validate.check_file(path)
    dcmread(path)  # and pydicom reads it


# -- Image Pixel length rules ----------------------------------------------------------------------------------------
def _image(tmp_path: Path, pixels: bytes, **attrs: object) -> Path:
    ds = synthetic.base(synthetic.SECONDARY_CAPTURE, modality="OT")
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.Rows, ds.Columns = 1, "MONOCHROME2", 4, 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = pixels
    path = tmp_path / f"img-{len(list(tmp_path.iterdir()))}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _refused(path: Path) -> str:
    with pytest.raises(BrokenDataset) as err:
        validate.check_file(path)
    return err.value.code


def test_dsec08_single_bit_multiframe_rounds_up_and_pads(tmp_path: Path) -> None:
    one_bit = {"Rows": 5, "Columns": 5, "NumberOfFrames": 2, "BitsAllocated": 1, "BitsStored": 1, "HighBit": 0}
    validate.check_file(_image(tmp_path, bytes(7) + b"\0", **one_bit))  # 50 bits → 7 bytes → 8
    assert _refused(_image(tmp_path, bytes(6), **one_bit)) == "dataset_pixel_length"


@pytest.mark.parametrize(
    ("photometric", "good", "bad"),
    [("YBR_FULL_422", 4 * 4 * 2, 4 * 4 * 3), ("YBR_PARTIAL_422", 4 * 4 * 2, 4 * 4 * 3), ("YBR_PARTIAL_420", 24, 32)],
)
def test_dsec08_subsampled_ybr_lengths(tmp_path: Path, photometric: str, good: int, bad: int) -> None:
    attrs = {"SamplesPerPixel": 3, "PhotometricInterpretation": photometric, "PlanarConfiguration": 0}
    validate.check_file(_image(tmp_path, bytes(range(good)), **attrs))
    # full-resolution samples under a sub-sampled label: refused, even though shorter than a whole frame more
    assert _refused(_image(tmp_path, bytes(range(bad)), **attrs)) == "dataset_pixel_length"


def test_dsec08_zero_padding_under_one_frame_passes_anything_else_is_refused(tmp_path: Path) -> None:
    frames = {"NumberOfFrames": 2}
    validate.check_file(_image(tmp_path, bytes(range(32)) + bytes(8), **frames))  # 8 zero bytes: padding
    assert _refused(_image(tmp_path, bytes(range(32)) + bytes(16), **frames)) == "dataset_pixel_length"  # a frame
    assert _refused(_image(tmp_path, bytes(range(32)) + b"\1" * 8, **frames)) == "dataset_pixel_length"  # data
    assert _refused(_image(tmp_path, bytes(range(30)), **frames)) == "dataset_pixel_length"  # short


@pytest.mark.parametrize(("keyword", "vr", "size"), [("FloatPixelData", "OF", 4), ("DoubleFloatPixelData", "OD", 8)])
def test_dsec08_float_pixel_data_lengths(tmp_path: Path, keyword: str, vr: str, size: int) -> None:
    for n, ok in ((16 * size, True), (16 * size - size, False)):
        ds = synthetic.base(synthetic.SECONDARY_CAPTURE, modality="OT")
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.Rows, ds.Columns = 1, "MONOCHROME2", 4, 4
        ds.BitsAllocated = 8 * size
        ds.add_new(validate._FLOAT_PIXEL_DATA if vr == "OF" else validate._DOUBLE_PIXEL_DATA, vr, bytes(n))
        path = tmp_path / f"{keyword}-{n}.dcm"
        ds.save_as(path, enforce_file_format=True)
        if ok:
            validate.check_file(path)
        else:
            assert _refused(path) == "dataset_pixel_length"


def test_dsec08_icon_pixel_data_checked_against_its_own_attributes(tmp_path: Path) -> None:
    def with_icon(icon_len: int) -> Path:
        icon = Dataset()
        icon.SamplesPerPixel, icon.PhotometricInterpretation, icon.Rows, icon.Columns = 1, "MONOCHROME2", 2, 2
        icon.BitsAllocated, icon.BitsStored, icon.HighBit, icon.PixelRepresentation = 8, 8, 7, 0
        icon.PixelData = bytes(icon_len)
        ds = synthetic.image(synthetic.base(synthetic.SECONDARY_CAPTURE, modality="OT"))
        ds.IconImageSequence = Sequence([icon])
        path = tmp_path / f"icon-{icon_len}.dcm"
        ds.save_as(path, enforce_file_format=True)
        return path

    validate.check_file(with_icon(4))
    assert _refused(with_icon(8)) == "dataset_pixel_length"


def test_dsec08_image_without_pixel_data_refused_header_only_file_passes(tmp_path: Path) -> None:
    ds = synthetic.image(synthetic.base(synthetic.CT_IMAGE, modality="CT"))
    del ds.PixelData
    ds.save_as(tmp_path / "no-pixels.dcm", enforce_file_format=True)
    assert _refused(tmp_path / "no-pixels.dcm") == "dataset_content_missing"  # Rows, no Pixel Data
    header_only = TEST_FILES / "dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000000"  # CT, no Rows
    validate.check_file(header_only)
    pdf = synthetic.encapsulated_pdf(tmp_path / "doc.dcm")
    validate.check_file(pdf)
    ds = dcmread(pdf)
    del ds.EncapsulatedDocument
    ds.save_as(tmp_path / "no-doc.dcm", enforce_file_format=True)
    assert _refused(tmp_path / "no-doc.dcm") == "dataset_content_missing"


# -- nesting, deflate, values, reads ---------------------------------------------------------------------------------
def _nested_file(tmp_path: Path, depth: int) -> Path:
    case = broken.ct().case("nested", broken._nested(depth), None)
    path = tmp_path / f"nested-{depth}.dcm"
    path.write_bytes(case.part10())
    return path


def test_dsec08_nesting_limit(tmp_path: Path) -> None:
    validate.check_file(_nested_file(tmp_path, validate.MAX_DEPTH - 1))
    assert _refused(_nested_file(tmp_path, validate.MAX_DEPTH + 1)) == "dataset_nesting"
    assert _refused(_nested_file(tmp_path, 10_000)) == "dataset_nesting"  # SECURITY.md §C1: no recursion error


def test_dsec09_deflate_bomb_refused(tmp_path: Path) -> None:
    """A deflated data set expanding beyond 100× (and past 1 MiB) is refused before it is walked."""
    ds = synthetic.image(synthetic.base(synthetic.SECONDARY_CAPTURE, modality="OT"), rows=2048, cols=2048)
    ds.PixelData = bytes(2048 * 2048)  # 4 MiB of zeros: deflates ~1000×
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"
    path = tmp_path / "bomb.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert os.path.getsize(path) < 64 * 1024
    with pytest.raises(BrokenDataset) as err:
        validate.check_file(path)
    assert err.value.code == "dataset_transfer_syntax"
    validate.check_file(TEST_FILES / "image_dfl.dcm")  # pydicom's deflated image (~20×): fine


def test_dsec08_collected_values_are_the_raw_top_level_values() -> None:
    for name in ("CT_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "test-SR.dcm"):
        ds = dcmread(TEST_FILES / name)
        _, found = validate.check_file(TEST_FILES / name, collect=[0x00100010, 0x00080018, 0x00200013])
        assert found[0x00080018].rstrip(b"\0 ").decode() == ds.SOPInstanceUID
        assert found[0x00100010].rstrip(b" ").decode("latin-1") == str(ds.PatientName)
        assert 0x00200013 not in found or int(found[0x00200013]) == ds.InstanceNumber
    # nested values are not collected: test-SR.dcm's content tree holds (0040,A160) TextValue at depth ≥ 1
    _, found = validate.check_file(TEST_FILES / "test-SR.dcm", collect=[0x0040A160])
    assert 0x0040A160 not in found


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


def test_dsec08_long_values_are_skipped_not_read(tmp_path: Path) -> None:
    """A 100 MiB native multi-frame is checked by reading a few KiB: the pixel data is never read."""
    ds = synthetic.base(broken.SC_WORD, modality="OT")
    ds.Rows = ds.Columns = 512
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.NumberOfFrames = 1, "MONOCHROME2", 200
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / "big.dcm"
    ds.save_as(path, enforce_file_format=True)
    with open(path, "ab") as fh:  # the Pixel Data element, streamed
        fh.write(b"\xe0\x7f\x10\x00OW\0\0" + struct.pack("<I", 200 * 512 * 512 * 2))
        for _ in range(200):
            fh.write(bytes(512 * 512 * 2))
    before = _rchar()
    validate.check_file(path)
    assert _rchar() - before < 256 * 1024
    with open(path, "r+b") as fh:  # cut at 90 %
        fh.truncate(os.path.getsize(path) * 9 // 10)
    before = _rchar()
    assert _refused(path) == "dataset_truncated"
    assert _rchar() - before < 256 * 1024


def test_dsec08_deflated_bytes_are_walked_like_a_file() -> None:
    raw = (TEST_FILES / "image_dfl.dcm").read_bytes()
    offset = 144 + struct.unpack_from("<I", raw, 140)[0]
    body = zlib.decompress(raw[offset:], -zlib.MAX_WBITS)
    validate.check_bytes(body, "1.2.840.10008.1.2.1")
    with pytest.raises(BrokenDataset):
        validate.check_bytes(body[:-5], "1.2.840.10008.1.2.1")
