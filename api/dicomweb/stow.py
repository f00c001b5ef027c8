"""STOW-RS (PS3.18 §10.5; issue 15): `POST /dicomweb/studies` and `POST /dicomweb/studies/{study}`.

REQ: DSEC-03/04/05/06/08, DCM-02, IMG-06, CLOUD-01. The body is streamed to the store's tmp/ (engine/dicomweb/stow.py)
under this route's own caps, TELERAD_STOW_MAX_BYTES (default 4 GB) and TELERAD_STOW_MAX_PARTS (default 2,500
instances: a 2,000-slice study with room to spare; WEB-06's 100-part cap is for ordinary forms), instead of the
app-wide request limits; then each instance goes through the one receive path, `Receiver.receive`
(engine/imaging/receive.py) — the same validation, durability, duplicates, conflicts, routing and exam matching as a
C-STORE — with the session user or the OAuth client as its source (its institution owns the instances, DSEC-03). The
answer is the Store Instances Response: 200 all stored, 202 some failed, 409 none stored; 413 over either cap
(nothing stored), 415 not multipart/related DICOM.

The browser sends the CSRF header like any unsafe request (api/security.py); bearer clients do not need it.
"""

from __future__ import annotations

import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Response, current_app, g, json, request

from api.dicomweb import DICOM, DICOM_JSON, blp
from api.security import requires
from dicom import receiving, status
from engine import config, uow
from engine.actor import Actor
from engine.dicomweb import stow
from engine.errors import Forbidden, ValidationFailed
from engine.imaging.ingest import CONFLICT, DUPLICATE, IngestState, InstanceMeta, InvalidInstance
from engine.imaging.receive import Receiver
from engine.imaging.source import Source
from engine.imaging.storage import StorageFull

log = logging.getLogger("telerad.dicomweb")

VIA = "stow-rs"
RECEIVE_THREADS = 4  # instances of one request received in parallel (group commit); the SCP's sealer has 8 threads
OAUTH_PREFIX = "oauth:"  # engine/imaging/source.py: an OAuth client's actor is named oauth:<client id>
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def stow_source(actor: Actor) -> Source:
    """Who sends the instances (g.actor): the signed-in user, or the OAuth client of a bearer token — either way
    for its own institution (REQ: DSEC-03).

    Raises:
        Forbidden: the actor is neither (no institution to own the instances).
    """
    # REQ: DSEC-03 — the owning institution is the sender's, never a tag's
    if actor.user_id is not None and actor.institution_id is not None:
        return Source.user(actor, via=VIA)
    name = actor.username or ""
    if name.startswith(OAUTH_PREFIX) and actor.institution_id is not None and actor.institution_code:
        return Source.client(name[len(OAUTH_PREFIX) :], actor.institution_id, actor.institution_code, actor.ip, VIA)
    raise Forbidden("stow_no_institution", "当前身份不属于任何机构，不能上传影像")


def server_body_limit(settings: config.Settings) -> int:
    """The request body limit for the WSGI server (`telerad web`/`run`: waitress's max_request_body_size, 1 GB by
    default): a little over the STOW-RS cap, so a body the cap allows reaches the app. Waitress spools a body to
    disk before the app runs and refuses one declared or sent beyond this limit itself (a plain 413)."""
    return max(settings.stow_max_bytes, settings.max_upload_bytes) + 2 * stow.CHUNK


def prepare_server(app: Any, settings: config.Settings) -> int:
    """For the WSGI server, before any of its threads serves: install the SQLite durable-commit listeners the receive
    path needs (dicom/receiving.py; engine event listeners must not be added while other threads begin
    transactions) and return its request body limit (`server_body_limit`)."""
    receiving.durable_commits(app)
    return server_body_limit(settings)


def _check_request(study: str | None, cap: int) -> bytes:
    """The request before any byte of its body is read: size (declared), media type, boundary, target study."""
    length = request.content_length
    if length is not None and length > cap:
        raise stow.too_large(cap, length)  # answered before a byte of the body is read
    if request.mimetype != "multipart/related":
        raise stow.UnsupportedPart("unsupported_media_type", "STOW-RS 请求必须是 multipart/related")
    part_type = request.mimetype_params.get("type", "").strip().lower()
    if part_type != DICOM:
        raise stow.UnsupportedPart(
            "unsupported_media_type",
            'STOW-RS 只支持 type="application/dicom" 的 multipart/related 请求',
            {"type": part_type[:64]},
        )
    if study is not None and (len(study) > 64 or not _UID.match(study)):
        raise ValidationFailed("bad_study_uid", "路径中的 Study Instance UID 格式不正确", {"study": study[:64]})
    return stow.check_boundary(request.mimetype_params.get("boundary", ""))


def _is_failure(code: int) -> bool:
    """A DIMSE status that is a failure (PS3.7 C.1): 0xA…, 0xC… and the 0x01xx processing failures."""
    return code & 0xF000 in (0xA000, 0xC000) or 0x0100 <= code <= 0x01FF


def _failure(outcome: stow.Outcome, failure: int, reason: str, **details: Any) -> stow.Outcome:
    outcome.failure, outcome.reason, outcome.details = failure, reason, details
    return outcome


def _receive_one(rx: Receiver, state: IngestState, part: stow.Part, study: str | None, conflict: int) -> stow.Outcome:
    """One part through the receive path (the file is consumed); its outcome for the response.

    The UIDs of the response come from the receive path's own header check (`accept`); a part it refuses before
    that is read again for them (pydicom), from a second name kept until then."""
    outcome = stow.Outcome()

    def accept(meta: InstanceMeta) -> None:
        outcome.sop_class_uid, outcome.sop_instance_uid = meta.sop_class_uid, meta.sop_instance_uid
        outcome.study_instance_uid, outcome.series_instance_uid = meta.study_instance_uid, meta.series_instance_uid
        if study is not None and meta.study_instance_uid != study:
            raise InvalidInstance(
                "study_mismatch",
                "实例的 Study Instance UID 与请求路径中的检查不一致，未存储",
                {"study_instance_uid": meta.study_instance_uid, "target_study": study},
            )

    kept = part.path.with_name(part.path.name + ".peek")
    os.link(part.path, kept)
    try:
        try:
            # REQ: DSEC-04/05/06/08, DCM-02, IMG-06 — the one receive path, as for a C-STORE
            result = rx.receive(state, part.path, digest=part.digest, size=part.size, accept=accept)
        finally:
            if not outcome.sop_instance_uid:  # refused before its header was read: read it for the response
                peeked = stow.peek(kept)
                outcome.sop_class_uid, outcome.sop_instance_uid = peeked.sop_class_uid, peeked.sop_instance_uid
                outcome.study_instance_uid = peeked.study_instance_uid
                outcome.series_instance_uid = peeked.series_instance_uid
    except InvalidInstance as exc:
        if exc.code == "study_mismatch":
            return _failure(outcome, status.STORE_DATASET_MISMATCH, exc.message, code=exc.code)
        refused = receiving.refused_status(exc)
        code = int(refused.Status) if not isinstance(refused, int) else refused
        return _failure(outcome, code, exc.message, **{**exc.details, "code": exc.code})
    except StorageFull:
        return _failure(outcome, status.STORE_OUT_OF_RESOURCES, "存储空间不足，未存储", code="disk_full")
    except OSError:
        log.exception("STOW-RS: storage error")
        return _failure(outcome, status.PROCESSING_FAILURE, "存储出错，未存储", code="storage_error")
    finally:
        kept.unlink(missing_ok=True)
    if result.outcome == CONFLICT:
        # kept aside for the 系统管理员 (DSEC-06); answered like a C-STORE with the configured conflict status
        reason = "已有相同 SOP Instance UID 但内容不同的实例，本实例已另存待处理"
        if _is_failure(conflict):
            return _failure(outcome, conflict, reason, code="conflict")
        if conflict != status.SUCCESS:
            outcome.warning, outcome.reason = conflict, reason
    elif result.outcome == DUPLICATE:
        outcome.reason = "相同实例已存储"
    return outcome


@blp.route("/studies", methods=["POST"])
@blp.route("/studies/<study>", methods=["POST"])
@requires("image.write")
def store_instances(study: str | None = None) -> Response:
    """Store Instances (STOW-RS): multipart/related; type="application/dicom"."""
    settings = config.current()
    cap = settings.stow_max_bytes
    boundary = _check_request(study, cap)
    source = stow_source(g.actor)
    # This route's own cap, not MAX_CONTENT_LENGTH: counted while reading (also a chunked body); werkzeug's limit
    # is set beyond it so ours answers first, in Chinese.
    request.max_content_length = cap + stow.CHUNK
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # the one receive path, as the SCP builds it, shared by this process's STOW-RS requests (dicom/receiving.py)
    rx = receiving.shared_receiver(app, settings)
    # The request's own transaction (the guard's session check may have written) ends before the body is read: an
    # upload may take minutes, and on SQLite a write transaction left open would block every other writer (the SCP,
    # the receive path's own units of work below) until it ends.
    uow.commit()
    # each part into the store's tmp/, so that it is linked under its content key atomically
    parts = stow.spool(request.stream.read, boundary, rx.store.tmp_dir, cap, settings.stow_max_parts)
    outcomes = _receive_all(rx, source, parts, study, settings.dicom_conflict_status)
    code, body = stow.response(outcomes, request.host_url.rstrip("/") + (blp.url_prefix or ""), study)
    return Response(json.dumps(body), status=code, mimetype=DICOM_JSON)


def _receive_all(
    rx: Receiver, source: Source, parts: list[stow.Part], study: str | None, conflict: int
) -> list[stow.Outcome]:
    """The parts through the receive path by up to RECEIVE_THREADS threads, so that their rows are group-committed
    together (dicom/groupcommit.py): one transaction and, on SQLite, one WAL sync for several instances. One receipt
    state for the whole request (one audit event per study, as for one association): its caches are only touched by
    the index work, which the group commit runs in one thread at a time (its leader), and restored by it on a
    rollback. Each thread takes a contiguous run of parts; outcomes in the parts' order; the temp files of parts not
    received (an unexpected error) are removed."""
    state = IngestState(source)
    n = min(RECEIVE_THREADS, len(parts))
    runs = [range(len(parts) * i // n, len(parts) * (i + 1) // n) for i in range(n)]
    outcomes: list[stow.Outcome | None] = [None] * len(parts)

    def work(run: range) -> None:
        for i in run:
            try:
                outcomes[i] = _receive_one(rx, state, parts[i], study, conflict)
            except BaseException:
                stow.discard([parts[j] for j in run if j >= i])
                raise

    if n == 1:
        work(runs[0])
    else:
        with ThreadPoolExecutor(n, thread_name_prefix="stow-receive") as pool:
            for future in [pool.submit(work, run) for run in runs]:
                future.result()
    return [o for o in outcomes if o is not None]
