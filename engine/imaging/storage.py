"""Content-addressed DICOM object store on the filesystem (REQ: DSEC-04, DSEC-05, CRY-04).

Layout under `<storage_dir>/dicom`:
    tmp/                 received bytes being written (same filesystem, so the final rename is atomic)
    ab/<sha256>          one file per distinct content; the key is derived from the digest only. The 256
                         directories are created (and made durable) when the store is opened, so storing an object
                         costs exactly two fsyncs: the file, then its directory after the rename.

No tag value (UIDs included) ever becomes a path part. A file becomes visible under its key only after fsync and an
atomic rename, followed by an fsync of its directory; the index row is committed after that, so a crash leaves at
worst an orphan file (removed by `sweep`), never a row without a file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{64}$")
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str
    size: int


class StorageFull(OSError):
    """The store's filesystem is at or above the configured usage threshold (REQ: REL-01)."""


def key_for(digest: str) -> str:
    """The storage key of a SHA-256 hex digest: `ab/<digest>`."""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError("not a sha256 hex digest")
    return f"{digest[:2]}/{digest}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ObjectStore:
    """The filesystem store. Thread- and process-safe: writers never share a temp file, renames are atomic."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp_dir = self.root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_layout()

    def _prepare_layout(self) -> None:
        marker = self.root / ".layout-v1"
        if marker.exists():
            return
        for i in range(256):
            (self.root / f"{i:02x}").mkdir(exist_ok=True)
        _fsync_dir(self.root)
        marker.touch()

    # -- paths -------------------------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        """The file of a key. Raises ValueError for anything that is not a key (no traversal possible)."""
        if not _KEY.fullmatch(key):
            raise ValueError("invalid storage key")
        return self.root / key

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def open(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def usage_percent(self) -> float:
        st = os.statvfs(self.root)
        total = st.f_blocks * st.f_frsize
        if total == 0:
            return 0.0
        free = st.f_bavail * st.f_frsize
        return 100.0 * (total - free) / total

    def check_space(self, full_percent: float) -> None:
        """Raises StorageFull when usage is at or above `full_percent` (REQ: REL-01)."""
        if self.usage_percent() >= full_percent:
            raise StorageFull(errno.ENOSPC, "存储空间不足")

    # -- writing -----------------------------------------------------------------------------------------------
    def _publish(self, tmp: Path, digest: str, size: int) -> StoredObject:
        key = key_for(digest)
        final = self.root / key
        parent = final.parent
        os.replace(tmp, final)  # identical content may already be there: replacing it with the same bytes is harmless
        _fsync_dir(parent)
        return StoredObject(key, digest, size)

    def write_stream(self, chunks: Iterable[bytes]) -> StoredObject:
        """Write a stream of bytes: hash while writing, fsync, rename into its content key, fsync the directory."""
        h = hashlib.sha256()
        size = 0
        fd, name = _mkstemp(self.tmp_dir)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    h.update(chunk)
                    fh.write(chunk)
                    size += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            return self._publish(tmp, h.hexdigest(), size)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def seal(self, src: Path, digest: str | None = None, size: int | None = None) -> tuple[str, int]:
        """Hash and fsync a received file in `tmp_dir` (it is still in the page cache); returns (sha256, size).

        When the receiver already hashed the bytes while writing them, pass `digest` and `size`: only the fsync
        remains. The file stays in `tmp_dir`: `publish` moves it under its key once the caller has validated it.
        The SCP runs this in a helper thread while it parses the header (hashlib and fsync release the GIL).
        """
        if digest is not None and size is not None:
            fd = os.open(src, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return digest, size
        h = hashlib.sha256()
        size = 0
        with Path(src).open("rb") as fh:
            while True:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    break
                h.update(chunk)
                size += len(chunk)
            os.fsync(fh.fileno())
        return h.hexdigest(), size

    def publish(self, src: Path, digest: str, size: int) -> StoredObject:
        """Rename a sealed file from `tmp_dir` into its content key and fsync the directory (the file is consumed)."""
        src = Path(src)
        if src.parent != self.tmp_dir:
            raise ValueError("only files received into the store's tmp_dir can be published")
        try:
            return self._publish(src, digest, size)
        except BaseException:
            src.unlink(missing_ok=True)
            raise

    def adopt(self, src: Path, offset: int = 0) -> StoredObject:
        """Make a received file durable under its content key (the file is consumed).

        A file in `tmp_dir` (where the SCP receives) is sealed and renamed; elsewhere it is copied through
        `write_stream`. `offset` skips a prefix that is not part of the object.
        """
        src = Path(src)
        if offset == 0 and src.parent == self.tmp_dir:
            try:
                digest, size = self.seal(src)
            except BaseException:
                src.unlink(missing_ok=True)
                raise
            return self.publish(src, digest, size)
        try:
            with src.open("rb") as fh:
                fh.seek(offset)
                return self.write_stream(iter(lambda: fh.read(_CHUNK), b""))
        finally:
            src.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def verify(self, key: str, digest: str) -> bool:
        """Recompute a stored object's digest (REQ: CRY-04)."""
        h = hashlib.sha256()
        with self.open(key) as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                h.update(chunk)
        return h.hexdigest() == digest

    # -- reconciliation ----------------------------------------------------------------------------------------
    def iter_keys(self) -> Iterable[tuple[str, float]]:
        """Every stored key with its mtime."""
        for first in sorted(self.root.iterdir()):
            if not (first.is_dir() and re.fullmatch(r"[0-9a-f]{2}", first.name)):
                continue
            for f in first.iterdir():
                key = f"{first.name}/{f.name}"
                if _KEY.fullmatch(key):
                    try:
                        yield key, f.stat().st_mtime
                    except FileNotFoundError:
                        continue

    def sweep(self, is_referenced: Callable[[list[str]], set[str]], older_than_s: float, batch: int = 500) -> int:
        """Remove temp files and objects without an index row, older than `older_than_s` (REQ: DSEC-05).

        `is_referenced(keys)` returns the subset of `keys` that some index row (instance or conflict) names. The age
        limit keeps a file whose row is being committed right now.
        """
        cutoff = time.time() - older_than_s
        removed = 0
        for f in self.tmp_dir.iterdir():
            try:
                if f.stat().st_mtime < cutoff:
                    f.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        pending: list[str] = []

        def flush() -> int:
            n = 0
            referenced = is_referenced(pending)
            for key in pending:
                if key not in referenced:
                    self.delete(key)
                    n += 1
            pending.clear()
            return n

        for key, mtime in self.iter_keys():
            if mtime < cutoff:
                pending.append(key)
                if len(pending) >= batch:
                    removed += flush()
        if pending:
            removed += flush()
        return removed


def _mkstemp(directory: Path) -> tuple[int, str]:
    return tempfile.mkstemp(dir=directory, prefix="in-", suffix=".part")


def copy_out(store: ObjectStore, key: str, dest: Path) -> None:
    """Copy one stored object to `dest` (tools and tests)."""
    with store.open(key) as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out)
