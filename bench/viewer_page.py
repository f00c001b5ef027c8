"""The browser side of bench/bench_viewer.py: Debian's Chromium driven by Playwright, one study opened in telerad's
viewer and measured from the page (the viewer's `window.__teleradViewer.stats`, Resource Timing) and from the server's
request log (bench/timed_web.py)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

# Software WebGL through SwiftShader (Cornerstone3D needs WebGL; ARCHITECTURE.md "Web and viewer").
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
VIEWPORT = {"width": 1920, "height": 1080}  # a reading workstation's screen
# Resource Timing keeps 250 entries by default; a 1,000-slice stack makes 1,000+ requests.
INIT_SCRIPT = "performance.setResourceTimingBufferSize(100000);"
STATS = "() => { const v = window.__teleradViewer; return v && v.stats ? { ...v.stats } : null }"
FIRST = "() => { const v = window.__teleradViewer; return !!(v && v.stats && v.stats.firstImageMs != null) }"
ALL = "() => { const s = window.__teleradViewer.stats; return s.allImagesMs != null }"
SHOWN = (
    "() => { const s = window.__teleradViewer.stats; return !('viewportsShownMs' in s) || s.viewportsShownMs != null }"
)
# Cornerstone's first render (the diagnostic image; `firstImageMs` may be the boot preview's, web/src/boot/preview.ts)
DIAGNOSTIC = (
    "() => { const v = window.__teleradViewer; return !!(v && v.stats && v.stats.firstDiagnosticImageMs !== null) }"
)
PREVIEW = "() => { const p = window.__teleradPreview; return p ? { painted_ms: p.paintedAt, ended: p.ended } : null }"
RESOURCES = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource').map(e => ({
    url: e.name, start: e.startTime, req: e.requestStart, resp: e.responseStart, end: e.responseEnd,
    bytes: e.encodedBodySize, server: (e.serverTiming.find(t => t.name === 'app') || {}).duration ?? null,
  }));
  return {
    nav: nav ? { response_end: nav.responseEnd, dom_content_loaded: nav.domContentLoadedEventEnd,
                 load: nav.loadEventEnd } : null,
    resources: res,
  };
}"""
SCROLL = """async (steps) => {
  const v = window.__teleradViewer;
  const frame = () => new Promise(r => requestAnimationFrame(() => r()));
  await frame();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) { await v.scroll(1); await frame(); }
  return steps * 1000 / (performance.now() - t0);
}"""


@dataclass
class PageEnv:
    base: str
    user: dict[str, str]
    chromium: str
    timeout_s: float
    scroll_steps: int
    shots: Path | None


class Browser:
    """Chromium for the whole run; a fresh context (empty cache, new login) for every study opened."""

    def __init__(self, env: PageEnv) -> None:
        self.env = env

    def __enter__(self) -> Browser:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(executable_path=self.env.chromium, args=CHROMIUM_ARGS)
        self.version = self.browser.version
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.browser.close()
        self._pw.stop()

    def open_study(
        self, study: dict[str, Any], key: str, rnd: int, before: Callable[[], None] = lambda: None
    ) -> dict[str, Any]:
        """Log in, navigate to the study's viewer URL (`before()` just before), wait for the first and all images,
        scroll; the figures."""
        ctx = self.browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", viewport=VIEWPORT)  # type: ignore[arg-type]
        ctx.add_init_script(INIT_SCRIPT)
        page = ctx.new_page()
        page.set_default_timeout(30000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)[:300]))
        page.on("console", lambda m: errors.append(m.text[:300]) if m.type == "error" else None)
        out: dict[str, Any] = {"round": rnd, "missing": {}}
        try:
            self._login(page)
            errors.clear()  # the log-in page's own (its session probe answers 401 before the log-in)
            before()
            page.goto(f"{self.env.base}/viewer/studies/{study['study_uid']}", wait_until="commit")
            self._measure(page, study, key, rnd, out)
        finally:
            out["breakdown"] = breakdown(_evaluate(page, RESOURCES), out.get("stats"))
            if errors:
                out["page_errors"] = errors[:10]
            ctx.close()
        return out

    def _login(self, page: Any) -> None:
        page.goto(f"{self.env.base}/login")
        page.get_by_test_id("login-username").fill(self.env.user["username"])
        page.get_by_test_id("login-password").fill(self.env.user["password"])
        page.get_by_test_id("login-submit").click()
        page.get_by_test_id("sidebar").wait_for()

    def _measure(self, page: Any, study: dict[str, Any], key: str, rnd: int, out: dict[str, Any]) -> None:
        from playwright.sync_api import TimeoutError as PwTimeout

        timeout = self.env.timeout_s * 1000
        try:
            page.wait_for_function(FIRST, timeout=timeout, polling=20)
        except PwTimeout:
            has = page.evaluate("() => typeof window.__teleradViewer")
            why = (
                "the viewer is not built: no window.__teleradViewer at /viewer/studies/<uid>"
                if has == "undefined"
                else f"no first image within {self.env.timeout_s:.0f} s"
            )
            for f in ("first_image_ms", "all_images_ms", "scroll_fps", "dr_two_images_ms"):
                out["missing"][f] = why
            out["stats"] = _evaluate(page, STATS)
            self._shot(page, key, rnd, "timeout")
            return
        if rnd == 0:
            out["first_image_nonblank"] = self._shot(page, key, rnd, "first")
        try:
            page.wait_for_function(DIAGNOSTIC, timeout=timeout, polling=20)
            if rnd == 0:  # the screen once Cornerstone drew: the preview (if any) gone, the real image there
                out["first_diagnostic_nonblank"] = self._shot(page, key, rnd, "diagnostic")
        except PwTimeout:
            out["missing"]["first_diagnostic_image_ms"] = f"no diagnostic image within {self.env.timeout_s:.0f} s"
        try:
            page.wait_for_function(ALL, timeout=timeout, polling=50)
        except PwTimeout:
            out["missing"]["all_images_ms"] = f"not every image cached within {self.env.timeout_s:.0f} s"
        if key == "dr":  # both views rendered (a viewer without the figure: not waited for)
            try:
                page.wait_for_function(SHOWN, timeout=timeout, polling=20)
            except PwTimeout:
                out["missing"]["dr_two_images_ms"] = f"not every view rendered within {self.env.timeout_s:.0f} s"
        stats = out["stats"] = page.evaluate(STATS)
        first, every = stats.get("firstImageMs"), stats.get("allImagesMs")
        out["images_shown"] = stats.get("imagesTotal")
        out["preview"] = _evaluate(page, PREVIEW)
        diagnostic = stats.get("firstDiagnosticImageMs")
        out["dr_first_diagnostic_image_ms" if key == "dr" else "first_diagnostic_image_ms"] = _round(diagnostic)
        if key == "dr":
            out["dr_first_image_ms"] = round(first, 1)
            out["dr_two_images_ms"] = None
            if every is None:
                out["missing"]["dr_two_images_ms"] = out["missing"].pop("all_images_ms")
            elif (stats.get("imagesTotal") or 0) < study["images"]:  # the viewer's stats cover the displayed series
                out["missing"]["dr_two_images_ms"] = (
                    f"the viewer opened the study showing {stats.get('imagesTotal')} of its {study['images']} images "
                    "(layout 1×1, a series a viewport): the second image is neither rendered nor loaded"
                )
            elif "dr_two_images_ms" not in out["missing"]:  # both decoded, and both shown (stats.viewportsShownMs)
                shown = stats.get("viewportsShownMs")
                out["dr_two_images_ms"] = round(max(first, every, shown if shown is not None else first), 1)
            return
        out["first_image_ms"] = round(first, 1)
        out["all_images_ms"] = round(every, 1) if every is not None else None
        if every is None:
            return
        steps = self.env.scroll_steps or max(1, int(stats.get("imagesTotal") or study["images"]) - 1)
        out["scroll_fps"] = round(page.evaluate(SCROLL, steps), 1)
        out["scroll_steps"] = steps
        if rnd == 0:
            self._shot(page, key, rnd, "scrolled")

    def _shot(self, page: Any, key: str, rnd: int, label: str) -> bool | None:
        """A screenshot (with --shots) and whether the largest canvas on screen is not blank (pixel spread)."""
        from io import BytesIO

        from PIL import Image, ImageStat

        box = page.evaluate(
            "() => { let best = null, area = 0; for (const c of document.querySelectorAll('canvas')) {"
            " const r = c.getBoundingClientRect(); if (r.width * r.height > area) { area = r.width * r.height;"
            " best = {x: r.x, y: r.y, width: r.width, height: r.height}; } } return best }"
        )
        png = page.screenshot()
        if self.env.shots is not None:
            self.env.shots.mkdir(parents=True, exist_ok=True)
            (self.env.shots / f"{key}-r{rnd}-{label}.png").write_bytes(png)
        if not box or box["width"] < 8 or box["height"] < 8:
            return None
        img = Image.open(BytesIO(png)).convert("L")
        crop = img.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["width"]), int(box["y"] + box["height"])))
        return bool(ImageStat.Stat(crop).stddev[0] > 2.0)


def _evaluate(page: Any, script: str) -> Any:
    try:
        return page.evaluate(script)
    except Exception:  # noqa: BLE001 - the page may be gone; the figures say so
        return None


# -- where the time went ---------------------------------------------------------------------------------------
def kind(url: str) -> str:
    if "/dicomweb/" not in url:
        return "api" if "/api/" in url else "app"
    if "/pixeldata" in url:  # a series' frames in one multipart answer (issue 16: the viewer's bulk requests)
        return "pixeldata"
    if "/frames/" in url:
        return "frames"
    if url.rstrip("/").endswith("/metadata"):
        return "metadata"
    if "/rendered" in url or "/thumbnail" in url:
        return "rendered"
    if "/bulkdata" in url:
        return "bulkdata"
    return "qido"


def _round(value: float | None, nd: int = 1) -> float | None:
    return None if value is None else round(value, nd)


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "sum": round(sum(values), 1),
        "p50": round(statistics.median(values), 2),
        "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
        "max": round(ordered[-1], 2),
    }


def _group(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "requests": len(entries),
        "mb": round(sum(e["bytes"] or 0 for e in entries) / 2**20, 2),
        "span_ms": round(max(e["end"] for e in entries) - min(e["start"] for e in entries), 1),
        "first_start_ms": round(min(e["start"] for e in entries), 1),
        "last_end_ms": round(max(e["end"] for e in entries), 1),
        "queued_ms": _stats([e["req"] - e["start"] for e in entries]),
        "wait_ms": _stats([e["resp"] - e["req"] for e in entries]),  # request sent → first byte (server + network)
        "server_app_ms": _stats([e["server"] for e in entries if e["server"] is not None]),
        "transfer_ms": _stats([e["end"] - e["resp"] for e in entries]),
    }


def _app_before(res: list[dict[str, Any]], t: float | None) -> dict[str, Any] | None:
    if t is None:
        return None
    app = [e for e in res if kind(e["url"]) == "app" and e["start"] <= t]
    js = [e for e in app if e["url"].split("?")[0].endswith(".js")]
    return {
        "requests": len(app),
        "kb": round(sum(e["bytes"] or 0 for e in app) / 1024, 1),
        "js_requests": len(js),
        "js_kb": round(sum(e["bytes"] or 0 for e in js) / 1024, 1),
    }


def breakdown(page: dict[str, Any] | None, stats: dict[str, Any] | None) -> dict[str, Any]:
    """Where the time went, from the page's Resource Timing and the viewer's stats (ms from navigation start)."""
    if not page:
        return {"page": None}
    nav = page.get("nav") or {}
    res = page["resources"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for e in res:
        groups.setdefault(kind(e["url"]), []).append(e)
    first_dw = _round(min((e["start"] for e in res if "/dicomweb/" in e["url"]), default=None))
    out: dict[str, Any] = {
        "document_ms": round(nav.get("response_end") or 0, 1),
        "dom_content_loaded_ms": round(nav.get("dom_content_loaded") or 0, 1),
        "first_dicomweb_request_ms": first_dw,
        # the app's own files (JS, CSS, fonts) requested before the first DICOMweb request: the critical path's weight
        "app_before_first_dicomweb": _app_before(res, first_dw),
        "by_kind": {k: _group(v) for k, v in sorted(groups.items())},
    }
    frames = sorted(groups.get("frames", []), key=lambda e: e["end"])
    if frames:
        f = frames[0]
        out["first_frame"] = {
            "start_ms": round(f["start"], 1),
            "queued_ms": round(f["req"] - f["start"], 1),
            "wait_ms": round(f["resp"] - f["req"], 1),
            "server_app_ms": f["server"],
            "transfer_ms": round(f["end"] - f["resp"], 1),
            "end_ms": round(f["end"], 1),
        }
        diagnostic = stats and (stats.get("firstDiagnosticImageMs") or stats.get("firstImageMs"))
        if diagnostic is not None:
            out["first_frame"]["then_decode_render_ms"] = round(diagnostic - f["end"], 1)
    if stats:
        out["viewer"] = {k: stats.get(k) for k in ("decodeMsTotal", "fetchMsTotal", "imagesTotal", "imagesCached")}
    return out


def server_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The server's own view of one study's requests (bench/timed_web.py), per kind."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(kind(r["path"]), []).append(r)
    out: dict[str, Any] = {}
    for k, rs in sorted(groups.items()):
        statuses: dict[str, int] = {}
        for r in rs:
            statuses[str(r.get("status"))] = statuses.get(str(r.get("status")), 0) + 1
        out[k] = {
            "requests": len(rs),
            "statuses": statuses,
            "app_ms": _stats([r.get("app_ms", 0.0) for r in rs]),
            "total_ms": _stats([r["total_ms"] for r in rs]),
            "mb": round(sum(r.get("bytes", 0) for r in rs) / 2**20, 2),
        }
    return out


def brief(one: dict[str, Any]) -> str:
    keys = (
        "first_image_ms",
        "first_diagnostic_image_ms",
        "all_images_ms",
        "scroll_fps",
        "dr_first_image_ms",
        "dr_first_diagnostic_image_ms",
        "dr_two_images_ms",
        "server_rss_peak_mb",
    )
    parts = [f"{k}={one[k]}" for k in keys if k in one]
    if one.get("missing"):
        parts.append(f"missing={one['missing']}")
    return " ".join(parts)
