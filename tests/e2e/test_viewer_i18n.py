"""Browser check of the viewer's texts (issue 16; UX: UI text via vue-i18n, never raw codes): the viewer opened in
zh-CN and in en-US shows its labels in that language — no `viewer.xxx` key, and in English no Chinese label in the
toolbar, the key-image panel or the corner text. Screenshots go to /tmp/shots/i18n/."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_account_flow import _login
from tests.e2e.test_viewer import _seed

SHOTS = Path(os.environ.get("TELERAD_I18N_SHOTS", "/tmp/shots/i18n"))
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
RAW_KEY = re.compile(r"\b(viewer|upload|keyImages|common)\.[A-Za-z_]")


@pytest.fixture(params=["zh-CN", "en-US"])
def lpage(request, gl_browser, live_server) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    locale = request.param
    context = gl_browser.new_context(locale=locale, viewport={"width": 1400, "height": 900})
    context.add_init_script(f"localStorage.setItem('telerad.locale', '{locale}')")
    pg = context.new_page()
    pg.set_default_timeout(30000)
    pg.base_url = live_server
    pg.locale = locale
    yield pg
    context.close()


def test_viewer_texts_follow_the_ui_language(app, lpage) -> None:  # type: ignore[no-untyped-def]
    page = lpage
    team, _case, _task_id, ct, _us = _seed(app)
    _login(page, page.base_url, team.l1.user.username, team.l1.user.password)
    page.goto(f"{page.base_url}/viewer/studies/{ct[0].StudyInstanceUID}")
    page.get_by_test_id("viewer-viewport-0").wait_for()
    page.wait_for_function("() => window.__teleradViewer && window.__teleradViewer.stats.firstImageMs !== null")
    page.get_by_test_id("viewer-persist-panel").wait_for()
    page.get_by_test_id("key-image-list-toggle").click()  # the key-image list's empty text
    page.get_by_test_id("viewer-measure").click()  # the measurement tools' menu
    page.wait_for_timeout(500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"viewer-{page.locale}.png"))

    body = page.locator("body").inner_text()
    assert not RAW_KEY.search(body), RAW_KEY.search(body)
    # the CT + US study opens in 1×2: the CT stack is viewport 0
    bottom_left = page.get_by_test_id("viewer-viewport-0").get_by_test_id("viewer-corner-bottom_left").inner_text()
    toolbar = page.get_by_test_id("viewer-toolbar").inner_text()
    series = page.get_by_test_id("viewer-series-0").inner_text()
    if page.locale == "zh-CN":
        assert "图像：1 / 20" in bottom_left
        assert "窗宽窗位" in toolbar
        assert "四角信息" in toolbar
        assert "幅" in series
    else:
        assert "Image: 1 / 20" in bottom_left
        assert "Window/level" in toolbar
        assert "Corner text" in toolbar
        assert "images" in series
        # (the series description and the top corners are the study's own data: Chinese here)
        for text in (toolbar, bottom_left, page.get_by_test_id("viewer-persist-panel").inner_text()):
            assert not CJK.search(text), text
