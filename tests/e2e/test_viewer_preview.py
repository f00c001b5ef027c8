"""Browser end-to-end of the viewer's boot preview (issue 16, UX R18; REQ: VIEW-01): on a full navigation to
`/viewer/studies/<uid>` the server-rendered first slice is on screen before Cornerstone3D has drawn, it is the
study's own first image, and it goes when the diagnostic image is rendered; a member hospital's user opening another
hospital's study URL gets the refusal and no preview (the preview asks only the DICOMweb resources the viewer asks,
under the same visibility rule). The diagnostic image is held back (its frame requests paused) so the preview can be
looked at. Screenshots go to /tmp/shots/viewer/."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import numpy as np
from PIL import Image

from tests.e2e.test_account_flow import _login
from tests.e2e.test_viewer import _seed, _shot, _viewport_pixels
from tests.factories import make_user

PREVIEW = "[data-testid=viewer-preview]"


def _grey(png: bytes, size: int = 128) -> np.ndarray[Any, Any]:
    return np.asarray(Image.open(BytesIO(png)).convert("L").resize((size, size), Image.Resampling.BILINEAR), np.float32)


def test_view01_preview_shows_the_first_slice_then_the_diagnostic_image_replaces_it(app, vpage) -> None:  # type: ignore[no-untyped-def]
    page = vpage
    base = page.base_url
    team, _case, _task, ct, _us = _seed(app)
    study_uid = ct[0].StudyInstanceUID
    first_sop = ct[0].SOPInstanceUID  # instance 1, the top slice: the viewer's first image too
    _login(page, base, team.l1.user.username, team.l1.user.password)

    held: list[Any] = []
    page.route("**/frames/**", lambda route: held.append(route))  # no diagnostic image until released
    page.goto(f"{base}/viewer/studies/{study_uid}")
    preview = page.locator(PREVIEW)
    preview.wait_for()
    page.wait_for_function("() => window.__teleradViewer && window.__teleradViewer.stats.firstImageMs !== null")
    page.get_by_test_id("viewer-viewport-0").wait_for()
    page.wait_for_timeout(300)  # the preview follows the viewport's box once it is laid out
    _shot(page, "10-preview")
    stats = page.evaluate("() => ({...window.__teleradViewer.stats})")
    assert stats["firstDiagnosticImageMs"] is None, stats
    assert preview.get_attribute("data-sop-uid") == first_sop

    # placed like the viewport
    pbox = preview.bounding_box()
    vbox = page.locator("[data-testid=viewer-viewport-0] [data-viewport-id]").bounding_box()
    assert pbox
    assert vbox
    for k in ("x", "y", "width", "height"):
        assert abs(pbox[k] - vbox[k]) <= 1, (pbox, vbox)

    # the study's first slice: what the server renders for instance 1, fitted into the viewport like the stack
    shown = Image.open(BytesIO(preview.screenshot())).convert("L")
    side = min(shown.width, shown.height)
    left, top = (shown.width - side) // 2, (shown.height - side) // 2
    shown_img = np.asarray(shown.crop((left, top, left + side, top + side)).resize((128, 128)), np.float32)
    served = page.request.get(
        f"{base}/dicomweb/studies/{study_uid}/series/{ct[0].SeriesInstanceUID}/instances/{first_sop}/rendered",
        headers={"Accept": "image/png"},
    )
    assert served.ok, served.status
    want = _grey(served.body())
    assert shown_img.std() > 10, "the preview looks blank"
    diff = float(np.abs(shown_img - want).mean())
    assert diff < 10, f"the preview is not the first slice (mean difference {diff:.1f})"

    # the diagnostic image arrives: the preview goes, Cornerstone's image is on screen
    for route in held:
        route.continue_()
    page.unroute("**/frames/**")
    page.wait_for_function("() => window.__teleradViewer.stats.firstDiagnosticImageMs !== null")
    page.wait_for_function("() => !document.querySelector('[data-testid=viewer-preview]')")
    assert page.evaluate("() => window.__teleradPreview.ended") == "replaced"
    page.wait_for_timeout(300)
    _shot(page, "11-preview-replaced")
    assert _viewport_pixels(page)["std"] > 10
    stats = page.evaluate("() => ({...window.__teleradViewer.stats})")
    assert 0 < stats["firstImageMs"] < stats["firstDiagnosticImageMs"], stats
    vp0 = page.get_by_test_id("viewer-viewport-0")  # the CT + US study opens in 1×2: the CT stack is viewport 0
    assert "图像：1 / 20" in vp0.get_by_test_id("viewer-corner-bottom_left").inner_text()
    # no CSP refusal or other error (the boot module is a file, its styles set through the CSSOM)
    assert not [e for e in page.js_errors if "favicon" not in e and "401" not in e], page.js_errors


def test_view01_no_preview_of_another_hospitals_study(app, vpage) -> None:  # type: ignore[no-untyped-def]
    page = vpage
    base = page.base_url
    _team, _case, _task, ct, _us = _seed(app)
    other = make_user(app, "requester", institution_code="M02")
    _login(page, base, other.username, other.password)
    asked: list[tuple[str, int]] = []
    page.on("response", lambda r: asked.append((r.url, r.status)) if "/dicomweb/" in r.url else None)
    page.goto(f"{base}/viewer/studies/{ct[0].StudyInstanceUID}")
    err = page.get_by_test_id("viewer-error")
    err.wait_for()
    assert "无权查看或检查不存在" in err.inner_text()
    page.wait_for_timeout(500)
    _shot(page, "12-no-preview-no-access")
    assert page.locator(PREVIEW).count() == 0
    assert page.evaluate("() => window.__teleradPreview && window.__teleradPreview.paintedAt") is None
    # the preview's QIDO requests were refused like the viewer's; nothing rendered, no metadata
    assert asked
    assert all(status == 404 for _url, status in asked), asked
    assert not [u for u, _s in asked if "/rendered" in u or "/metadata" in u or "/frames/" in u], asked
