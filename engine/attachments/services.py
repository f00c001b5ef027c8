"""Image uploads: type by content, size and pixel limits, re-encode, encrypt, store (REQ: UP-01..04, PII-04).

The web process only reads an upload's header. Decoding, re-encoding and watermarking run in a fresh worker process
per job with an address-space, CPU-time and wall-clock limit (engine.sandbox, the DSEC-08 rule for decoding): the
memory a 25-megapixel image takes is given back when the worker exits, and an image over the limits is refused
with ``image_too_complex`` while the web process carries on (issue 11).
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import threading
import unicodedata
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from engine import audit, config, sandbox, uow
from engine.accounts.models import User
from engine.actor import Actor
from engine.attachments import pixels
from engine.attachments.models import Attachment
from engine.crypto import FieldCipher
from engine.errors import NotFound, ServiceUnavailable, ValidationFailed
from engine.visibility import get_visible

ALLOWED = {"JPEG": "image/jpeg", "PNG": "image/png"}
# UP-02: Pillow's own bomb guard matches our 25 MP limit (the header check below answers first).
Image.MAX_IMAGE_PIXELS = 25_000_000
MAGIC = {"JPEG": (b"\xff\xd8\xff",), "PNG": (b"\x89PNG\r\n\x1a\n",)}
WATERMARK = "仅用于资质审核"

# REQ: DSEC-08 — the image worker. At the 25 MP cap a worker peaks at ~145 MB of address space for an RGB photo
# and ~350 MB for an RGBA one with a colour profile, and takes 1-3 s of CPU: the limits leave room for that on a
# loaded machine and stop a decoder that runs away.
LIMITS = sandbox.Limits(memory_mb=768, cpu_s=20, wall_s=60)
# forkserver: each worker is forked from a small server process that has Pillow loaded, not from the web process
# (spawn would start a new interpreter and import Pillow for every image).
START_METHOD = "forkserver"
MAX_CONCURRENT = 2  # images decoded at once per web process (each worker may use up to LIMITS.memory_mb)
MAX_RESULT_BYTES = 64 * 1024 * 1024
_slots = threading.BoundedSemaphore(MAX_CONCURRENT)


def _invalid(reason: str) -> ValidationFailed:
    return ValidationFailed("invalid_image", "只允许上传 JPEG 或 PNG 图片：" + reason)


def sanitize_display_name(name: str | None) -> str:
    """A display-only name: no path parts, control or bidi characters, at most 100 characters (UP-04)."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").split("/")[-1]
    name = "".join(
        ch for ch in name if unicodedata.category(ch)[0] != "C" and ch not in "\u202a\u202b\u202c\u202d\u202e"
    )
    name = name.strip(" .") or "image"
    return name[:100]


def inspect_image(data: bytes) -> tuple[str, int, int]:
    """Decide the type from content and check the dimensions before decoding (REQ: UP-01, UP-02).

    Raises:
        ValidationFailed: code ``invalid_image`` for anything that is not a sound JPEG/PNG within limits.
    """
    settings = config.current()
    if not data:
        raise _invalid("文件为空")
    head = data[:16]
    kind = next((k for k, sigs in MAGIC.items() if any(head.startswith(sig) for sig in sigs)), None)
    if kind is None:
        raise _invalid("文件内容不是图片")
    lowered = data[:4096].lower()
    if b"<script" in lowered or b"<html" in lowered or b"<svg" in lowered or b"<?php" in lowered:
        raise _invalid("文件中含有脚本或网页内容")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format != kind:
                raise _invalid("文件格式与内容不一致")
            width, height = img.size
            if width * height > settings.max_image_pixels:
                raise ValidationFailed(
                    "image_too_large", f"图片像素过大（上限 {settings.max_image_pixels // 1_000_000} 百万像素）"
                )
            if getattr(img, "n_frames", 1) > 1:
                raise _invalid("不支持动画图片")
            img.verify()
    except ValidationFailed:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's guard (MAX_IMAGE_PIXELS) read the header dimensions: nothing was decoded.
        raise ValidationFailed(
            "image_too_large", f"图片像素过大（上限 {settings.max_image_pixels // 1_000_000} 百万像素）"
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _invalid("图片已损坏或无法解析") from exc
    return kind, width, height


EXTENSIONS = {"JPEG": (".jpg", ".jpeg", ".jpe"), "PNG": (".png",)}


def check_extension(filename: str | None, kind: str) -> None:
    """The name's extension must agree with the content (UP-01); a name without one (camera blob) is allowed.

    Raises:
        ValidationFailed: ``invalid_image`` when the extension names another type ("x.png" holding a JPEG,
            "a.jpg<NUL>.php").
    """
    name = sanitize_display_name(filename)
    if "." not in name:
        return
    ext = "." + name.rsplit(".", 1)[1].lower()
    if ext not in EXTENSIONS[kind]:
        raise _invalid("文件扩展名与文件内容不一致")


def _in_worker(action: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run `fn` (of engine.attachments.pixels) in a fresh worker process with LIMITS (REQ: DSEC-08).

    Raises:
        ValidationFailed: ``image_too_complex`` when the worker ran out of time, CPU or memory, crashed or
            answered too much (the worker is gone; the next job gets a new one); ``invalid_image`` when the
            image would not decode.
        ServiceUnavailable: ``image_busy`` when MAX_CONCURRENT images are being processed for LIMITS.wall_s.
    """
    if not _slots.acquire(timeout=LIMITS.wall_s):
        raise ServiceUnavailable("image_busy", "图片处理繁忙，请稍后重试")
    try:
        worker = sandbox.Worker(
            LIMITS,
            start_method=START_METHOD,
            max_jobs=1,
            max_reply_bytes=MAX_RESULT_BYTES,
            preload=(pixels.__name__,),
            name="telerad-image",
        )
        try:
            return worker.call(fn, *args)
        finally:
            worker.close()
    except sandbox.SandboxError as exc:
        if exc.reason == "failed":
            raise _invalid("图片已损坏或无法解析") from exc
        raise ValidationFailed(
            "image_too_complex",
            f"图片超出处理资源限制：{exc.message}。{action}",
            {"reason": exc.reason},
        ) from exc
    finally:
        _slots.release()


def reencode(data: bytes, kind: str) -> tuple[bytes, int, int]:
    """Decode and write only the pixels anew, in the worker: drops EXIF/GPS, XMP, comments, text chunks, ICC
    profiles (pixels converted to sRGB) and any trailing payload (REQ: UP-03). Returns (bytes, width, height).

    Raises:
        ValidationFailed: ``invalid_image`` or ``image_too_complex`` (see _in_worker).
    """
    clean, width, height = _in_worker(
        "请缩小或压缩图片后重新上传", pixels.clean, data, kind, config.current().max_image_pixels
    )
    return bytes(clean), int(width), int(height)


def _store_path(key: str) -> Path:
    root = config.current().storage_dir / "attachments"
    return root / key[:2] / key


def _cipher() -> FieldCipher:
    return FieldCipher(config.current().secret_key)


def save_image(owner: User, kind: str, filename: str | None, data: bytes) -> Attachment:
    """Validate, re-encode, encrypt and store one photo; returns the new Attachment row (not committed).

    Raises:
        ValidationFailed: the file is not an acceptable image.
    """
    if len(data) > config.current().max_upload_bytes:
        raise ValidationFailed("too_large", "文件过大（上限 10 MB）")
    fmt, _, _ = inspect_image(data)
    check_extension(filename, fmt)
    clean, width, height = reencode(data, fmt)  # the EXIF orientation may have turned it
    key = secrets.token_hex(16)
    path = _store_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = _cipher().encrypt_bytes(clean, aad=key.encode())
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    # UP-01: if the request fails later (the other photo is bad, a field is wrong), the row is rolled
    # back and the blob must not stay behind as an orphan.
    uow.after_rollback(lambda _s: path.unlink(missing_ok=True))
    att = Attachment(
        public_id=secrets.token_hex(8),
        owner_user_id=owner.id,
        institution_id=owner.institution_id,
        kind=kind,
        storage_key=key,
        content_type=ALLOWED[fmt],
        display_name=sanitize_display_name(filename),
        size=len(clean),
        width=width,
        height=height,
        sha256=hashlib.sha256(clean).hexdigest(),
    )
    uow.session().add(att)
    return att


def watermark(data: bytes, content_type: str, text: str, max_pixels: int | None = None) -> bytes:
    """Tile a semi-transparent "仅用于资质审核" watermark over the photo, in the worker (REQ: PII-04, DSEC-08).

    Raises:
        ValidationFailed: ``image_too_complex`` or ``invalid_image`` (see _in_worker).
    """
    cap = max_pixels or config.current().max_image_pixels
    return bytes(_in_worker("请稍后重试", pixels.watermark, data, content_type, text, cap))


def read_attachment(actor: Actor, public_id: str) -> tuple[Attachment, bytes]:
    """Return the watermarked image of an attachment the actor may see; audited (REQ: PII-04, AUD-01).

    Raises:
        NotFound: unknown id, or outside the caller's visibility (security alert written).
    """
    s = uow.session()
    att_id = s.query(Attachment.id).filter(Attachment.public_id == public_id, Attachment.deleted_at.is_(None)).scalar()
    if att_id is None:
        raise NotFound()
    att = get_visible(actor, Attachment, att_id, object_type="attachment")
    clear = _cipher().decrypt_bytes(_store_path(att.storage_key).read_bytes(), aad=att.storage_key.encode())
    if hashlib.sha256(clear).hexdigest() != att.sha256:
        raise ValidationFailed("integrity_error", "文件完整性校验失败")
    audit.record(
        actor,
        "attachment_viewed",
        object_type="attachment",
        object_id=att.public_id,
        details={"kind": att.kind, "owner_user_id": att.owner_user_id},
    )
    # The stored photo has exactly width × height pixels, whatever the pixel limit has become since.
    return att, watermark(clear, att.content_type, WATERMARK, att.width * att.height)
