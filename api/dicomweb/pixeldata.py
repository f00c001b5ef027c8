"""WADO-RS Retrieve Pixel Data of a series (PS3.18 §10.4.1.1.5; issue 16; REQ: VIEW-01, AC-02, DSEC-10, UX R18):
`GET /dicomweb/studies/{study}/series/{series}/pixeldata` — the frames of the series' instances in one streamed
multipart/related answer (engine/dicomweb/pixeldata.py: the parts, their order and forms).

Query: `instances=uid,uid,…` (those instances, in that order) or `offset`/`limit` (a slice of the series' instance
order), plus the usual `institution=` / `case=`. The visibility and pixel-access decision is the frames resource's
(wado.series_decision: the same cache, refusals and 404s), taken once per request; the access audit and the
per-principal rate limit count the request once. The transfer syntax of the frames is negotiated as the frames
route's (engine/dicomweb/negotiate.py, per stored syntax).
"""

from __future__ import annotations

from flask import Response, current_app, g, request

from api.dicomweb import blp
from api.dicomweb.wado import (
    READ,
    SERIES,
    Undecodable,
    _audit_failure,
    _cut_short_audited,
    _stream,
    audit_access,
    series_decision,
)
from api.security import current_actor, requires
from engine.dicomweb import pixeldata
from engine.dicomweb.frames import frame_ranges
from engine.dicomweb.media import Multipart, parse_accept
from engine.dicomweb.wado import InstanceFailed
from engine.errors import NotFound, ValidationFailed


@blp.get(SERIES + "/pixeldata")
@requires(READ)
def series_pixeldata(study: str, series: str) -> Response:
    selection = pixeldata.parse_selection(request.args)
    ranges = frame_ranges(parse_accept(request.headers.get("Accept")))
    decision = series_decision(study, series, "序列不存在")
    audit_access(decision)
    if decision.instances is None:
        raise ValidationFailed("too_many_instances", "序列的实例过多，无法批量获取，请逐帧获取")
    refs = pixeldata.select(decision.instances, selection)
    plans = pixeldata.plan_all(refs, ranges)
    first = next(p for p in plans.values() if p is not None)
    mp = Multipart(first.media)
    base = request.host_url.rstrip("/") + (blp.url_prefix or "")
    stream = pixeldata.FrameStream(refs, plans, mp, base, ranges)
    try:
        started = stream.start()
    except InstanceFailed as exc:  # nothing sent yet: an error answer, audited as the frames' failures are
        current_app.logger.warning("WADO-RS pixeldata: %s", exc)
        failed = [(exc.ref.sop_uid, exc.ts, str(exc.error))]
        _audit_failure(current_actor(), dict(g.study_audit), failed, sent=0, resource="pixeldata")
        raise Undecodable("frame_undecodable", "帧无法读取或解码", {"instances": [exc.ref.sop_uid]}) from exc
    if not started:
        raise NotFound("frame_not_found", "所选实例没有像素数据")
    left_out = len(pixeldata.left_out(refs, plans))
    body = _cut_short_audited(stream.body(), "pixeldata")
    if left_out:  # PS3.18 §8.6.1: some instances cannot be sent in an accepted form
        warning = f'299 telerad "{left_out} instances not available in an acceptable transfer syntax"'
        response = _stream(body, mp.content_type, 206, Warning=warning)
    else:
        response = _stream(body, mp.content_type)
    response.call_on_close(stream.close)  # the frames read ahead are dropped even when the body is never read
    return response
