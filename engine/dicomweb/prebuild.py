"""Metadata templates built by the worker when it drains a study's ingest outbox row (issue 16;
engine/dicomweb/metadata.py, engine/imaging/events.py).

A series' first metadata request used to build every instance's DICOM JSON (1.9 s for a 1,000-slice CT, measured
by bench/bench_metadata.py) while the viewer waited. The receivers stay lean (issue 12: nothing of it on the
C-STORE path, nor in a thread of the receiving process, whose CPU the store benchmark counts): each receipt already
leaves one outbox row per study, and the worker (`telerad worker`, `telerad run`'s worker thread) builds the
study's missing templates after applying it — one query for the study's instances whose content key has no
template, the files read outside any transaction, the templates written in one short one.

A receipt's row is written with its first instance, so a long association is still sending when the worker
drains it: the worker keeps watching such a study (`build_studies`, this process) and builds its newer instances
at each drain until none has come for WATCH_S seconds; a later receipt of the study has a row of its own. What is
left (a crash, a worker restart, a slower sender) the first request builds (metadata.templates): this is an
optimisation, never needed for a correct answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from engine import uow
from engine.dicomweb import metadata
from engine.dicomweb.models import InstanceMetadata
from engine.imaging import targets
from engine.imaging.models import Instance

log = logging.getLogger("telerad.dicomweb")

WATCH_S = 60.0  # a study is re-checked at each drain until no new instance came for this long
WRITE_BATCH = 200  # templates per INSERT transaction (SQLite: the write lock is held briefly)

_watch: dict[int, float] = {}  # study id -> when a drain last saw its row or built one of its templates
_lock = threading.Lock()


def missing_of_study(study_id: int) -> list[tuple[str, int | None]]:
    """(content key, storage target) of the study's instances whose content key has no template — one query."""
    rows = (
        uow.session()
        .execute(
            select(Instance.storage_key, Instance.storage_target_id)
            .outerjoin(InstanceMetadata, InstanceMetadata.storage_key == Instance.storage_key)
            .where(Instance.study_id == study_id, InstanceMetadata.storage_key.is_(None))
            .order_by(Instance.id)
        )
        .all()
    )
    return list({key: target for key, target in rows}.items())  # a key shared by rows: built once


def build_study(study_id: int) -> int:
    """Build and write the templates the study's instances lack (own units of work); how many were written."""
    with uow.unit_of_work():
        todo = [(key, targets.path_of(target, key)) for key, target in missing_of_study(study_id)]
    rows: list[dict[str, Any]] = []
    for key, path in todo:
        try:
            token, doc = metadata.build(path)
        except Exception:  # noqa: BLE001, S112 - unreadable or gone: the request reports it as it always did
            continue
        rows.append({"storage_key": key, "marker": token, "doc": doc})
    for i in range(0, len(rows), WRITE_BATCH):
        with uow.unit_of_work():
            metadata.store(rows[i : i + WRITE_BATCH])
    return len(rows)


def build_studies(study_ids: Iterable[int]) -> int:
    """Build the missing templates of the studies whose outbox rows a drain batch applied, and watch them (they may
    still be receiving); how many templates were written."""
    ids = sorted(set(study_ids))
    now = time.monotonic()
    with _lock:
        for sid in ids:
            _watch[sid] = now
    return _build(ids)


def build_watched(skip: Iterable[int] = ()) -> int:
    """Build the missing templates of the studies watched since an earlier drain (but `skip`: built just now); a
    study is no longer watched once no new instance of it came for WATCH_S seconds."""
    now = time.monotonic()
    skipped = set(skip)
    with _lock:
        for sid in [s for s, seen in _watch.items() if now - seen > WATCH_S]:
            del _watch[sid]
        ids = sorted(set(_watch) - skipped)
    return _build(ids)


def _build(ids: list[int]) -> int:
    built = 0
    for sid in ids:
        try:
            n = build_study(sid)
        except Exception:  # noqa: BLE001 - e.g. SQLite busy: the next drain or the first request builds them
            log.warning("building the metadata templates of study %s failed", sid, exc_info=True)
            continue
        if n:
            with _lock:
                _watch[sid] = time.monotonic()
        built += n
    return built


def forget() -> None:
    """Stop watching every study (tests)."""
    with _lock:
        _watch.clear()
