"""STOW-RS part cap (issue 15; REQ: WEB-06): TELERAD_STOW_MAX_PARTS instances per request (default 2,500 — a
2,000-slice study with room for its localisers, reformats and dose reports), over it 413 in Chinese with nothing
stored; WEB-06's 100-part cap stays on the ordinary multipart forms (tests/api/test_uploads.py, the registration
form; tests/api/test_oauth_code_reuse_cors.py, the token endpoint)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from flask import Flask

from engine import config
from engine.dicomweb import stow
from engine.imaging.models import Instance
from tests.conftest import TEST_SECRET
from tests.dicom.conftest import count
from tests.dicomweb.test_stow import fresh, multipart, post, registrar, tmp_files
from tests.factories import Session

__all__ = ["registrar"]


# REQ: WEB-06
def test_stow_over_the_part_cap_is_413_and_stores_nothing(
    app: Flask, settings: config.Settings, registrar: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config.current(), "stow_max_parts", 3)
    r = post(registrar, multipart([fresh("CT_small.dcm") for _ in range(4)]))
    assert r.status_code == 413, r.get_data(as_text=True)
    body = r.get_json()
    assert body["code"] == "stow_too_many_parts"
    assert "最多 3 个实例" in body["message"]
    assert "未存储任何实例" in body["message"]
    assert body["details"] == {"max_parts": 3}
    assert count(app, Instance) == 0
    assert tmp_files(settings) == []
    r = post(registrar, multipart([fresh("CT_small.dcm") for _ in range(3)]))  # at the cap: stored
    assert r.status_code == 200, r.get_data(as_text=True)
    assert count(app, Instance) == 3


# REQ: WEB-06
def test_default_part_cap_takes_a_2000_slice_study(tmp_path: Path) -> None:
    assert config.Settings().stow_max_parts == stow.MAX_PARTS == 2500
    body = multipart([b"DICM" * 4] * 2000)  # the parser only counts and spools parts; the receive path checks them
    parts = stow.spool(io.BytesIO(body).read, b"telerad-stow-test", tmp_path, len(body))
    assert len(parts) == 2000
    stow.discard(parts)
    with pytest.raises(stow.PayloadTooLarge) as refused:
        stow.spool(io.BytesIO(multipart([b"x"] * 2501)).read, b"telerad-stow-test", tmp_path, 1 << 30)
    assert refused.value.code == "stow_too_many_parts"
    assert list(tmp_path.iterdir()) == []  # the parts written before the cap are removed


@pytest.mark.parametrize("value", ["0", "20001", "many"])
def test_stow_max_parts_outside_its_bounds_refuses_to_start(tmp_path: Path, value: str) -> None:
    env = {"TELERAD_MODE": "test", "TELERAD_INSTANCE_DIR": str(tmp_path), "TELERAD_SECRET_KEY": TEST_SECRET}
    with pytest.raises(config.ConfigError, match="TELERAD_STOW_MAX_PARTS"):
        config.load_settings({**env, "TELERAD_STOW_MAX_PARTS": value})
    assert config.load_settings({**env, "TELERAD_STOW_MAX_PARTS": "5000"}).stow_max_parts == 5000
