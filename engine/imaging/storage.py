"""Content-addressed DICOM object store on the filesystem (REQ: DSEC-04, DSEC-05, CRY-04).

Layout under `<storage_dir>/dicom`:
    tmp/                 received bytes being written (same filesystem, so linking them under their key is atomic)
    ab/<sha256>          one file per distinct content; the key is derived from the digest only. The 256
                         directories are created (and made durable) when the store is opened, so storing an object
                         costs exactly two fsyncs, the file and its directory, after it was linked there.

No tag value (UIDs included) ever becomes a path part. A complete file is linked under its key (`place`, never
replacing what is there), then it and its directory are fsynced (`make_durable`); the index row is committed only
after that, so a crash leaves at worst an orphan file (removed by `sweep`) or a short file no row names (replaced by
the next `place` of that content), never a row without its file.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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
    """The filesystem store. Thread- and process-safe: writers never share a temp file, links are atomic."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp_dir = self.root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_layout()
        os.close(os.open(self.root / ".sweep.lock", os.O_RDWR | os.O_CREAT, 0o600))  # before any receipt: taking a
        # link back (`unlink_new`) must leave nothing new in the store

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
    def place(self, tmp: Path, digest: str, size: int) -> StoredObject:
        """Give a complete file in `tmp_dir` its content key; not durable yet (`make_durable`). The temp name is
        consumed.

        The file is linked under its key, never renamed over it: identical content may already be there, durable and
        indexed, and must not be swapped for bytes that are still only in the page cache. A file already under the key
        is kept when it holds these bytes (size and digest checked), and replaced otherwise: a crash between `place`
        and `make_durable` can leave a short file under a key, and such a file was never indexed.
        """
        key = key_for(digest)
        final = self.root / key
        try:
            os.link(tmp, final)
        except OSError as exc:
            # Already there (or a filesystem without hard links: rename, unless the content is already there).
            if exc.errno not in (errno.EEXIST, errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                raise
            self._reuse_or_replace(tmp, final, digest, size)
            return StoredObject(key, digest, size)
        tmp.unlink(missing_ok=True)
        return StoredObject(key, digest, size)

    def link_new(self, tmp: Path, digest: str) -> int | None:
        """Link a complete file in `tmp_dir` under its content key only if nothing is there yet, keeping the temp
        name (it may still be read); the linked file's mtime in ns, or None when the key exists already (then
        `place` decides later). Used to make a receipt durable while it is still being checked; `unlink_new` takes
        it back if the check refuses it."""
        final = self.root / key_for(digest)
        try:
            os.link(tmp, final)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                raise
            return None
        return os.stat(final).st_mtime_ns

    def unlink_new(self, key: str, mtime_ns: int) -> None:
        """Remove what `link_new` linked, unless identical content has been placed on it since (a `place` of the same
        bytes renews the mtime under the sweep lock; `_reuse_or_replace`): that receipt's row will name it."""
        with self._sweep_lock(fcntl.LOCK_EX):
            try:
                if os.stat(self.path(key)).st_mtime_ns == mtime_ns:
                    self.delete(key)
            except FileNotFoundError:
                return

    def _reuse_or_replace(self, tmp: Path, final: Path, digest: str, size: int) -> None:
        """The key's file may already exist: keep it if it holds these bytes, else put ours there.

        Under the sweep lock (shared): a kept file's mtime is renewed, so a sweep that has not yet removed it — it may
        be an old orphan whose row is about to be committed again — sees a young file and leaves it (`sweep`).
        """
        with self._sweep_lock(fcntl.LOCK_SH):
            if _holds(final, digest, size):
                os.utime(final)
                tmp.unlink(missing_ok=True)
            else:
                os.replace(tmp, final)

    @contextmanager
    def _sweep_lock(self, mode: int) -> Iterator[None]:
        fd = os.open(self.root / ".sweep.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # releases the lock

    def make_durable(self, obj: StoredObject) -> None:
        """fsync a placed file, then its directory (REQ: DSEC-05).

        The data, the inode and the new directory entry all changed before the first fsync, so on a journalling
        filesystem one journal commit carries them; the directory's fsync is what POSIX asks for the name. (In
        isolation that is ~0.2 ms less per small file than fsync, rename, fsync of the directory, which commits the
        journal twice; through the whole C-STORE path the difference was within this machine's noise.)
        """
        final = self.path(obj.key)
        fd = os.open(final, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(final.parent)

    def _publish(self, tmp: Path, digest: str, size: int) -> StoredObject:
        obj = self.place(tmp, digest, size)
        self.make_durable(obj)
        return obj

    def write_stream(self, chunks: Iterable[bytes]) -> StoredObject:
        """Write a stream of bytes: hash while writing, then place it under its content key and make it durable."""
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
            return self._publish(tmp, h.hexdigest(), size)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def digest_of(self, src: Path) -> tuple[str, int]:
        """(sha256, size) of a file, read back (a file just received is still in the page cache).

        The SCP runs this in a helper thread while it parses the header (hashlib releases the GIL).
        """
        return _digest(Path(src))

    def publish(self, src: Path, digest: str, size: int) -> StoredObject:
        """Place a received file from `tmp_dir` under its content key and make it durable (the file is consumed)."""
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

        A file in `tmp_dir` (where the SCP receives) is hashed and placed; elsewhere it is copied through
        `write_stream`. `offset` skips a prefix that is not part of the object.
        """
        src = Path(src)
        if offset == 0 and src.parent == self.tmp_dir:
            try:
                digest, size = self.digest_of(src)
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
        return _digest(self.path(key))[0] == digest

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

    def sweep(
        self,
        is_referenced: Callable[[list[str]], set[str]],
        older_than_s: float,
        batch: int = 500,
        removed_keys: Callable[[list[str]], None] | None = None,
    ) -> int:
        """Remove temp files and objects without an index row, older than `older_than_s` (REQ: DSEC-05).

        `is_referenced(keys)` returns the subset of `keys` that some index row (instance or conflict) names. The age
        limit keeps a file whose row is being committed right now. `removed_keys(keys)`: told the keys of each batch
        removed, under the lock, after `is_referenced` (for what is derived from the files: their metadata rows).
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
            # Exclusive sweep lock: a `place` of identical content either renewed the file's mtime before (it is
            # young now and stays) or finds it gone after, and writes its own (`_reuse_or_replace`).
            gone: list[str] = []
            with self._sweep_lock(fcntl.LOCK_EX):
                referenced = is_referenced(pending)
                for key in pending:
                    if key in referenced:
                        continue
                    try:
                        if self.path(key).stat().st_mtime >= cutoff:
                            continue
                    except FileNotFoundError:
                        continue
                    self.delete(key)
                    gone.append(key)
                if gone and removed_keys is not None:
                    removed_keys(gone)
            pending.clear()
            return len(gone)

        for key, mtime in self.iter_keys():
            if mtime < cutoff:
                pending.append(key)
                if len(pending) >= batch:
                    removed += flush()
        if pending:
            removed += flush()
        return removed


def _digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _holds(path: Path, digest: str, size: int) -> bool:
    """Whether the file at `path` has exactly these bytes (size first: a short file is the usual mismatch)."""
    try:
        return path.stat().st_size == size and _digest(path)[0] == digest
    except FileNotFoundError:
        return False


def _mkstemp(directory: Path) -> tuple[int, str]:
    return tempfile.mkstemp(dir=directory, prefix="in-", suffix=".part")


def copy_out(store: ObjectStore, key: str, dest: Path) -> None:
    """Copy one stored object to `dest` (tools and tests)."""
    with store.open(key) as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out)
