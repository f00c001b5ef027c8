"""Photo uploads through self-registration: type by content, size and pixel limits, re-encode, names (UP-01..04)."""

from __future__ import annotations

import io
import itertools
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import ExifTags, Image, ImageFile
from sqlalchemy import func, select

from engine import uow
from engine.accounts.models import User
from engine.attachments.models import Attachment
from engine.crypto import FieldCipher
from tests.factories import anon_csrf, as_user, image_bytes, institution, registration_form

_ip = itertools.count(1)


def _register(client: Any, csrf: str, form: dict[str, Any]) -> Any:
    # Registration is limited to 20 per hour per IP; each upload here comes from its own address.
    n = next(_ip)
    return client.post(
        "/api/registrations",
        data=form,
        headers={"X-CSRF-Token": csrf},
        environ_base={"REMOTE_ADDR": f"10.77.{n // 200}.{n % 200 + 1}"},
    )


def _stored(app: Any, storage: Path) -> tuple[int, int, list[Path]]:
    with app.app_context():
        s = uow.session()
        users = s.execute(select(func.count(User.id))).scalar_one()
        atts = s.execute(select(func.count(Attachment.id))).scalar_one()
    return users, atts, sorted(p for p in storage.rglob("*") if p.is_file())


def _png(width: int, height: int, *, frames: int = 1) -> bytes:
    """A PNG whose IHDR claims width×height, followed by a tiny zlib stream (a pixel-flood bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 4096))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def _animated(fmt: str) -> bytes:
    buf = io.BytesIO()
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue", "green")]
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def _truncated_jpeg() -> bytes:
    data = image_bytes("JPEG", size=(256, 256), color="white", quality=95)
    return data[: len(data) // 2]


BAD_FILES: dict[str, tuple[bytes, str]] = {
    "html_renamed_jpg": (b"<!doctype html><html><body><script>alert(1)</script></body></html>", "photo.jpg"),
    "svg_with_script": (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
        b"<script>alert(document.cookie)</script></svg>",
        "photo.svg",
    ),
    "gif": (image_bytes("GIF"), "photo.gif"),
    "gif_js_polyglot": (b"GIF89a/*\x01\x00\x01\x00\x00\x00\x00*/=1;alert(document.domain);//" + b"\0" * 64, "a.jpg"),
    "jpeg_html_comment": (image_bytes("JPEG", comment=b"<html><script>alert(1)</script></html>"), "photo.jpg"),
    "php_as_jpg": (b"<?php system($_GET['c']); ?>", "shell.php.jpg"),
    "jpeg_with_php": (image_bytes("JPEG", comment=b"<?php system($_GET['c']); ?>"), "shell.php.jpg"),
    "empty": (b"", "empty.jpg"),
    "truncated_jpeg": (_truncated_jpeg(), "cut.jpg"),
    "animated_gif": (_animated("GIF"), "anim.gif"),
    "animated_png": (_animated("PNG"), "anim.png"),
    "webp": (image_bytes("WEBP"), "photo.webp"),
}


def test_up01_bad_files_are_rejected_and_nothing_is_stored(app, client, settings):  # type: ignore[no-untyped-def]
    inst = institution(app, "M01")
    csrf = anon_csrf(client)
    before = _stored(app, settings.storage_dir)
    failures = []
    for i, (name, (data, filename)) in enumerate(BAD_FILES.items()):
        # The good ID-card photo is processed (and written) first: the bad second photo must undo it.
        form = registration_form(f"bad{i}", inst.id, qualification_photo=(io.BytesIO(data), filename))
        r = _register(client, csrf, form)
        body = r.get_json()
        if r.status_code != 400 or body["code"] not in ("invalid_image", "image_too_large"):
            failures.append((name, r.status_code, body))
        if _stored(app, settings.storage_dir) != before:
            failures.append((name, "stored something", _stored(app, settings.storage_dir)))
    assert failures == []
    assert before[:2] == (0, 0)


def test_up02_pixel_flood_is_rejected_from_the_header_before_decoding(app, client, settings, monkeypatch):  # type: ignore[no-untyped-def]
    inst = institution(app, "M02")
    csrf = anon_csrf(client)
    bomb = _png(30_000, 30_000)
    assert len(bomb) < 1024  # 900 megapixels claimed by a few hundred bytes
    flood = registration_form("flood1", inst.id, id_card_photo=(io.BytesIO(bomb), "bomb.png"))
    over_limit = registration_form("flood2", inst.id, id_card_photo=(io.BytesIO(_png(6000, 5000)), "big.png"))
    loads: list[str] = []
    for cls in (Image.Image, ImageFile.ImageFile):
        original = cls.load

        def spy(self, _original=original, _cls=cls):  # type: ignore[no-untyped-def]
            loads.append(f"{_cls.__name__}.load {self.size}")
            return _original(self)

        monkeypatch.setattr(cls, "load", spy)
    r = _register(client, csrf, flood)
    assert r.status_code == 400
    assert r.get_json()["code"] in ("invalid_image", "image_too_large")
    # Over the configured 25 MP but under Pillow's own bomb guard: the app's header check answers.
    r = _register(client, csrf, over_limit)
    assert r.status_code == 400
    assert r.get_json()["code"] == "image_too_large"
    assert loads == []  # nothing was decoded
    assert _stored(app, settings.storage_dir) == (0, 0, [])


def test_up02_size_limits(app, client, settings):  # type: ignore[no-untyped-def]
    inst = institution(app, "M01")
    csrf = anon_csrf(client)
    eleven_mb = b"\xff\xd8\xff\xe0" + b"\0" * (11 * 1024 * 1024)
    r = _register(client, csrf, registration_form("huge1", inst.id, id_card_photo=(io.BytesIO(eleven_mb), "a.jpg")))
    assert r.status_code == 413
    assert r.get_json()["code"] == "too_large"
    # Just over the 10 MB file limit but inside the request limit: the service refuses it.
    just_over = b"\xff\xd8\xff\xe0" + b"\0" * settings.max_upload_bytes
    r = _register(client, csrf, registration_form("huge2", inst.id, id_card_photo=(io.BytesIO(just_over), "b.jpg")))
    assert r.status_code == 400
    assert r.get_json()["code"] in ("too_large", "image_too_large", "invalid_image")
    assert _stored(app, settings.storage_dir) == (0, 0, [])


def test_up02_more_than_100_multipart_parts_refused(app, client, settings):  # type: ignore[no-untyped-def]
    inst = institution(app, "M01")
    csrf = anon_csrf(client)
    form = registration_form("parts1", inst.id)
    form.update({f"extra{i}": "x" for i in range(120)})
    r = _register(client, csrf, form)
    assert r.status_code == 413, r.get_json()
    assert r.get_json()["code"] == "too_large"
    assert _stored(app, settings.storage_dir) == (0, 0, [])


def _gps_jpeg() -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TrackerCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (39.0, 54.0, 27.0)
    buf = io.BytesIO()
    Image.new("RGB", (120, 90), "green").save(buf, "JPEG", exif=exif)
    data = buf.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the upload really carries GPS
    return data


def _attachments(app: Any, username: str) -> list[Attachment]:
    with app.app_context():
        s = uow.session()
        uid = s.execute(select(User.id).where(User.username == username)).scalar_one()
        stmt = select(Attachment).where(Attachment.owner_user_id == uid).order_by(Attachment.id)
        rows = list(s.execute(stmt).scalars())
        for row in rows:
            s.expunge(row)
    return rows


def test_up03_exif_is_stripped_blobs_are_ciphertext_and_served_exactly(app, client, settings):  # type: ignore[no-untyped-def]
    inst = institution(app, "M01")
    csrf = anon_csrf(client)
    r = _register(client, csrf, registration_form("exif1", inst.id, id_card_photo=(io.BytesIO(_gps_jpeg()), "g.jpg")))
    assert r.status_code == 201, r.get_json()
    id_card, qualification = _attachments(app, "exif1")
    cipher = FieldCipher(settings.secret_key)
    for att in (id_card, qualification):
        blob = (settings.storage_dir / "attachments" / att.storage_key[:2] / att.storage_key).read_bytes()
        assert not blob.startswith((b"\xff\xd8", b"\x89PNG"))
        assert b"JFIF" not in blob
        assert b"Exif" not in blob
        clear = cipher.decrypt_bytes(blob, aad=att.storage_key.encode())
        stored = Image.open(io.BytesIO(clear))
        assert not stored.getexif()
        assert "exif" not in stored.info
        assert b"Exif" not in clear
    assert id_card.content_type == "image/jpeg"
    assert qualification.content_type == "image/png"

    # A payload past the scanned head (here after EOI) is accepted as a photo but never survives re-encoding.
    noisy = io.BytesIO()
    Image.effect_noise((128, 128), 80).convert("RGB").save(noisy, "JPEG", quality=95)
    tail = noisy.getvalue() + b"<html><script>alert(document.cookie)</script></html>"
    assert len(noisy.getvalue()) > 4096
    r = _register(client, csrf, registration_form("tail1", inst.id, id_card_photo=(io.BytesIO(tail), "t.jpg")))
    assert r.status_code == 201, r.get_json()
    for att in _attachments(app, "tail1"):
        blob = (settings.storage_dir / "attachments" / att.storage_key[:2] / att.storage_key).read_bytes()
        assert b"<script" not in cipher.decrypt_bytes(blob, aad=att.storage_key.encode())

    sec = as_user(app, "sec_admin")
    for att, mime in ((id_card, "image/jpeg"), (qualification, "image/png")):
        resp = sec.get(f"/api/attachments/{att.public_id}")
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == mime
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Cache-Control"] == "no-store"
        served = Image.open(io.BytesIO(resp.data))
        assert served.format == ("JPEG" if mime == "image/jpeg" else "PNG")
        assert not served.getexif()
        assert b"Exif" not in resp.data


HOSTILE_NAMES = ("../../x.jpg", "\u202egpj.exe.jpg", "CON.jpg", "n" * 300 + ".jpg", "相片 2026.JPEG")


@pytest.mark.parametrize("filename", HOSTILE_NAMES, ids=["traversal", "bidi", "con", "long", "gb"])
def test_up04_client_file_names_never_become_paths(app, client, settings, tmp_path, filename):  # type: ignore[no-untyped-def]
    inst = institution(app, "M01")
    csrf = anon_csrf(client)
    outside = {p for p in tmp_path.rglob("*") if p.is_file()}
    form = registration_form("named1", inst.id, id_card_photo=(io.BytesIO(image_bytes()), filename))
    r = _register(client, csrf, form)
    assert r.status_code == 201, r.get_json()
    att = _attachments(app, "named1")[0]
    assert re.fullmatch(r"[0-9a-f]{32}", att.storage_key)
    assert not re.search(r"[/\\\x00-\x1f\u202a-\u202e\u2066-\u2069]", att.display_name)
    assert 0 < len(att.display_name) <= 100
    assert ".." not in att.display_name.split("/")
    new = {p for p in tmp_path.rglob("*") if p.is_file()} - outside
    storage = settings.storage_dir.resolve()
    created = [p for p in new if storage in p.resolve().parents]
    # Only the database (SQLite) and the two random-named blobs are new; nothing carries the client's name.
    assert len(created) == 2
    assert all(re.fullmatch(r"[0-9a-f]{32}", p.name) for p in created)
    assert not [p for p in new if p not in created and not p.name.startswith("telerad.db")]


@pytest.mark.parametrize("filename", ["a.jpg\x00.php", "photo.png", "shell.php", "x.svg"])
def test_up01_extension_must_agree_with_content(app, client, settings, filename):  # type: ignore[no-untyped-def]
    """A JPEG named as another type (or NUL-truncation tricks) is refused and nothing is stored."""
    inst = institution(app, "M01")
    csrf = anon_csrf(client)
    r = _register(
        client, csrf, registration_form("extmis", inst.id, id_card_photo=(io.BytesIO(image_bytes()), filename))
    )
    assert r.status_code == 400
    assert r.get_json()["code"] == "invalid_image"
    with app.app_context():
        assert uow.session().execute(select(User.id).where(User.username == "extmis")).first() is None
        assert uow.session().execute(select(Attachment.id)).first() is None
    assert not [p for p in settings.storage_dir.rglob("*") if p.is_file()]
