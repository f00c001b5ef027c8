"""Image uploads: type by content, size and pixel limits, re-encode, encrypt, store (REQ: UP-01..04, PII-04)."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import unicodedata
import warnings
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from engine import audit, config, uow
from engine.accounts.models import User
from engine.actor import Actor
from engine.attachments.models import Attachment
from engine.crypto import FieldCipher
from engine.errors import NotFound, ValidationFailed
from engine.visibility import get_visible

ALLOWED = {"JPEG": "image/jpeg", "PNG": "image/png"}
# UP-02: Pillow's own bomb guard matches our 25 MP limit (the header check below answers first).
Image.MAX_IMAGE_PIXELS = 25_000_000
MAGIC = {"JPEG": (b"\xff\xd8\xff",), "PNG": (b"\x89PNG\r\n\x1a\n",)}
WATERMARK = "仅用于资质审核"
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)


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


def reencode(data: bytes, kind: str) -> bytes:
    """Decode and write the image anew: drops EXIF/GPS, comments and any trailing payload (REQ: UP-03)."""
    img = Image.open(io.BytesIO(data))
    try:
        img.load()
    except OSError as exc:
        raise _invalid("图片已损坏或无法解析") from exc
    out = io.BytesIO()
    if kind == "JPEG":
        img.convert("RGB").save(out, "JPEG", quality=90)
    else:
        mode = "RGBA" if img.mode in ("RGBA", "LA", "P") else "RGB"
        img.convert(mode).save(out, "PNG", optimize=False)
    return out.getvalue()


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
    fmt, width, height = inspect_image(data)
    check_extension(filename, fmt)
    clean = reencode(data, fmt)
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


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for candidate in _FONT_CANDIDATES:
        if os.path.exists(candidate):
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default(size)


def has_cjk_font() -> bool:
    return any(os.path.exists(c) for c in _FONT_CANDIDATES)


def watermark(data: bytes, content_type: str, text: str) -> bytes:
    """Tile a semi-transparent "仅用于资质审核" watermark over the photo (REQ: PII-04)."""
    img = Image.open(io.BytesIO(data)).convert("RGBA")
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = max(14, min(img.size) // 12)
    font = _font(size)
    label = text if has_cjk_font() else "FOR QUALIFICATION REVIEW ONLY"
    step_x, step_y = size * 9, size * 4
    for y in range(0, img.size[1] + step_y, step_y):
        for x in range(-step_x // 2 if (y // step_y) % 2 else 0, img.size[0], step_x):
            draw.text((x, y), label, fill=(255, 0, 0, 110), font=font)
    merged = Image.alpha_composite(img, layer)
    out = io.BytesIO()
    if content_type == "image/jpeg":
        merged.convert("RGB").save(out, "JPEG", quality=88)
    else:
        merged.save(out, "PNG")
    return out.getvalue()


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
    blob = _store_path(att.storage_key).read_bytes()
    clear = _cipher().decrypt_bytes(blob, aad=att.storage_key.encode())
    if hashlib.sha256(clear).hexdigest() != att.sha256:
        raise ValidationFailed("integrity_error", "文件完整性校验失败")
    audit.record(
        actor,
        "attachment_viewed",
        object_type="attachment",
        object_id=att.public_id,
        details={"kind": att.kind, "owner_user_id": att.owner_user_id},
    )
    return att, watermark(clear, att.content_type, WATERMARK)
