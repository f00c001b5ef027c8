"""WADO-RS frames' transfer-syntax negotiation (PS3.18 §8.7.3; REQ: VIEW-01 transport, DSEC-08; issue 16) over real
HTTP on the study of tests/dicomweb/test_wado.py: the stored syntax unchanged when the client accepts it, explicit
VR little endian on request (pixels equal to pydicom's decode; the decoded frames kept in engine/dicomweb/
frame_cache.py), the viewer's LAN header falling back to the stored syntax while the decoding pool is busy, 406
with a Chinese message and its code when nothing fits, multi-frame data; and the child decoder that works from the
frame index's image attributes giving what the file-reading one gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from flask import Flask
from pydicom.encaps import generate_frames
from pydicom.uid import JPEGLosslessSV1

from engine.dicomweb import frame_cache, frame_index, negotiate
from engine.dicomweb.media import NotAcceptable, parse_accept
from engine.imaging import native
from tests.dicomweb import test_wado as _wado
from tests.dicomweb.test_wado import _reference, _session

live, study = _wado.live, _wado.study  # the live server and the mixed study of test_wado.py

EXPLICIT = "1.2.840.10008.1.2.1"
OCTET_LE = f'multipart/related; type="application/octet-stream"; transfer-syntax={EXPLICIT}'
OCTET_ANY = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
LAN = f"{OCTET_LE}, {OCTET_ANY}; q=0.5"  # web/src/viewer/core/frameSyntax.ts for JPEG lossless on a LAN


def _frames(s: requests.Session, live: str, study: dict[str, Any], kind: str, numbers: str, accept: str) -> Any:
    series, sop = study["ids"][kind]
    url = f"{live}/dicomweb/studies/{study['uid']}/series/{series}/instances/{sop}/frames/{numbers}"
    return s.get(url, headers={"Accept": accept}, timeout=30)


def _parts(live: str, s: requests.Session, r: requests.Response) -> list[bytes]:
    return list(DICOMwebClient(f"{live}/dicomweb", session=s)._decode_multipart_message(r, stream=False))


def _part_syntaxes(r: requests.Response) -> list[str]:
    heads = [line for line in r.content.split(b"\r\n") if line.lower().startswith(b"content-type:")]
    return [h.decode().split("transfer-syntax=")[1].strip() for h in heads]


def test_stored_syntax_is_sent_unchanged_when_accepted(app: Flask, live: str, study: dict[str, Any]) -> None:
    s = _session(app, live)
    stored = next(generate_frames(study["ds"]["ct_jll"].PixelData, number_of_frames=1))
    for accept in (
        'multipart/related; type="image/jpeg"',
        f'multipart/related; type="image/jpeg"; transfer-syntax={JPEGLosslessSV1}',
        OCTET_ANY,
        f'{OCTET_LE}; q=0.2, multipart/related; type="image/jpeg"',  # the stored form preferred by q
    ):
        r = _frames(s, live, study, "ct_jll", "1", accept)
        assert r.status_code == 200, accept
        assert _parts(live, s, r) == [stored], accept
        assert _part_syntaxes(r) == [JPEGLosslessSV1], accept


def test_uncompressed_on_request_equals_pydicom_and_is_cached(app: Flask, live: str, study: dict[str, Any]) -> None:
    s = _session(app, live)
    cache = frame_cache.cache()
    assert cache is not None
    cache.clear()
    want = _reference(study["ds"]["ct_jll"])
    r = _frames(s, live, study, "ct_jll", "1", OCTET_LE)
    assert r.status_code == 200
    assert _part_syntaxes(r) == [EXPLICIT]
    [part] = _parts(live, s, r)
    assert np.array_equal(np.frombuffer(part, want.dtype.newbyteorder("<")).reshape(want.shape), want)
    hits = cache.hits
    again = _frames(s, live, study, "ct_jll", "1", OCTET_LE)
    assert _parts(live, s, again) == [part]
    assert cache.hits == hits + 1  # the second request was served from the decoded-frame cache
    # no transfer-syntax parameter: explicit VR little endian is octet-stream's default (PS3.18 Table 8.7.3-5)
    r = _frames(s, live, study, "ct_jll", "1", 'multipart/related; type="application/octet-stream"')
    assert _parts(live, s, r) == [part]


def test_lan_header_decodes_unless_the_pool_is_busy(
    app: Flask, live: str, study: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _session(app, live)
    r = _frames(s, live, study, "ct_jll", "1", LAN)
    assert _part_syntaxes(r) == [EXPLICIT]
    # a long queue at the decoders: the stored syntax, which the client also accepts, and the browser decodes
    monkeypatch.setattr(negotiate, "decoder_busy", lambda: True)
    r = _frames(s, live, study, "ct_jll", "1", LAN)
    assert _part_syntaxes(r) == [JPEGLosslessSV1]
    # busy, but the client takes nothing else: decoded all the same
    assert _part_syntaxes(_frames(s, live, study, "ct_jll", "1", OCTET_LE)) == [EXPLICIT]


def test_nothing_acceptable_is_406_with_a_chinese_message(app: Flask, live: str, study: dict[str, Any]) -> None:
    s = _session(app, live)
    for accept in (
        'multipart/related; type="image/jls"',  # would mean re-compressing
        'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.4.80',
        f'multipart/related; type="image/jpeg"; transfer-syntax={EXPLICIT}',
    ):
        r = _frames(s, live, study, "ct_jll", "1", accept)
        assert r.status_code == 406, accept
        body = r.json()
        assert body["code"] == "not_acceptable"
        assert "传输语法" in body["message"]
        assert body["details"]["stored_transfer_syntax"] == JPEGLosslessSV1


def test_multi_frame_uncompressed_on_request_in_the_asked_order(app: Flask, live: str, study: dict[str, Any]) -> None:
    s = _session(app, live)
    src = study["ds"]["multi"]  # two-frame RGB RLE
    want = _reference(src)
    r = _frames(s, live, study, "multi", "2,1", LAN)
    assert r.status_code == 200
    assert _part_syntaxes(r) == [EXPLICIT, EXPLICIT]
    parts = _parts(live, s, r)
    assert [np.frombuffer(p, np.uint8).reshape(want.shape[1:]).tolist() for p in parts] == [
        want[1].tolist(),
        want[0].tolist(),
    ]
    stored = list(generate_frames(src.PixelData, number_of_frames=2))
    r = _frames(s, live, study, "multi", "1,2", 'multipart/related; type="image/dicom-rle"')
    assert _parts(live, s, r) == stored


@pytest.mark.parametrize("kind", ["ct_jll", "mr_rle", "j2k", "jpeg", "multi"])
def test_decoding_from_the_index_equals_decoding_the_file(study: dict[str, Any], kind: str) -> None:
    path: Path = study["stored"][kind]
    index = frame_index.index_of(path)
    assert index.spans is not None
    assert index.image
    numbers = list(range(1, index.frames + 1))
    data = path.read_bytes()
    cut = [b"".join(data[o : o + n] for o, n in index.spans[i - 1]) for i in numbers]
    assert native.decode_frames_child(index.ts, index.image, cut) == native.frames_child(str(path), numbers)


def test_negotiation_rules_without_a_server() -> None:
    def plan(accept: str, stored: str, busy: bool = False) -> tuple[str, str, bool]:
        p = negotiate.negotiate_frame_syntax(parse_accept(accept), stored, busy=busy)
        return p.media, p.ts, p.stored

    assert plan(LAN, EXPLICIT) == ("application/octet-stream", EXPLICIT, True)  # uncompressed: as stored
    assert plan(LAN, JPEGLosslessSV1) == ("application/octet-stream", EXPLICIT, False)
    assert plan(LAN, JPEGLosslessSV1, busy=True) == ("application/octet-stream", JPEGLosslessSV1, True)
    assert plan("*/*", JPEGLosslessSV1) == ("image/jpeg", JPEGLosslessSV1, True)
    assert plan("multipart/related; type=image/*", "1.2.840.10008.1.2.4.90") == (
        "image/jp2",
        "1.2.840.10008.1.2.4.90",
        True,
    )
    with pytest.raises(NotAcceptable) as exc:
        plan(OCTET_LE, "1.2.840.10008.1.2.4.100")  # MPEG-2: not decodable
    assert exc.value.details == {
        "stored_transfer_syntax": "1.2.840.10008.1.2.4.100",
        "available": ["application/octet-stream"],
    }


def test_frame_cache_drops_a_changed_instance_and_stays_bounded() -> None:
    cache = frame_cache.FrameCache(capacity=10)
    cache.put("1.2.3", 1, "/store/a", "MONOCHROME2", b"12345")
    assert cache.get("1.2.3", 1, "/store/a") == ("MONOCHROME2", b"12345")
    assert cache.get("1.2.3", 1, "/store/b") is None  # the instance was stored again: another file
    assert cache.get("1.2.3", 1, "/store/a") is None  # and the stale entry is gone
    cache.put("1.2.3", 1, "/store/b", "MONOCHROME2", b"12345")
    cache.put("1.2.3", 2, "/store/b", "MONOCHROME2", b"67890")
    cache.put("1.2.3", 3, "/store/b", "MONOCHROME2", b"abcde")  # over 10 bytes: the least recently used goes
    assert cache.size == 10
    assert cache.get("1.2.3", 1, "/store/b") is None
    assert cache.get("1.2.3", 3, "/store/b") == ("MONOCHROME2", b"abcde")
    cache.put("1.2.3", 4, "/store/b", "MONOCHROME2", b"x" * 11)  # larger than the cache: not kept
    assert cache.get("1.2.3", 4, "/store/b") is None
