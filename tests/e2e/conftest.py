"""Browser end-to-end fixtures: telerad served by waitress on a free loopback port, Debian's Chromium via Playwright."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("TELERAD_CHROMIUM", "/usr/bin/chromium")
DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def live_server(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Serve the test app (its own fresh database) over real HTTP."""
    if not (DIST / "index.html").exists():
        pytest.fail("web/dist is not built: run `make web` (make test does it) before the browser tests")
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=4, ident="telerad-e2e")
    port = server.effective_port  # type: ignore[union-attr]
    stopping = threading.Event()

    def serve() -> None:
        # close() runs in this (the test's) thread while the server's loop may be inside select() on the sockets
        # it closes: EBADF (or ValueError for a closed fd) there is the shutdown itself, not a server fault.
        try:
            server.run()
        except (OSError, ValueError):
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    stopping.set()
    server.close()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
                "--disable-quic",
                # WebGL through SwiftShader (software): the viewer (Cornerstone3D) renders with it; harmless elsewhere
                "--use-gl=angle",
                "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader",
            ],
        )
        yield b
        b.close()


@pytest.fixture(scope="session")
def gl_browser(browser):  # type: ignore[no-untyped-def]
    """The viewer's tests: the same Chromium (one Playwright per worker; a second sync_playwright in the same process
    fails), which renders WebGL through SwiftShader."""
    return browser


@pytest.fixture
def page(browser, live_server, request):  # type: ignore[no-untyped-def]
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.base_url = live_server  # type: ignore[attr-defined]
    pg.js_errors = errors  # type: ignore[attr-defined]
    yield pg
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def vpage(gl_browser, live_server) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """A fresh context (empty cache: a full navigation) with software WebGL, collecting the page's errors."""
    context = gl_browser.new_context(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1400, "height": 900}
    )
    pg = context.new_page()
    pg.set_default_timeout(30000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.base_url = live_server
    pg.js_errors = errors
    yield pg
    context.close()
