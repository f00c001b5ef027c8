"""The object store (content keys, durability, sweeper) and UID validation, without a network (REQ: DSEC-04/05)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from engine.imaging.storage import ObjectStore, StorageFull, key_for
from engine.imaging.uids import normalise_uid

# SECURITY.md §C1 "UIDs": each must be refused.
BAD_UIDS = [
    "../../../../tmp/pwned",
    "/etc/cron.d/x",
    "1.2.3/../x",
    "1" * 65,
    "1.2.abc",
    "1.02.3",
    "1..2",
    "1.2.",
    "",
    "1.2\x003",
    "１.２",
    "١.٢",
    ".1.2",
]


@pytest.mark.parametrize("uid", BAD_UIDS)
def test_dsec04_bad_uid_refused(uid: str) -> None:
    assert normalise_uid(uid) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1.2.3", "1.2.3"), ("1.2.3\x00", "1.2.3"), ("1.2.3 ", "1.2.3"), ("0.1.0", "0.1.0"), ("1" * 64, "1" * 64)],
)
def test_dsec04_padding_normalised_not_rejected(raw: str, expected: str) -> None:
    assert normalise_uid(raw) == expected


def test_dsec04_store_keys_are_digests_only(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "dicom")
    obj = store.write_stream([b"abc", b"def"])
    assert obj.sha256 == hashlib.sha256(b"abcdef").hexdigest()
    assert obj.key == key_for(obj.sha256) == f"{obj.sha256[:2]}/{obj.sha256}"
    assert store.path(obj.key).read_bytes() == b"abcdef"
    for bad in ["../x", "ab/../../etc/passwd", "/etc/passwd", "ab/" + "0" * 63, "ab/cd/" + "0" * 64]:
        with pytest.raises(ValueError, match="key"):
            store.path(bad)


def test_dsec05_adopt_renames_received_file_and_is_idempotent(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "dicom")
    first = store.tmp_dir / "a.part"
    first.write_bytes(b"x" * 1000)
    obj = store.adopt(first)
    assert not first.exists()
    assert store.verify(obj.key, obj.sha256)
    assert obj.size == 1000
    again = store.tmp_dir / "b.part"
    again.write_bytes(b"x" * 1000)
    assert store.adopt(again) == obj  # identical content → the same key, nothing new
    assert list(store.tmp_dir.iterdir()) == []
    elsewhere = tmp_path / "outside.bin"  # another directory (maybe another filesystem): copied, then removed
    elsewhere.write_bytes(b"y" * 10)
    obj2 = store.adopt(elsewhere)
    assert store.path(obj2.key).read_bytes() == b"y" * 10
    assert not elsewhere.exists()


def test_cry04_verify_detects_a_flipped_byte(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "dicom")
    obj = store.write_stream([b"0123456789"])
    path = store.path(obj.key)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[3] ^= 1
    path.write_bytes(bytes(data))
    assert not store.verify(obj.key, obj.sha256)


def test_dsec05_sweeper_removes_only_old_orphans_and_temp_files(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "dicom")
    kept = store.write_stream([b"indexed"])
    orphan = store.write_stream([b"orphan"])
    young_orphan = store.write_stream([b"young"])
    stale_tmp = store.tmp_dir / "in-stale.part"
    stale_tmp.write_bytes(b"half")
    old = time.time() - 3600
    for p in (store.path(kept.key), store.path(orphan.key), stale_tmp):
        os.utime(p, (old, old))
    asked: list[str] = []

    def referenced(keys: list[str]) -> set[str]:
        asked.extend(keys)
        return {k for k in keys if k == kept.key}

    assert store.sweep(referenced, older_than_s=600) == 2
    assert store.exists(kept.key)
    assert not store.exists(orphan.key)
    assert store.exists(young_orphan.key)  # may be a row being committed right now
    assert not stale_tmp.exists()
    assert young_orphan.key not in asked


def test_rel01_check_space(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "dicom")
    store.check_space(100.1)
    with pytest.raises(StorageFull):
        store.check_space(0.0)


def _received(store: ObjectStore, name: str, data: bytes) -> tuple[Path, str, int]:
    tmp = store.tmp_dir / name
    tmp.write_bytes(data)
    return tmp, hashlib.sha256(data).hexdigest(), len(data)


def test_dsec05_place_links_without_replacing_identical_content(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "dicom")
    first = store.write_stream([b"same bytes"])
    path = store.path(first.key)
    inode = path.stat().st_ino
    old = time.time() - 3600
    os.utime(path, (old, old))
    tmp, digest, size = _received(store, "rx-again.dcm", b"same bytes")
    placed = store.place(tmp, digest, size)
    assert placed == first
    assert path.stat().st_ino == inode  # the durable file stays; the new copy is dropped
    assert path.stat().st_mtime > old + 60  # renewed: a running sweep sees a young file (see the race test below)
    assert not tmp.exists()
    store.make_durable(placed)
    assert store.verify(placed.key, digest)


def test_dsec05_place_replaces_a_short_file_left_by_a_crash(tmp_path: Path) -> None:
    # A crash between place (linked) and make_durable can leave the key's file short; no row ever named it.
    store = ObjectStore(tmp_path / "dicom")
    data = b"0123456789" * 100
    digest = hashlib.sha256(data).hexdigest()
    store.path(key_for(digest)).write_bytes(data[:0])
    tmp, _, size = _received(store, "rx-full.dcm", data)
    placed = store.place(tmp, digest, size)
    store.make_durable(placed)
    assert store.path(placed.key).read_bytes() == data
    assert list(store.tmp_dir.iterdir()) == []


def test_dsec05_sweep_and_place_of_the_same_orphan_never_lose_the_file(tmp_path: Path) -> None:
    """An old orphan is being swept while identical content is placed again (its row about to be committed).

    The sweep holds its lock while it checks the index and removes; the placing thread, blocked meanwhile, then finds
    the file gone and writes its own. Placed first, the renewed mtime keeps the file from the sweep.
    """
    store = ObjectStore(tmp_path / "dicom")
    data = b"orphan content"
    orphan = store.write_stream([data])
    old = time.time() - 3600
    os.utime(store.path(orphan.key), (old, old))
    placed: list[object] = []
    errors: list[BaseException] = []
    tmp, digest, size = _received(store, "rx-same.dcm", data)

    def place() -> None:
        try:
            obj = store.place(tmp, digest, size)
            store.make_durable(obj)
            placed.append(obj)
        except BaseException as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=place)

    def referenced(keys: list[str]) -> set[str]:
        worker.start()  # races the sweep: it blocks on the sweep lock until this batch is done
        time.sleep(0.3)
        assert not placed
        return set()

    assert store.sweep(referenced, older_than_s=600) == 1  # the orphan, swept under the lock
    worker.join(10)
    assert not errors
    assert placed == [orphan]
    assert store.path(orphan.key).read_bytes() == data  # the place after the sweep wrote it again

    # The other order: placed (mtime renewed) before the sweep looks → kept, although no row names it yet.
    os.utime(store.path(orphan.key), (old, old))
    tmp2, _, _ = _received(store, "rx-same-2.dcm", data)
    store.make_durable(store.place(tmp2, digest, size))
    assert store.sweep(lambda keys: set(), older_than_s=600) == 0
    assert store.exists(orphan.key)


def test_dsec04_a_refused_early_link_is_taken_back_unless_identical_content_was_placed_on_it(tmp_path: Path) -> None:
    """A C-STORE hashed while it arrived is linked under its key while it is still being checked (engine/imaging/
    receive.py); a refusal removes that link — but not when an identical, valid receipt has been placed on the same
    key meanwhile (its `place` renewed the mtime), whose row will name the file."""
    store = ObjectStore(tmp_path / "dicom")
    tmp, digest, size = _received(store, "rx-early.dcm", b"early content")
    linked = store.link_new(tmp, digest)
    assert linked is not None
    assert tmp.exists()  # the temp name is kept: the check may still be reading it
    assert store.link_new(tmp, digest) is None  # the key exists now: a second early link does nothing
    store.unlink_new(key_for(digest), linked)
    assert not store.exists(key_for(digest))

    linked = store.link_new(tmp, digest)
    assert linked is not None
    os.utime(store.path(key_for(digest)), ns=(linked, linked - 1_000_000_000))  # written a second earlier
    linked = store.path(key_for(digest)).stat().st_mtime_ns
    tmp2, _, _ = _received(store, "rx-same-valid.dcm", b"early content")
    store.make_durable(store.place(tmp2, digest, size))  # an identical valid receipt reuses the file
    store.unlink_new(key_for(digest), linked)
    assert store.exists(key_for(digest))
    assert store.path(key_for(digest)).read_bytes() == b"early content"
