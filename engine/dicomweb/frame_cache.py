"""Decoded frames kept for the next request (WADO-RS frames served uncompressed from compressed data; issue 16).

Keyed by (SOP Instance UID, frame number); each entry remembers the stored file it was decoded from. Stored files
are content-addressed (engine/imaging/storage.py): an instance that changes (a corrected copy stored again under the
same SOP Instance UID) has another path, so an entry whose path is not the instance's current one is a miss and is
dropped — a changed instance is never served from the cache. Bounded by bytes (`config.dicomweb_frame_cache_mb`,
0 = off), least recently used out first. Only decoded frames are kept: frames sent as stored are one pread away.

What it saves: decoding (~2 ms of CPU for a 512×512 16-bit JPEG-lossless slice in a sandbox worker, plus the
worker round trip) when a study is read again within the cache's reach — the report window and the viewer window
loading the same series, a second doctor, a reopened study. A series larger than the cache read again in the same
order finds nothing (LRU), as any LRU would.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from engine import config

Key = tuple[str, int]  # (SOP Instance UID, 1-based frame number)


class FrameCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Key, tuple[str, str, bytes]] = OrderedDict()  # key → (path, PI, pixels)
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, sop: str, frame: int, path: str) -> tuple[str, bytes] | None:
        """(Photometric Interpretation, native bytes) of `frame` decoded from `path`, or None."""
        with self._lock:
            found = self._items.get((sop, frame))
            if found is None or found[0] != path:
                if found is not None:  # decoded from another copy of the instance: stale
                    self._drop((sop, frame))
                self.misses += 1
                return None
            self._items.move_to_end((sop, frame))
            self.hits += 1
            return found[1], found[2]

    def put(self, sop: str, frame: int, path: str, pi: str, data: bytes) -> None:
        if len(data) > self.capacity:
            return
        with self._lock:
            self._drop((sop, frame))
            self._items[(sop, frame)] = (path, pi, data)
            self._size += len(data)
            while self._size > self.capacity and self._items:
                _key, (_p, _pi, gone) = self._items.popitem(last=False)
                self._size -= len(gone)

    def _drop(self, key: Key) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._size -= len(old[2])

    @property
    def size(self) -> int:
        return self._size

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


_cache: FrameCache | None = None
_lock = threading.Lock()


def cache() -> FrameCache | None:
    """The process-wide cache sized by `config.dicomweb_frame_cache_mb`, or None when that is 0 (off)."""
    global _cache
    capacity = config.current().dicomweb_frame_cache_mb * 1024 * 1024
    if capacity <= 0:
        return None
    with _lock:
        if _cache is None or _cache.capacity != capacity:
            _cache = FrameCache(capacity)
        return _cache
