"""WADO-URI (PS3.18 §9; issue 15): `GET /dicomweb/wado?requestType=WADO&studyUID=…&seriesUID=…&objectUID=…` with
`contentType` application/dicom (the instance, as stored when `transferSyntax` names the stored syntax, else explicit
VR little endian) or image/jpeg / image/png (rendered: `frameNumber`, `windowCenter`/`windowWidth`, `rows`/`columns`,
`imageQuality`). The same engine paths as WADO-RS; the study resolves through the visibility rule (404 otherwise).
"""

from __future__ import annotations

from flask import Response, request

from api.dicomweb import DICOM, blp
from api.dicomweb.wado import Undecodable, _refs, _stream
from api.security import requires
from engine.dicomweb import rendered, wado
from engine.dicomweb.media import EXPLICIT_VR_LE, NotAcceptable
from engine.errors import ValidationFailed
from engine.imaging.native import TranscodeError


def _arg(name: str, required: bool = False) -> str | None:
    value = (request.args.get(name) or "").strip() or None
    if required and value is None:
        raise ValidationFailed("missing_parameter", f"缺少参数 {name}", {"parameter": name})
    if value is not None and len(value) > 64:
        raise ValidationFailed("bad_parameter", f"参数 {name} 过长", {"parameter": name})
    return value


def _int(name: str, low: int, high: int) -> int | None:
    raw = _arg(name)
    if raw is None:
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValidationFailed("bad_parameter", f"参数 {name} 须为 {low} 到 {high} 的整数", {"parameter": name})
    return int(raw)


@blp.get("/wado")
@requires("image.read")
def wado_uri() -> Response:
    if _arg("requestType", required=True) != "WADO":
        raise ValidationFailed("bad_request_type", "requestType 必须为 WADO")
    study, series, sop = (_arg(name, True) or "" for name in ("studyUID", "seriesUID", "objectUID"))
    if _arg("anonymize") is not None:
        raise ValidationFailed("anonymize_unsupported", "不支持 anonymize 参数")
    ref = _refs(study, series, sop)[0]
    content_types = [c.strip().split(";")[0].lower() for c in (_arg("contentType") or "").split(",") if c.strip()]
    header = wado.read_header(ref.path)
    if not content_types:
        content_types = ["image/jpeg" if header.pixel_offset is not None else DICOM]
    for media in content_types:
        if media == DICOM:
            return _instance(ref)
        if media in (rendered.JPEG, rendered.PNG) and header.pixel_offset is not None:
            return _image(ref, header, media)
    raise NotAcceptable(details={"contentType": content_types[:8]})


def _instance(ref: wado.InstanceRef) -> Response:
    """The instance as stored when `transferSyntax` names the stored syntax (or `*`), else explicit VR little
    endian (PS3.18 §9.1.2.1.x: the default), decoded in the sandbox when stored compressed.

    Raises:
        NotAcceptable: the instance cannot be sent in the named syntax (telerad never compresses).
    """
    [(ref, ts)] = wado.plan([ref], [_arg("transferSyntax") or EXPLICIT_VR_LE])
    if ts == ref.ts:
        return _stream(wado.file_chunks(ref.path), DICOM)
    out = wado.outgoing((ref, ts))  # converted before the status goes out: a failure answers an error
    if isinstance(out, Exception) or out.data is None:
        raise Undecodable("instance_undecodable", f"实例无法转换：{out}"[:300])
    data = wado.part10(ref, out.ts, out.data)
    return _stream([data], DICOM, 200, **{"Content-Length": str(len(data))})


def _image(ref: wado.InstanceRef, header: wado.Header, media: str) -> Response:
    frame = _int("frameNumber", 1, 65535) or 1
    center, width = _arg("windowCenter"), _arg("windowWidth")
    window = rendered.parse_window(f"{center},{width}") if center is not None or width is not None else None
    rows, cols = _int("rows", 1, rendered.MAX_VIEWPORT), _int("columns", 1, rendered.MAX_VIEWPORT)
    viewport = (cols or 1 << 16, rows or 1 << 16) if rows or cols else None
    quality = _int("imageQuality", 1, 100) or 90
    try:
        arr, pi = rendered.frame_array(ref, header, frame)
    except TranscodeError as exc:
        raise Undecodable("frame_undecodable", f"图像无法解码：{exc}"[:300]) from exc
    image = rendered.render(arr, header.ds, pi, media, window, viewport, quality)
    return _stream([image], media, 200, **{"Content-Length": str(len(image))})
