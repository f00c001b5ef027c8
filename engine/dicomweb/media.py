"""Accept header negotiation (PS3.18 §8.7) and the multipart/related writer of WADO-RS (REQ: VIEW transport, issue 15).

An Accept header lists media ranges with parameters: `type` (the part's media type inside multipart/related),
`transfer-syntax` (a UID or `*`: as stored) and `q` (0..1; 0 = not acceptable). `parse_accept` keeps the ranges in
preference order (higher q first, then as written); each WADO resource then picks the first range it can answer.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from engine.errors import DomainError, ValidationFailed

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
ANY_SYNTAX = "*"
MAX_RANGES = 32


class NotAcceptable(DomainError):
    status = 406

    def __init__(
        self, message: str = "无法以请求的媒体类型或传输语法提供该资源", details: dict[str, object] | None = None
    ):
        super().__init__("not_acceptable", message, details)


@dataclass(frozen=True)
class MediaRange:
    """One media range of an Accept header: `media` is "type/subtype" in lower case; `params` are lower-case names
    with unquoted values."""

    media: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def part_type(self) -> str:
        """The `type` parameter of a multipart range (lower case), or "" when absent."""
        return self.params.get("type", "").lower()

    @property
    def syntax(self) -> str | None:
        return self.params.get("transfer-syntax")

    def matches(self, media: str) -> bool:
        """This range covers the concrete media type `media` (`*/*`, `type/*` or equal)."""
        if self.media == "*/*":
            return True
        major, _, minor = self.media.partition("/")
        return self.media == media or (minor == "*" and media.startswith(major + "/"))


def _split(header: str, sep: str) -> list[str]:
    """Split on `sep` outside double quotes."""
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [p.strip() for p in out if p.strip()]


def parse_accept(header: str | None) -> list[MediaRange]:
    """The media ranges of an Accept header, most preferred first, q=0 ranges dropped; `*/*` when absent or empty.

    Raises:
        ValidationFailed: a range is not `type/subtype`, a q value is not a number in 0..1, or too many ranges.
    """
    if not header or not header.strip():
        return [MediaRange("*/*")]
    ranges: list[tuple[float, int, MediaRange]] = []
    parts = _split(header, ",")
    if len(parts) > MAX_RANGES:
        raise ValidationFailed("bad_accept", f"Accept 头的媒体类型不能超过 {MAX_RANGES} 个")
    for index, part in enumerate(parts):
        items = _split(part, ";")
        media = items[0].lower()
        if media.count("/") != 1 or not all(media.split("/")):
            raise ValidationFailed("bad_accept", f"Accept 头的媒体类型格式不正确：{items[0][:64]}")
        params: dict[str, str] = {}
        q = 1.0
        for item in items[1:]:
            name, _, value = item.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"').strip()
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    raise ValidationFailed("bad_accept", f"Accept 头的 q 值不正确：{value[:16]}") from None
                if not 0.0 <= q <= 1.0:
                    raise ValidationFailed("bad_accept", f"Accept 头的 q 值不正确：{value[:16]}")
            elif name:
                params[name] = value
        if q > 0:
            ranges.append((-q, index, MediaRange(media, params, q)))
    return [r for _q, _i, r in sorted(ranges, key=lambda t: (t[0], t[1]))]


def multipart_ranges(ranges: list[MediaRange], part: str) -> list[MediaRange]:
    """The ranges that accept multipart/related with parts of media type `part`, in preference order. A
    multipart/related range without `type` takes `part` (the resource's default, PS3.18 §8.7.3.5); a range for the
    bare part type counts as its multipart form; `*/*` and `multipart/*` take anything."""
    out = []
    for r in ranges:
        if r.media in ("multipart/related", "multipart/*", "*/*"):
            if not r.part_type or r.part_type == part or MediaRange(r.part_type).matches(part):
                out.append(r)
        elif r.matches(part) and r.media != "*/*":
            out.append(r)
    return out


def accepted_syntaxes(ranges: Iterable[MediaRange], default: str = EXPLICIT_VR_LE) -> list[str]:
    """The transfer syntaxes the ranges accept, in preference order (`*` = as stored); a range without the
    parameter accepts `default` (PS3.18 §8.7.3.5.2: explicit VR little endian for application/dicom and
    application/octet-stream)."""
    out: list[str] = []
    for r in ranges:
        ts = r.syntax or default
        if ts not in out:
            out.append(ts)
    return out


class Multipart:
    """A multipart/related body written part by part (RFC 2387); `content_type` names the root part type."""

    def __init__(self, part_type: str, boundary: str | None = None) -> None:
        self.part_type = part_type
        self.boundary = boundary or secrets.token_hex(16)

    @property
    def content_type(self) -> str:
        return f'multipart/related; type="{self.part_type}"; boundary={self.boundary}'

    def part(
        self, chunks: Iterable[bytes], media: str | None = None, headers: dict[str, str] | None = None
    ) -> Iterator[bytes]:
        head = f"--{self.boundary}\r\nContent-Type: {media or self.part_type}\r\n"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        yield (head + "\r\n").encode("ascii")
        yield from chunks
        yield b"\r\n"

    def close(self) -> bytes:
        return f"--{self.boundary}--\r\n".encode("ascii")
