"""Compression policies (REQ: IMG-04) run in a resource-limited helper process (DSEC-08): lossless round trips keep
pixel data identical; lossy ones are marked and get a new SOP Instance UID; JPEG baseline for 8-bit via Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.encaps import encapsulate

from engine.imaging import compression
from engine.imaging.storage import ObjectStore
from tests.dicom import synthetic
from tests.dicom.conftest import sample_file

LOSSLESS = ["rle", "jpegls", "j2k", "uncompressed"]


def us_rgb(tmp: Path) -> Path:
    """A US multi-frame RGB image (3 frames, 64×64), 8-bit."""
    ds = synthetic.image(synthetic.base(synthetic.US_MULTIFRAME, modality="US"), rows=64, cols=64, frames=3, samples=3)
    y, x = np.mgrid[0:64, 0:64]
    frames = [np.stack([(x * 4 + f * 10) % 256, (y * 4) % 256, (x + y) * 2 % 256], axis=-1) for f in range(3)]
    ds.PixelData = np.asarray(frames, dtype=np.uint8).tobytes()  # smooth content, like an image
    path = tmp / "us.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def gray8(tmp: Path) -> Path:
    ds = synthetic.image(synthetic.base(synthetic.SECONDARY_CAPTURE, modality="OT"), rows=64, cols=48)
    path = tmp / "gray8.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


SOURCES = {
    "CT_small": lambda tmp: sample_file("CT_small.dcm"),
    "MR_small": lambda tmp: sample_file("MR_small.dcm"),
    "US_rgb_multiframe": us_rgb,
    "gray8": gray8,
}


@pytest.fixture(autouse=True)
def _close_sandbox():  # type: ignore[no-untyped-def]
    yield
    compression.shutdown()


@pytest.mark.parametrize("policy", LOSSLESS)
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_img04_lossless_round_trip_keeps_pixels_identical(tmp_path: Path, source: str, policy: str) -> None:
    src = Path(SOURCES[source](tmp_path))
    out = tmp_path / "out.dcm"
    result = compression.transcode_file(src, out, policy)
    before, after = dcmread(src), dcmread(out)
    assert result.ts == compression.POLICIES[policy].uid == after.file_meta.TransferSyntaxUID
    assert not result.lossy
    assert after.SOPInstanceUID == before.SOPInstanceUID  # a lossless transfer syntax change is the same instance
    assert np.array_equal(after.pixel_array, before.pixel_array)
    assert "LossyImageCompression" not in after


@pytest.mark.parametrize("policy", ["j2k_lossy", "jpegls_near"])
@pytest.mark.parametrize("source", ["CT_small", "US_rgb_multiframe"])
def test_img04_lossy_is_marked_and_is_a_new_instance(tmp_path: Path, source: str, policy: str) -> None:
    src = Path(SOURCES[source](tmp_path))
    out = tmp_path / "out.dcm"
    result = compression.transcode_file(src, out, policy)
    before, after = dcmread(src), dcmread(out)
    assert result.lossy
    assert after.file_meta.TransferSyntaxUID == compression.POLICIES[policy].uid
    assert after.LossyImageCompression == "01"
    assert after.SOPInstanceUID != before.SOPInstanceUID
    # deterministic: the same source and policy give the same derived UID (a re-send is the same instance)
    again = compression.transcode_file(src, tmp_path / "again.dcm", policy)
    assert again.sop_instance_uid == str(after.SOPInstanceUID)
    diff = np.abs(after.pixel_array.astype(np.int32) - before.pixel_array.astype(np.int32))
    assert diff.max() <= (2 if policy == "jpegls_near" else int(before.pixel_array.max()))
    assert diff.mean() < 8


@pytest.mark.parametrize("source", ["US_rgb_multiframe", "gray8"])
def test_img04_jpeg_baseline_for_8_bit_images_via_pillow(tmp_path: Path, source: str) -> None:
    src = Path(SOURCES[source](tmp_path))
    out = tmp_path / "out.dcm"
    compression.transcode_file(src, out, "jpeg_baseline")
    before, after = dcmread(src), dcmread(out)
    assert after.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert after.LossyImageCompressionMethod == "ISO_10918_1"
    assert int(after.get("NumberOfFrames", 1)) == int(before.get("NumberOfFrames", 1))
    decoded = after.pixel_array  # pydicom decodes our encapsulated frames (YBR → RGB)
    assert decoded.shape == before.pixel_array.shape
    assert np.abs(decoded.astype(np.int16) - before.pixel_array.astype(np.int16)).mean() < 12


def test_img04_jpeg_baseline_refuses_16_bit(tmp_path: Path) -> None:
    with pytest.raises(compression.TranscodeError, match="8 位"):
        compression.transcode_file(sample_file("CT_small.dcm"), tmp_path / "out.dcm", "jpeg_baseline")


def test_img04_transcode_to_store_is_content_addressed(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "store")
    stored = compression.transcode_to_store(sample_file("MR_small.dcm"), store, "rle")
    assert stored.ts == "1.2.840.10008.1.2.5"
    assert store.verify(stored.key, stored.sha256)
    assert list(store.tmp_dir.iterdir()) == []


def test_dsec08_decoder_runs_in_limited_helper_process(tmp_path: Path) -> None:
    """A memory limit too small for the decoder fails the transcode cleanly (the caller survives), and a corrupt
    pixel stream is a refusal, not a crash; the next transcode works."""
    tiny = compression.Sandbox(compression.Limits(memory_mb=64, cpu_s=10, wall_s=60))
    try:
        with pytest.raises(compression.TranscodeError):
            tiny.run(sample_file("CT_small.dcm"), tmp_path / "a.dcm", "j2k")
    finally:
        tiny.close()
    bad = dcmread(sample_file("MR_small_jpeg_ls_lossless.dcm"))
    bad.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + b"\x00" * 8])  # a JPEG-LS frame cut after its header
    bad.save_as(tmp_path / "bad.dcm")
    with pytest.raises(compression.TranscodeError):
        compression.transcode_file(tmp_path / "bad.dcm", tmp_path / "b.dcm", "rle")
    slow = compression.Sandbox(compression.Limits(wall_s=0.001))
    try:
        with pytest.raises(compression.TranscodeError, match="超时"):
            slow.run(sample_file("CT_small.dcm"), tmp_path / "d.dcm", "j2k")
    finally:
        slow.close()
    assert compression.transcode_file(sample_file("MR_small.dcm"), tmp_path / "c.dcm", "rle").ts
