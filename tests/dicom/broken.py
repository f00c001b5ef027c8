"""The broken-data-set corpus of issue 12 §1 (REQ: DSEC-05, DSEC-08; SECURITY.md §C1 "Structure"): each case is a
valid data set (synthetic, or a pydicom test file with fresh UIDs) cut or corrupted in one way, as the bytes a
C-STORE would carry (no File Meta Information), with the refusal code engine/imaging/validate.py gives it.

Offsets come from pydicom's own element generator over the valid encoding, never from the validator under test.
Random-block cases overwrite the middle of a header-heavy data set (a Comprehensive SR, a CT header): bytes
overwritten inside pixel values are not structural and no archive can tell them from the image (that needs a
checksum the protocol does not carry).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from functools import cache
from io import BytesIO

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import data_element_generator
from pydicom.filewriter import write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from tests.dicom import rawpdu, synthetic

CT = synthetic.CT_IMAGE
MR = "1.2.840.10008.5.1.4.1.1.4"
SC = synthetic.SECONDARY_CAPTURE
SC_WORD = "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word Secondary Capture
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
RLE = "1.2.840.10008.1.2.5"

SEQ_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
ITEM_END = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
ITEM = b"\xfe\xff\x00\xe0"


@dataclass(frozen=True)
class Case:
    """One broken data set: what a C-STORE of it carries and what the validator must say (`code`: its machine
    code; None for random blocks, where any `dataset_*` code is right)."""

    name: str
    sop_class: str
    transfer_syntax: str
    sop_instance: str
    body: bytes
    code: str | None

    def part10(self) -> bytes:
        """The case as a Part-10 file: a valid File Meta Information, then the broken data set (sent as-is by
        pynetdicom with STORE_SEND_CHUNKED_DATASET)."""
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = self.sop_class
        meta.MediaStorageSOPInstanceUID = self.sop_instance
        meta.TransferSyntaxUID = self.transfer_syntax
        meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
        buf = BytesIO()
        buf.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(buf, meta, enforce_standard=True)
        return buf.getvalue() + self.body


@dataclass(frozen=True)
class Valid:
    """A valid data set the cases are built from, with the top-level element offsets of its encoding."""

    sop_class: str
    transfer_syntax: str
    sop_instance: str
    body: bytes
    starts: dict[int, tuple[int, int, int]]  # tag -> (element start, value start, value length)

    def start(self, tag: int) -> int:
        return self.starts[tag][0]

    def value(self, tag: int) -> int:
        return self.starts[tag][1]

    def case(self, name: str, body: bytes, code: str | None, syntax: str | None = None) -> Case:
        return Case(name, self.sop_class, syntax or self.transfer_syntax, self.sop_instance, body, code)


def _valid(ds: Dataset, syntax: str) -> Valid:
    explicit = syntax != IMPLICIT_LE
    if syntax in (EXPLICIT_LE, IMPLICIT_LE):
        body = rawpdu.dataset_bytes(ds, explicit=explicit)
    else:  # encapsulated: written as pydicom writes the file, File Meta Information dropped
        buf = BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        raw = buf.getvalue()
        body = raw[144 + struct.unpack_from("<I", raw, 140)[0] :]
    starts: dict[int, tuple[int, int, int]] = {}
    for elem in data_element_generator(BytesIO(body), not explicit, True):
        header = 12 if explicit and elem.VR in ("OB", "OW", "SQ", "UN", "UT", "UC", "UR", "OF", "OD", "OL") else 8
        if isinstance(elem, RawDataElement):
            tell, length = elem.value_tell, elem.length
        else:  # a sequence of undefined length, already parsed
            tell, length = elem.file_tell, 0xFFFFFFFF
        starts[int(elem.tag)] = (tell - header, tell, length)
    return Valid(str(ds.SOPClassUID), syntax, str(ds.SOPInstanceUID), body, starts)


def _item(**values: str) -> Dataset:
    item = Dataset()
    for k, v in values.items():
        setattr(item, k, v)
    return item


@cache
def ct(syntax: str = EXPLICIT_LE) -> Valid:
    """A CT of 32×32 8-bit with a long private OB value, an undefined-length sequence of undefined-length items and
    a defined-length sequence."""
    ds = synthetic.image(synthetic.base(CT, modality="CT"), rows=32, cols=32)
    ds.ImageComments = "synthetic broken-corpus base " * 10
    ds.private_block(0x0009, "TELERAD TEST", create=True).add_new(0x10, "OB", bytes(range(256)) * 64)
    ds.ProcedureCodeSequence = Sequence([_item(CodeValue="CT01", CodingSchemeDesignator="99TEST", CodeMeaning="CT")])
    ref = [_item(ReferencedSOPClassUID=CT, ReferencedSOPInstanceUID=generate_uid()) for _ in range(2)]
    ds.ReferencedImageSequence = Sequence(ref)
    ds["ReferencedImageSequence"].is_undefined_length = True
    for item in ds.ReferencedImageSequence:
        item.is_undefined_length_sequence_item = True
    return _valid(ds, syntax)


@cache
def multiframe() -> Valid:
    """Multi-frame Grayscale Word SC: 3 frames of 16×16 16-bit."""
    ds = synthetic.base(SC_WORD, modality="OT")
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.NumberOfFrames = 1, "MONOCHROME2", 3
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = bytes(i % 251 for i in range(16 * 16 * 2 * 3))
    return _valid(ds, EXPLICIT_LE)


@cache
def rle(name: str = "MR_small_RLE.dcm") -> Valid:
    """A pydicom RLE test file (1 frame, or SC_rgb_rle_2frame.dcm's 2) with fresh UIDs."""
    ds = dcmread(str(get_testdata_file(name)))
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return _valid(ds, RLE)


@cache
def sr() -> Valid:
    """A Comprehensive SR with a content tree of 60 containers × 3 items, some sequences of undefined length."""
    ds = synthetic.base(COMPREHENSIVE_SR, modality="SR")
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = [_item(CodeValue="18748-4", CodingSchemeDesignator="LN", CodeMeaning="Report")]
    content = []
    for i in range(60):
        leaves = [
            _item(RelationshipType="CONTAINS", ValueType="TEXT", TextValue=f"finding {i}.{j} " * 3) for j in range(3)
        ]
        node = _item(RelationshipType="CONTAINS", ValueType="CONTAINER", ContinuityOfContent="SEPARATE")
        node.ConceptNameCodeSequence = [_item(CodeValue=f"F{i}", CodingSchemeDesignator="99TEST", CodeMeaning="F")]
        node.ContentSequence = Sequence(leaves)
        if i % 2:
            node["ContentSequence"].is_undefined_length = True
            for leaf in node.ContentSequence:
                leaf.is_undefined_length_sequence_item = True
        content.append(node)
    ds.ContentSequence = Sequence(content)
    ds["ContentSequence"].is_undefined_length = True
    return _valid(ds, EXPLICIT_LE)


def _patch(body: bytes, at: int, new: bytes) -> bytes:
    return body[:at] + new + body[at + len(new) :]


def _u32(value: int) -> bytes:
    return struct.pack("<I", value)


def _fragments(v: Valid) -> list[tuple[int, int]]:
    """(item start, value length) of the items of v's encapsulated Pixel Data: the offset table, then fragments."""
    pos = v.value(0x7FE00010)
    out = []
    while v.body[pos : pos + 4] == ITEM:
        length = struct.unpack_from("<I", v.body, pos + 4)[0]
        out.append((pos, length))
        pos += 8 + length
    assert v.body[pos : pos + 8] == SEQ_END
    return out


def _nested(depth: int) -> bytes:
    """A CT header with `depth` sequences nested in one another (undefined lengths), then valid pixel data."""
    base = ct()
    inner = b""
    for _ in range(depth):  # (0040,A730) ContentSequence, SQ of undefined length holding one undefined-length item
        inner = b"\x40\x00\x30\xa7SQ\0\0" + _u32(0xFFFFFFFF) + ITEM + _u32(0xFFFFFFFF) + inner + ITEM_END + SEQ_END
    at = base.start(0x7FE00010)
    return base.body[:at] + inner + base.body[at:]  # (0040,A730) sorts before (7FE0,0010) and after group 0028


def _random_block(v: Valid, size: int, seed: int, end: int | None = None) -> bytes:
    rng = random.Random(seed)
    end = len(v.body) if end is None else end
    at = end // 2 - size // 2
    return _patch(v.body, at, bytes(rng.randrange(256) for _ in range(size)))


def cases() -> list[Case]:
    """The corpus: ≥ 25 broken data sets, one per way of breaking a data set (issue 12 §Tests)."""
    c, ci, mf, r1, r2, s = ct(), ct(IMPLICIT_LE), multiframe(), rle(), rle("SC_rgb_rle_2frame.dcm"), sr()
    pixels = c.value(0x7FE00010)
    frame = 16 * 16 * 2
    frags1, frags2 = _fragments(r1), _fragments(r2)
    delim1, delim2 = (f[-1][0] + 8 + f[-1][1] for f in (frags1, frags2))  # where each sequence delimiter starts
    name_at = c.start(0x00100010)
    pid = c.start(0x00100020)
    pid_end = c.start(0x00100030)
    seq = c.starts[0x00081032]  # ProcedureCodeSequence, defined length: (start, value start, length)
    ref = c.starts[0x00081140]  # ReferencedImageSequence, undefined length
    ref_end = c.start(min(t for t in c.starts if t > 0x00081140))  # its sequence delimiter ends the element
    frames_at = mf.value(0x00280008)
    nf = mf.starts[0x00280008]
    out = [
        # -- truncated ---------------------------------------------------------------------------------------
        c.case("cut_inside_element_header", c.body[: name_at + 5], "dataset_truncated"),
        c.case("cut_inside_short_value", c.body[: c.value(0x0020000D) + 10], "dataset_truncated"),
        c.case("cut_inside_sequence_item", c.body[: ref[1] + 30], "dataset_truncated"),
        ci.case("implicit_cut_inside_header", ci.body[: ci.value(0x00100010) + 3], "dataset_truncated"),
        c.case("cut_inside_long_value", c.body[: c.value(0x00091010) + 8000], "dataset_truncated"),
        c.case("cut_inside_native_pixel_data", c.body[: pixels + 500], "dataset_truncated"),
        mf.case("cut_inside_second_frame", mf.body[: mf.value(0x7FE00010) + frame + frame // 2], "dataset_truncated"),
        c.case("cut_before_pixel_data", c.body[: c.start(0x7FE00010)], "dataset_content_missing"),
        r1.case("cut_inside_fragment", r1.body[: frags1[1][0] + 8 + frags1[1][1] // 2], "dataset_truncated"),
        r2.case("cut_between_fragments", r2.body[: frags2[2][0]], "dataset_truncated"),
        r1.case("cut_after_offset_table", r1.body[: frags1[1][0]], "dataset_truncated"),
        r2.case("encapsulated_ends_without_sequence_delimiter", r2.body[:delim2], "dataset_truncated"),
        c.case("trailing_partial_element", c.body + b"\x08\x00\x10", "dataset_truncated"),
        # -- lengths past the end ----------------------------------------------------------------------------
        c.case("short_length_past_end", _patch(c.body, name_at + 6, b"\xf0\xff"), "dataset_truncated"),
        c.case("long_length_past_end", _patch(c.body, c.value(0x00091010) - 4, _u32(0x7FFFFFF0)), "dataset_truncated"),
        r1.case(
            "fragment_length_past_end",
            _patch(r1.body, frags1[-1][0] + 4, _u32(frags1[-1][1] + 0x1000)),
            "dataset_truncated",
        ),
        c.case("item_longer_than_its_sequence", _patch(c.body, seq[1] + 4, _u32(seq[2])), "dataset_length"),
        c.case("sequence_shorter_than_its_item", _patch(c.body, seq[1] - 4, _u32(seq[2] - 4)), "dataset_length"),
        c.case("element_past_its_item", _patch(c.body, seq[1] + 8 + 6, b"\xf0\x00"), "dataset_length"),
        # -- unbalanced delimiters ---------------------------------------------------------------------------
        c.case("sequence_delimiter_missing", c.body[: ref_end - 8] + c.body[ref_end:], "dataset_delimiter"),
        c.case("item_delimiter_missing", c.body[: ref_end - 16] + c.body[ref_end - 8 :], "dataset_delimiter"),
        c.case("stray_sequence_delimiter", c.body[:pid] + SEQ_END + c.body[pid:], "dataset_delimiter"),
        c.case("item_delimiter_with_length", _patch(c.body, ref_end - 12, b"\x04"), "dataset_delimiter"),
        # MR_small_RLE.dcm has Data Set Trailing Padding (FFFC,FFFC) after its Pixel Data
        r1.case(
            "sequence_delimiter_missing_before_next_element",
            r1.body[:delim1] + r1.body[delim1 + 8 :],
            "dataset_pixel_fragments",
        ),
        r1.case(
            "fragment_of_undefined_length",
            _patch(r1.body, frags1[-1][0] + 4, _u32(0xFFFFFFFF)),
            "dataset_pixel_fragments",
        ),
        c.case("sequences_nested_too_deep", _nested(100), "dataset_nesting"),
        # -- native pixel data against its attributes --------------------------------------------------------
        c.case("native_one_byte_short", _patch(c.body, pixels - 4, _u32(32 * 32 - 1))[:-1], "dataset_pixel_length"),
        mf.case(
            "native_one_frame_short",
            _patch(mf.body, mf.value(0x7FE00010) - 4, _u32(2 * frame))[:-frame],
            "dataset_pixel_length",
        ),
        mf.case(
            "native_one_frame_long",
            _patch(mf.body, mf.value(0x7FE00010) - 4, _u32(4 * frame)) + bytes(frame),
            "dataset_pixel_length",
        ),
        c.case(
            "rows_larger_than_the_data",
            _patch(c.body, c.value(0x00280010), struct.pack("<H", 64)),
            "dataset_pixel_length",
        ),
        mf.case("number_of_frames_zero", _patch(mf.body, frames_at, b"0 "), "dataset_pixel_attributes"),
        mf.case(
            "number_of_frames_negative",
            mf.body[: nf[0]] + b"\x28\x00\x08\x00IS\x02\x00-1" + mf.body[nf[1] + nf[2] :],
            "dataset_pixel_attributes",
        ),
        mf.case("number_of_frames_text", _patch(mf.body, frames_at, b"x "), "dataset_pixel_attributes"),
        # -- encapsulated pixel data -------------------------------------------------------------------------
        r2.case(
            "fewer_fragments_than_frames",
            r2.body[: frags2[2][0]] + r2.body[frags2[2][0] + 8 + frags2[2][1] :],
            "dataset_pixel_fragments",
        ),
        r1.case("offset_table_missing", r1.body[: frags1[0][0]] + r1.body[frags1[1][0] :], "dataset_pixel_fragments"),
        r1.case("encapsulated_in_native_syntax", r1.body, "dataset_pixel_encoding", EXPLICIT_LE),
        c.case("native_in_encapsulated_syntax", c.body, "dataset_pixel_encoding", RLE),
        # -- element order and VR ----------------------------------------------------------------------------
        c.case(
            "tags_out_of_order",
            c.body[:pid] + c.body[pid:pid_end].replace(b"\x10\x00\x20\x00", b"\x10\x00\x05\x00", 1) + c.body[pid_end:],
            "dataset_order",
        ),
        c.case("invalid_vr", _patch(c.body, name_at + 4, b"ZZ"), "dataset_vr"),
        # -- random blocks overwriting the middle ------------------------------------------------------------
        s.case("random_16_bytes_mid_sr", _random_block(s, 16, 1), None),
        s.case("random_256_bytes_mid_sr", _random_block(s, 256, 2), None),
        s.case("random_1_kib_mid_sr", _random_block(s, 1024, 3), None),
        s.case("random_4_kib_mid_sr", _random_block(s, 4096, 4), None),
        ci.case("random_64_bytes_mid_implicit_header", _random_block(ci, 64, 5, ci.start(0x00091010)), None),
    ]
    assert len({k.name for k in out}) == len(out)
    return out
