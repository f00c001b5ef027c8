"""Image work on uploaded photos; runs only inside the sandbox child (engine.sandbox, REQ: DSEC-08, UP-03, PII-04).

`clean` decodes an upload and writes its pixels anew — nothing else: no comment (JPEG COM), EXIF, XMP, ICC
profile or PNG text chunk survives. Pixels tagged with a non-sRGB profile are converted to sRGB first (lcms2), and
the EXIF orientation is applied, so the untagged result looks like the original. `watermark` tiles the
"仅用于资质审核" label over a stored photo. Both take bytes and return bytes; this module needs only Pillow, so the
fork server can preload it.
"""

from __future__ import annotations

import io
import os
import warnings

from PIL import ExifTags, Image, ImageCms, ImageDraw, ImageFont, ImageOps

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
FALLBACK_LABEL = "FOR QUALIFICATION REVIEW ONLY"
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _decode(data: bytes, kind: str, max_pixels: int) -> Image.Image:
    """Decode, refusing another format or more than `max_pixels` (checked from the header, before decoding)."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(io.BytesIO(data))
        if img.format != kind:
            raise ValueError(f"format {img.format} is not {kind}")
        if img.width * img.height > max_pixels:
            raise ValueError(f"{img.width}x{img.height} is over {max_pixels} pixels")
        img.load()
    return img


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (the tag itself is dropped with the rest of EXIF)."""
    try:
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # a broken EXIF block only loses its orientation
        return img
    if orientation in range(2, 9):
        return ImageOps.exif_transpose(img)
    return img


def _to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert RGB/RGBA/CMYK pixels from their embedded profile to sRGB; other or broken profiles are ignored."""
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK"):
        return img
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in (ImageCms.getProfileDescription(source) or "").lower():
            return img
        if source.profile.xcolor_space.strip() != ("CMYK" if img.mode == "CMYK" else "RGB"):
            return img
        alpha = img.getchannel("A") if img.mode == "RGBA" else None
        colour = img.convert("RGB") if alpha is not None else img
        out = ImageCms.profileToProfile(colour, source, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return img
    assert out is not None
    if alpha is not None:
        out.putalpha(alpha)
    return out


def _pixels_only(img: Image.Image, fmt: str, **options: int) -> bytes:
    # Pillow carries a decoded image's `info` (comment, icc_profile, transparency, exif…) into save() for some
    # formats: the written image gets nothing but its pixels.
    img.info.clear()
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def clean(data: bytes, kind: str, max_pixels: int) -> tuple[bytes, int, int]:
    """Decode a JPEG/PNG upload and write only its pixels (REQ: UP-03); returns (bytes, width, height).

    JPEG becomes an RGB JPEG (quality 90); PNG an RGB or RGBA PNG (RGBA when the source has any transparency).

    Raises:
        ValueError, OSError, SyntaxError: not a sound image of `kind` within `max_pixels`.
    """
    img = _decode(data, kind, max_pixels)
    icc = img.info.get("icc_profile")
    img = _upright(img)
    if kind == "JPEG":
        img = _to_srgb(img, icc)
        if img.mode != "RGB":
            img = img.convert("RGB")
        return _pixels_only(img, "JPEG", quality=90), img.width, img.height
    transparent = img.mode in ("RGBA", "LA", "PA", "P") or "transparency" in img.info
    mode = "RGBA" if transparent else "RGB"
    if img.mode != mode:
        img = img.convert(mode)
    img = _to_srgb(img, icc)
    return _pixels_only(img, "PNG"), img.width, img.height


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for candidate in FONT_CANDIDATES:
        if os.path.exists(candidate):
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default(size)


def has_cjk_font() -> bool:
    return any(os.path.exists(c) for c in FONT_CANDIDATES)


def _tile(draw: ImageDraw.ImageDraw, width: int, height: int, text: str) -> None:
    size = max(14, min(width, height) // 12)
    font = _font(size)
    label = text if has_cjk_font() else FALLBACK_LABEL
    step_x, step_y = size * 9, size * 4
    for y in range(0, height + step_y, step_y):
        for x in range(-step_x // 2 if (y // step_y) % 2 else 0, width, step_x):
            draw.text((x, y), label, fill=(255, 0, 0, 110), font=font)


def watermark(data: bytes, content_type: str, text: str, max_pixels: int) -> bytes:
    """Tile a semi-transparent red `text` over a stored photo (REQ: PII-04); same format, pixels only."""
    kind = "JPEG" if content_type == "image/jpeg" else "PNG"
    img = _decode(data, kind, max_pixels)
    if img.mode == "RGBA":
        # Ink drawn on an RGBA image replaces its pixels: draw on a clear layer and composite it over the photo.
        layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
        _tile(ImageDraw.Draw(layer), img.width, img.height, text)
        img = Image.alpha_composite(img, layer)
    else:
        if img.mode != "RGB":
            img = img.convert("RGB")
        # On an RGB image, RGBA ink is blended into the photo: no second full-size layer.
        _tile(ImageDraw.Draw(img, "RGBA"), img.width, img.height, text)
    if kind == "JPEG":
        return _pixels_only(img, "JPEG", quality=88)
    # A view is sent once and never stored: fast deflate (about 3× faster than the default on a 25 MP photo).
    return _pixels_only(img, "PNG", compress_level=1)
