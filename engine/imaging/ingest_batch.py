"""The index writes of a whole group-commit batch in a few statements (issue 12: PostgreSQL small_4, small_4_new).

dicom/groupcommit.py runs the receipts of several associations in one transaction, one `ingest_instance` after the
other. Each new one-instance study (DX/CR, or a set built that way) cost six round trips there — two existence
SELECTs, the study, series and instance INSERTs and its outbox row — all on the leader's thread while the other
associations waited for the commit: on PostgreSQL the receiver sat in `Connection.wait` for most of a batch (py-spy,
small_4_new). `prepare` resolves the batch's studies, series and instances before the per-instance work runs — one
SELECT and at most one multi-row INSERT … ON CONFLICT DO NOTHING RETURNING per table — and leaves the results in
each receipt's caches (`IngestState.studies`, `series`, `fresh`, `inserted`), which `ingest_instance` consumes; the
outbox rows of the batch are queued and written by `flush` in one executemany. The outcomes are exactly those of the
per-instance path (new, identical resend, conflict, a concurrent association's row), which still runs alone for a
batch of one and whenever a batch is re-run row by row after a failure. The caches are restored by the group commit
when a batch rolls back, so no id from a rolled-back transaction is reused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

from engine import uow
from engine.db import UTCDateTime, utcnow
from engine.imaging import outbox
from engine.imaging.ingest import IngestState, InstanceMeta
from engine.imaging.models import Series, Study
from engine.imaging.storage import StoredObject

Entry = tuple[IngestState, StoredObject, InstanceMeta]

_STUDY_COLUMNS = (
    "institution_id", "study_instance_uid", "patient_id", "patient_name", "patient_birth_date", "patient_sex",
    "study_date", "study_time", "accession_number", "study_description", "study_id", "referring_physician",
    "modalities", "source_node_id", "created_at", "updated_at",
)  # fmt: skip
_SERIES_COLUMNS = (
    "institution_id", "study_id", "series_instance_uid", "modality", "series_number", "body_part",
    "series_description", "created_at",
)  # fmt: skip
_INSTANCE_COLUMNS = (
    "institution_id", "study_id", "series_id", "sop_instance_uid", "sop_class_uid", "transfer_syntax_uid",
    "instance_number", "size", "sha256", "storage_key", "calling_aet", "node_id", "received_at",
)  # fmt: skip
_TIMES = {"created_at", "updated_at", "received_at"}


@cache
def _insert_many(table: str, columns: tuple[str, ...], conflict: str, uid: str, rows: int) -> TextClause:
    """INSERT of `rows` rows that skips conflicts and returns (id, uid) of the rows it inserted — one textual
    statement per table and row count (valid on SQLite ≥ 3.35 and PostgreSQL; compiled once, then cached)."""
    values = ", ".join("(" + ", ".join(f":{c}_{i}" for c in columns) + ")" for i in range(rows))
    stmt = text(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values} "  # noqa: S608 — names are constants
        f"ON CONFLICT ({conflict}) DO NOTHING RETURNING id, {uid}"
    )
    return stmt.bindparams(
        *(bindparam(f"{c}_{i}", type_=UTCDateTime()) for i in range(rows) for c in _TIMES & set(columns))
    )


def _run_many(
    s: Session, table: str, columns: tuple[str, ...], conflict: str, uid: str, rows: list[dict[str, Any]]
) -> dict[str, int]:
    params = {f"{c}_{i}": row[c] for i, row in enumerate(rows) for c in columns}
    return {r[1]: r[0] for r in s.execute(_insert_many(table, columns, conflict, uid, len(rows)), params)}


class BatchIndexer:
    """The group commit's batch hooks (dicom/groupcommit.py): `prepare` before the batch's per-instance work, `flush`
    after it, `discard` when the batch fails."""

    def prepare(self, entries: list[Entry]) -> None:
        s = uow.session()
        outbox.defer(s)
        now = utcnow()
        self._studies(s, entries, now)
        self._series(s, entries, now)
        self._instances(s, entries, now)

    def flush(self) -> None:
        outbox.flush_deferred(uow.session())

    def discard(self) -> None:
        outbox.discard_deferred(uow.session())

    # -- the three tables ----------------------------------------------------------------------------------------
    @staticmethod
    def _studies(s: Session, entries: list[Entry], now: Any) -> None:
        def row(inst_id: int, uid: str, e: Entry) -> dict[str, Any]:
            state, _, m = e
            return {
                "institution_id": inst_id, "study_instance_uid": uid, "patient_id": m.patient_id,
                "patient_name": m.patient_name, "patient_birth_date": m.patient_birth_date,
                "patient_sex": m.patient_sex, "study_date": m.study_date, "study_time": m.study_time,
                "accession_number": m.accession_number, "study_description": m.study_description,
                "study_id": m.study_id, "referring_physician": m.referring_physician,
                "modalities": m.modality, "source_node_id": state.source.node_id,
                "created_at": now, "updated_at": now,
            }  # fmt: skip

        for by_uid, ids, created, _ in _resolve(
            s, entries, lambda m: m.study_instance_uid, lambda st: st.studies, Study, Study.study_instance_uid,
            _STUDY_COLUMNS, row,
        ):  # fmt: skip
            for uid, study_id in created.items():  # created here: the first receipt of it matches it (IMG-06)
                state = by_uid[uid][0][0]
                state.fresh.add(uid)
                state.modalities[study_id] = by_uid[uid][0][2].modality
            for uid, group in by_uid.items():
                for state, _, _ in group:
                    state.studies[uid] = ids[uid]

    @staticmethod
    def _series(s: Session, entries: list[Entry], now: Any) -> None:
        def row(inst_id: int, uid: str, e: Entry) -> dict[str, Any]:
            state, _, m = e
            return {
                "institution_id": inst_id, "study_id": state.studies[m.study_instance_uid],
                "series_instance_uid": uid, "modality": m.modality, "series_number": m.series_number,
                "body_part": m.body_part, "series_description": m.series_description, "created_at": now,
            }  # fmt: skip

        for by_uid, ids, _, missing in _resolve(
            s, entries, lambda m: m.series_instance_uid, lambda st: st.series, Series, Series.series_instance_uid,
            _SERIES_COLUMNS, row,
        ):  # fmt: skip
            for uid in missing:  # ModalitiesInStudy follows a new series (ingest._series_id)
                state, _, m = by_uid[uid][0]
                study_id = state.studies[m.study_instance_uid]
                if state.modalities.get(study_id) != m.modality:
                    mods = sorted(
                        {
                            x
                            for x in s.execute(select(Series.modality).where(Series.study_id == study_id)).scalars()
                            if x
                        }
                    )
                    s.execute(
                        update(Study).where(Study.id == study_id).values(modalities=",".join(mods), updated_at=now)
                    )
                    state.modalities.pop(study_id, None)
            for uid, group in by_uid.items():
                for state, _, m in group:
                    state.series[uid] = (ids[uid], m.modality)

    @staticmethod
    def _instances(s: Session, entries: list[Entry], now: Any) -> None:
        by_inst: dict[int, list[Entry]] = {}
        for e in entries:
            by_inst.setdefault(e[0].source.institution_id, []).append(e)
        for inst_id, group in by_inst.items():
            rows = []
            seen: set[str] = set()
            for state, stored, m in group:
                if m.sop_instance_uid in seen:  # the same instance twice in one batch: the second is a resend
                    continue
                seen.add(m.sop_instance_uid)
                src = state.source
                rows.append({
                    "institution_id": inst_id, "study_id": state.studies[m.study_instance_uid],
                    "series_id": state.series[m.series_instance_uid][0], "sop_instance_uid": m.sop_instance_uid,
                    "sop_class_uid": m.sop_class_uid, "transfer_syntax_uid": m.transfer_syntax_uid,
                    "instance_number": m.instance_number, "size": stored.size, "sha256": stored.sha256,
                    "storage_key": stored.key, "calling_aet": src.calling_aet, "node_id": src.node_id,
                    "received_at": now,
                })  # fmt: skip
            rows.sort(key=lambda r: r["sop_instance_uid"])  # one lock order for concurrent receivers
            ids = _run_many(
                s, "dicom_instance", _INSTANCE_COLUMNS, "institution_id, sop_instance_uid", "sop_instance_uid", rows
            )
            for state, stored, m in group:
                # the row's id, or None: not inserted (a resend or a conflict: ingest_instance reads the existing row)
                key = (m.sop_instance_uid, stored.key)
                if key not in state.inserted:
                    state.inserted[key] = ids.pop(m.sop_instance_uid, None)


Resolved = tuple[dict[str, list[Entry]], dict[str, int], dict[str, int], list[str]]


def _resolve(
    s: Session,
    entries: list[Entry],
    uid_of: Callable[[InstanceMeta], str],
    cache_of: Callable[[IngestState], Mapping[str, Any]],
    model: Any,
    uid_column: Any,
    columns: tuple[str, ...],
    row: Callable[[int, str, Entry], dict[str, Any]],
) -> list[Resolved]:
    """Per institution, the batch's UIDs of one table that the receipts' caches do not hold: (entries by UID, every
    UID's id, the ids this call inserted, the UIDs that did not exist before it). Existing rows by one SELECT, the
    others by one multi-row INSERT in UID order (one lock order for concurrent receivers), and those a concurrent
    receiver inserted first by a second SELECT."""
    wanted: dict[int, dict[str, list[Entry]]] = {}
    for e in entries:
        uid = uid_of(e[2])
        if uid not in cache_of(e[0]):
            wanted.setdefault(e[0].source.institution_id, {}).setdefault(uid, []).append(e)
    out: list[Resolved] = []
    for inst_id, by_uid in wanted.items():
        ids = _existing(s, model, uid_column, inst_id, list(by_uid))
        missing = sorted(uid for uid in by_uid if uid not in ids)
        created: dict[str, int] = {}
        if missing:
            key = uid_column.key
            rows = [row(inst_id, uid, by_uid[uid][0]) for uid in missing]
            created = _run_many(s, model.__tablename__, columns, f"institution_id, {key}", key, rows)
            ids.update(created)
            late = [uid for uid in missing if uid not in ids]
            if late:
                ids.update(_existing(s, model, uid_column, inst_id, late))
        out.append((by_uid, ids, created, missing))
    return out


@cache
def _select_existing(table: str, uid: str) -> TextClause:
    """The ids of the rows of the institution among the given UIDs (textual: the ORM select() with an IN list cost
    more CPU than the INSERT it precedes)."""
    return text(
        f"SELECT {uid}, id FROM {table} WHERE institution_id = :inst_id AND {uid} IN :uids"  # noqa: S608 — constants
    ).bindparams(bindparam("uids", expanding=True))


def _existing(s: Session, model: Any, uid_column: Any, inst_id: int, uids: list[str]) -> dict[str, int]:
    stmt = _select_existing(model.__tablename__, uid_column.key)
    return {uid: row_id for uid, row_id in s.execute(stmt, {"inst_id": inst_id, "uids": uids})}
