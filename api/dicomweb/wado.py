"""WADO-RS routes (PS3.18 §10.4; REQ: VIEW transport, AC-02, WEB-04; issue 15): instances, metadata, frames, bulk
data, rendered and thumbnail at study, series and instance level. The work is engine/dicomweb's; here the Accept
header is negotiated, the study resolved through the visibility rule (anything invisible answers 404 and writes a
security alert) and the body streamed. The request guard sets `Cache-Control: no-store` on every answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Flask, Response, current_app, g, request

from api.dicomweb import DICOM, DICOM_JSON, blp
from api.dicomweb.qido import case_param
from api.security import current_actor, deny, requires
from engine import audit, uow, visibility
from engine.actor import Actor
from engine.dicomweb import access_audit, compress, decisions, frame_index, metadata, rendered, resolve, wado
from engine.dicomweb import frames as wado_frames
from engine.dicomweb.media import Multipart, NotAcceptable, accepted_syntaxes, multipart_ranges, parse_accept
from engine.errors import DomainError, NotFound, ValidationFailed
from engine.imaging.native import TranscodeError

READ = "image.read"
STUDY = "/studies/<study>"
SERIES = STUDY + "/series/<series>"
INSTANCE = SERIES + "/instances/<sop>"

log = logging.getLogger("telerad.dicomweb")


class Undecodable(DomainError):
    status = 409


# -- visibility --------------------------------------------------------------------------------------------------
def _refs(
    study: str, series: str | None = None, sop: str | None = None, *, pixels: bool = True
) -> list[wado.InstanceRef]:
    """The instances a request names, its study resolved for the caller (engine/dicomweb/resolve.py: `institution=`,
    `case=`, else the latest visible copy — named in X-Telerad-Institution / X-Telerad-Study-Choice), its pixel data
    only for clinical sight (visibility.may_read_pixels: the 系统管理员 lists studies, never reads images), the access
    audited once per principal, study and day (DSEC-10)."""
    actor = current_actor()
    chosen, why = resolve.study_for(actor, study, request.args.get("institution") or None, case_param())
    if pixels and not visibility.may_read_pixels(actor, chosen):
        deny(actor, {"pixel_data": True})
    refs = wado.select_instances(chosen, series, sop)
    access_audit.accessed(actor, chosen, via="wado")
    g.study_audit = {"id": chosen.id, "uid": chosen.study_instance_uid, "patient_id": chosen.patient_id[:64] or None}
    code = resolve.institution_codes({chosen.institution_id}).get(chosen.institution_id, ("", ""))[0]
    g.study_choice = {"X-Telerad-Institution": code, "X-Telerad-Study-Choice": why}
    return refs


def _frame_ref(study: str, series: str, sop: str) -> wado.InstanceRef:
    """`_refs` for one frame request (issue 16): the study's resolution, its pixel-access decision and the series'
    instances are decided once per caller and series and kept for at most `dicomweb_decision_ttl_s` seconds
    (engine/dicomweb/decisions.py: what the key holds, and why logout still ends access at once while a case handed
    back may lag by the TTL). A refusal is never kept. The access audit runs per request, as in `_refs`."""
    if decisions.ttl() <= 0:  # the cache turned off: decided per request, exactly as `_refs`
        return _single(_refs(study, series, sop))
    decision = series_decision(study, series, "实例不存在")
    st = decision.study
    hit = decision.instances.get(sop) if decision.instances is not None else None
    # not listed (a series too large to list, or an instance stored since): asked of the database, as before
    ref = hit or _single(wado.select_instances_of(st.id, st.study_instance_uid, series, sop))
    audit_access(decision)
    return ref


def series_decision(study: str, series: str, missing: str) -> decisions.Decision:
    """The caller's granted decision for a series (frames and pixeldata, issue 16): kept by decisions.py, else
    resolved (engine/dicomweb/resolve.py), its pixel access decided (a refusal: 403, never kept) and its instances
    listed (`missing`: the 404's message when the series is not in the study)."""
    actor = current_actor()
    institution = request.args.get("institution") or None
    case_id = case_param()
    key = decisions.key_of(actor, study, institution, case_id, series)
    decision = decisions.get(key)
    if decision is None:
        chosen, why = resolve.study_for(actor, study, institution, case_id)
        if not visibility.may_read_pixels(actor, chosen):
            deny(actor, {"pixel_data": True})
        try:
            listed: dict[str, wado.InstanceRef] | None = {r.sop_uid: r for r in wado.select_instances(chosen, series)}
        except NotFound as exc:
            raise NotFound("not_found", missing) from exc  # as select_instances says for a named instance
        except ValidationFailed:  # a series too large to list: its instances are looked up per request
            listed = None
        code = resolve.institution_codes({chosen.institution_id}).get(chosen.institution_id, ("", ""))[0]
        found = decisions.StudyKey(chosen.id, chosen.study_instance_uid, chosen.patient_id, chosen.institution_id)
        decision = decisions.Decision(found, why, code, listed)
        decisions.put(key, decision)
    return decision


def audit_access(decision: decisions.Decision) -> None:
    """DSEC-10 per request (once per principal, study and day: access_audit.py) and the request's audit context."""
    st = decision.study
    access_audit.accessed(current_actor(), st, via="wado")
    g.study_audit = {"id": st.id, "uid": st.study_instance_uid, "patient_id": st.patient_id[:64] or None}
    g.study_choice = {"X-Telerad-Institution": decision.code, "X-Telerad-Study-Choice": decision.why}


def _stream(chunks: Iterable[bytes], content_type: str, status: int = 200, **headers: str) -> Response:
    resp = Response(chunks, status=status, content_type=content_type, direct_passthrough=True)
    resp.headers.update(g.get("study_choice") or {})
    resp.headers.update(headers)
    return resp


def _single(refs: list[wado.InstanceRef]) -> wado.InstanceRef:
    return refs[0]


# -- instances ---------------------------------------------------------------------------------------------------
def _retrieve(refs: list[wado.InstanceRef]) -> Response:
    ranges = multipart_ranges(parse_accept(request.headers.get("Accept")), DICOM)
    if not ranges:
        raise NotAcceptable()
    items = wado.plan(refs, accepted_syntaxes(ranges))
    mp = Multipart(DICOM)
    stream = wado.InstanceStream(items, mp)
    study: dict[str, Any] = dict(g.get("study_audit") or {})
    if not stream.start():  # nothing can be sent: an error, never an empty 200
        # a failure event: replayed after the error answer's rollback (engine/audit.py record)
        _audit_failure(current_actor(), study, [(r.sop_uid, ts, str(e)) for r, ts, e in stream.skipped], sent=0)
        raise Undecodable(
            "instance_undecodable",
            "实例无法转换为请求的传输语法",
            {"instances": [r.sop_uid for r, _ts, _e in stream.skipped][:16]},
        )
    headers: dict[str, str] = {}
    missing = len(refs) - len(items)  # PS3.18 §8.6.1: some instances cannot be sent in an acceptable syntax
    if missing:
        headers["Warning"] = f'299 telerad "{missing} instances not available in an acceptable transfer syntax"'
    if stream.skipped:  # known before the status goes out: left out, said so (a second Warning value)
        failed = [(r.sop_uid, ts, str(e)) for r, ts, e in stream.skipped]
        _audit_failure(current_actor(), study, failed, sent=None)
        text = f'299 telerad "{len(failed)} instances could not be converted and were left out"'
        headers["Warning"] = f"{headers['Warning']}, {text}" if missing else text
    resp = _stream(_cut_short_audited(stream.body()), mp.content_type, 206 if headers else 200, **headers)
    resp.call_on_close(stream.close)
    return resp


_FAILED = {  # resource → what went wrong with an instance it names (the audit event's reason)
    "instances": "无法转换为请求的传输语法",
    "metadata": "无法读取",
    "rendered": "无法解码显示",
    "pixeldata": "的帧无法读取或解码",
}


def _audit_failure(
    actor: Actor,
    study: dict[str, Any],
    failed: list[tuple[str, str, str]],
    *,
    sent: int | None,
    resource: str = "instances",
) -> None:
    """DSEC-10: a retrieve that could not send every instance it named (DICOM 110104, outcome failure). `failed`:
    (SOP Instance UID, transfer syntax or media type, error); `sent`: how many went out before the body was cut
    short, None when they were left out before it began (206); `resource`: instances, metadata or rendered."""
    audit.record(
        actor,
        "dicomweb_retrieve_failed",
        outcome="failure",
        object_type="dicom_study",
        object_id=study.get("id"),
        patient_id=study.get("patient_id"),
        reason=("响应中途中断" if sent else "实例未能发送") + f"：{len(failed)} 个实例{_FAILED[resource]}",
        details={
            "study_instance_uid": study.get("uid"),
            "resource": resource,
            "instances": [{"sop_instance_uid": u, "transfer_syntax": ts, "error": e[:200]} for u, ts, e in failed[:16]],
            "sent_before_failure": sent,
            "dicom_event": "110104",
        },
    )


def _cut_short_audited(body: Iterator[bytes], resource: str = "instances") -> Iterator[bytes]:
    """`body`; when an instance fails after it began (wado.InstanceFailed), logged and audited in a unit of work of
    its own (the request's ended when the headers went out), then re-raised: the WSGI server drops the connection
    rather than ending the message, and the closing boundary (or bracket) never goes out. Called in the request:
    the app, the actor and the study are taken now, the body runs after the request context is gone."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    actor, study = current_actor(), dict(g.get("study_audit") or {})

    def run() -> Iterator[bytes]:
        try:
            yield from body
        except wado.InstanceFailed as exc:
            log.error("WADO-RS %s: study %s cut short after %d: %s", resource, study.get("uid"), exc.sent, exc)
            with app.app_context():
                try:
                    with uow.unit_of_work():
                        failed = [(exc.ref.sop_uid, exc.ts, str(exc.error))]
                        _audit_failure(actor, study, failed, sent=exc.sent, resource=resource)
                except Exception:  # noqa: BLE001 — the stream is cut short whatever the audit does
                    log.exception("WADO-RS: the failure could not be audited")
            raise

    return run()


@blp.get(STUDY)
@requires(READ)
def retrieve_study(study: str) -> Response:
    return _retrieve(_refs(study))


@blp.get(SERIES)
@requires(READ)
def retrieve_series(study: str, series: str) -> Response:
    return _retrieve(_refs(study, series))


@blp.get(INSTANCE)
@requires(READ)
def retrieve_instance(study: str, series: str, sop: str) -> Response:
    return _retrieve(_refs(study, series, sop))


# -- metadata ----------------------------------------------------------------------------------------------------
def _metadata(refs: list[wado.InstanceRef]) -> Response:
    ranges = parse_accept(request.headers.get("Accept"))
    if not any(r.matches(DICOM_JSON) or r.media == "application/json" for r in ranges):
        raise NotAcceptable()
    base = request.host_url.rstrip("/") + (blp.url_prefix or "")
    # issue 16: each file's JSON built once and kept (engine/dicomweb/metadata.py), read before the answer starts
    body = _cut_short_audited(wado.stream_metadata(refs, base, metadata.templates(refs)), "metadata")
    if not compress.accepts_gzip(request.headers.get("Accept-Encoding")):
        return _stream(body, DICOM_JSON, Vary="Accept-Encoding")
    return _stream(compress.gzip_chunks(body), DICOM_JSON, Vary="Accept-Encoding", **{"Content-Encoding": "gzip"})


@blp.get(STUDY + "/metadata")
@requires(READ)
def study_metadata(study: str) -> Response:
    return _metadata(_refs(study, pixels=False))


@blp.get(SERIES + "/metadata")
@requires(READ)
def series_metadata(study: str, series: str) -> Response:
    return _metadata(_refs(study, series, pixels=False))


@blp.get(INSTANCE + "/metadata")
@requires(READ)
def instance_metadata(study: str, series: str, sop: str) -> Response:
    return _metadata(_refs(study, series, sop, pixels=False))


# -- frames ------------------------------------------------------------------------------------------------------
def _frame_parts(
    results: list[tuple[bool, bytes | str]], numbers: list[int], mp: Multipart, media: str
) -> tuple[Iterator[bytes], list[int]]:
    failed = [n for n, (ok, _v) in zip(numbers, results, strict=True) if not ok]

    def body() -> Iterator[bytes]:
        for ok, value in results:
            if ok and isinstance(value, bytes):
                yield from mp.part([value], media)
        yield mp.close()

    return body(), failed


@blp.get(INSTANCE + "/frames/<frame_list>")
@requires(READ)
def retrieve_frames(study: str, series: str, sop: str, frame_list: str) -> Response:
    numbers = wado_frames.parse_frame_list(frame_list)
    ref = _frame_ref(study, series, sop)
    header = frame_index.index_of(ref.path)  # read once per stored file
    wado_frames.check_frames(header, numbers)
    how = wado_frames.plan_frames(wado_frames.frame_ranges(parse_accept(request.headers.get("Accept"))), header.ts)
    try:
        _pi, results = wado_frames.get_frames(ref, header, numbers, how)
    except TranscodeError as exc:
        raise Undecodable("frame_undecodable", f"帧无法解码：{exc}"[:300]) from exc
    mp = Multipart(how.media)
    body, failed = _frame_parts(results, numbers, mp, f"{how.media}; transfer-syntax={how.ts}")
    if len(failed) == len(numbers):
        raise Undecodable("frame_undecodable", "请求的帧均无法解码", {"frames": failed[:16]})
    ctype = mp.content_type
    if failed:  # PS3.18 §8.6.1: 206 with a Warning naming what is missing
        warning = f'299 telerad "frames {",".join(map(str, failed[:32]))} could not be decoded"'
        return _stream(body, ctype, 206, Warning=warning)
    return _stream(body, ctype)


# -- bulk data ---------------------------------------------------------------------------------------------------
def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, stop) of a single `bytes=a-b` / `bytes=a-` / `bytes=-n` range; None when absent.

    Raises:
        RangeNotSatisfiable: a range past the end, several ranges, or not a bytes range.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        raise RangeNotSatisfiable(size)
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            n = int(last)
            start, stop = max(0, size - n), size
        else:
            start = int(first)
            stop = min(size, int(last) + 1) if last else size
    except ValueError:
        raise RangeNotSatisfiable(size) from None
    if start >= size or stop <= start:
        raise RangeNotSatisfiable(size)
    return start, stop


class RangeNotSatisfiable(DomainError):
    status = 416

    def __init__(self, size: int) -> None:
        super().__init__("range_not_satisfiable", "请求的字节范围无效或超出数据长度", {"size": size})


@blp.get(INSTANCE + "/bulkdata/<path:tag_path>")
@requires(READ)
def retrieve_bulkdata(study: str, series: str, sop: str, tag_path: str) -> Response:
    # every bulk value is clinical content, not only the top-level Pixel Data: pixel data nested in a sequence (an
    # icon image), float pixel data, encapsulated documents, waveforms, overlays (REQ: AC-02, the 系统管理员 reads
    # headers, never images)
    ref = _single(_refs(study, series, sop))
    bulk = wado.bulk_value(ref, tag_path)
    ranges = parse_accept(request.headers.get("Accept"))
    octet = wado_frames.OCTET
    multipart = bool(multipart_ranges(ranges, octet)) and not any(r.media == octet for r in ranges[:1])
    if not multipart and not any(r.matches(octet) for r in ranges):
        raise NotAcceptable()
    span = _byte_range(request.headers.get("Range"), bulk.size)
    start, stop = span or (0, bulk.size)
    headers = {"Accept-Ranges": "bytes"}
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{bulk.size}"
    status = 206 if span is not None else 200
    if not multipart:
        headers["Content-Length"] = str(stop - start)
        return _stream(bulk.chunks(start, stop), octet, status, **headers)
    mp = Multipart(octet)
    part_headers = {"Content-Range": headers["Content-Range"]} if span is not None else {}

    def body() -> Iterator[bytes]:
        yield from mp.part(bulk.chunks(start, stop), headers=part_headers)
        yield mp.close()

    return _stream(body(), mp.content_type, status, **headers)


# -- rendered and thumbnail --------------------------------------------------------------------------------------
def _render(
    refs: list[wado.InstanceRef], frame: int | None, thumbnail: bool, numbers: list[int] | None = None
) -> Response:
    media = rendered.rendered_media(parse_accept(request.headers.get("Accept")))
    if media is None:
        raise NotAcceptable()
    window = rendered.parse_window(request.args.get("window"))
    viewport = rendered.parse_viewport(request.args.get("viewport"), rendered.THUMBNAIL if thumbnail else None)
    quality = _quality(request.args.get("quality"))
    if thumbnail:  # one representative image: the middle instance of the first series with pixels
        refs = [refs[len(refs) // 2]]

    def one(ref: wado.InstanceRef, number: int) -> bytes:
        header = wado.read_header(ref.path)
        arr, pi = rendered.frame_array(ref, header, number)
        return rendered.render(arr, header.ds, pi, media, window, viewport, quality)

    try:
        if len(refs) == 1 and (numbers is None or len(numbers) == 1):
            image = one(refs[0], (numbers or [frame or 1])[0])
            return _stream([image], media, 200, **{"Content-Length": str(len(image))})
    except TranscodeError as exc:
        raise Undecodable("frame_undecodable", f"图像无法解码：{exc}"[:300]) from exc
    mp = Multipart(media)
    jobs = [(refs[0], n) for n in numbers] if numbers else [(r, 1) for r in refs]

    def body() -> Iterator[bytes]:
        sent = 0
        for ref, number in jobs:
            try:
                image = one(ref, number)
            except NotFound as exc:
                if exc.code == "not_an_image":
                    continue  # an SR, a KO …: not part of a rendered study or series
                raise wado.InstanceFailed(ref, media, exc, sent) from exc
            except (TranscodeError, OSError, ValueError) as exc:  # never a shorter answer that looks complete
                raise wado.InstanceFailed(ref, media, exc, sent) from exc
            yield from mp.part([image])
            sent += 1
        yield mp.close()

    return _stream(_cut_short_audited(body(), "rendered"), mp.content_type)


def _quality(raw: str | None) -> int:
    if raw is None or raw == "":
        return 90
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise ValidationFailed("bad_quality", "图像质量须为 1 到 100 的整数")
    return int(raw)


@blp.get(STUDY + "/rendered")
@requires(READ)
def study_rendered(study: str) -> Response:
    return _render(_refs(study), None, False)


@blp.get(SERIES + "/rendered")
@requires(READ)
def series_rendered(study: str, series: str) -> Response:
    return _render(_refs(study, series), None, False)


@blp.get(INSTANCE + "/rendered")
@requires(READ)
def instance_rendered(study: str, series: str, sop: str) -> Response:
    return _render(_refs(study, series, sop), 1, False)


@blp.get(INSTANCE + "/frames/<frame_list>/rendered")
@requires(READ)
def frames_rendered(study: str, series: str, sop: str, frame_list: str) -> Response:
    numbers = wado_frames.parse_frame_list(frame_list)
    refs = _refs(study, series, sop)
    wado_frames.check_frames(wado.read_header(refs[0].path), numbers)  # 404 before the body, as for frames
    return _render(refs, None, False, numbers)


def _thumbnail_refs(refs: list[wado.InstanceRef]) -> list[wado.InstanceRef]:
    first_series = next((r.series_uid for r in refs if r.sop_class not in _NON_IMAGE), refs[0].series_uid)
    return [r for r in refs if r.series_uid == first_series]


_NON_IMAGE = frozenset(
    {"1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33"}
)


@blp.get(STUDY + "/thumbnail")
@requires(READ)
def study_thumbnail(study: str) -> Response:
    return _render(_thumbnail_refs(_refs(study)), 1, True)


@blp.get(SERIES + "/thumbnail")
@requires(READ)
def series_thumbnail(study: str, series: str) -> Response:
    return _render(_refs(study, series), 1, True)


@blp.get(INSTANCE + "/thumbnail")
@requires(READ)
def instance_thumbnail(study: str, series: str, sop: str) -> Response:
    return _render(_refs(study, series, sop), 1, True)


@blp.get(INSTANCE + "/frames/<frame_list>/thumbnail")
@requires(READ)
def frames_thumbnail(study: str, series: str, sop: str, frame_list: str) -> Response:
    numbers = wado_frames.parse_frame_list(frame_list)
    return _render(_refs(study, series, sop), numbers[0], True, numbers[:1])
