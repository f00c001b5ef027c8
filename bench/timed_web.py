"""`telerad web` with every request timed on the server (bench/bench_viewer.py): the same command, app and waitress
settings, the app's WSGI callable wrapped once by `Timing`.

Per request, `Timing` appends one JSON line to the file named by TELERAD_BENCH_TIMING_LOG — method, path, status,
`start` (wall clock, s), `app_ms` (request received → the app called start_response: the app's own time before the
first byte, database and file reads included) and `total_ms` (→ the body's last chunk handed to waitress, streaming
included), `bytes` — and sets `Server-Timing: app;dur=…`, which the page reads in Resource Timing (`serverTiming`).
The cost is one small write per request (~10 µs), outside the times it reports.

Run as `.venv/bin/python bench/timed_web.py` with telerad's environment (TELERAD_HTTP_PORT, TELERAD_DATABASE_URL …).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

StartResponse = Callable[..., Any]


class Timing:
    """WSGI middleware: per-request server timing into a JSON-lines file and a `Server-Timing` header."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]], log_path: str) -> None:
        self.app = app
        self._fh = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the process' life
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        t0 = time.perf_counter()
        wall = time.time()
        rec: dict[str, Any] = {"method": environ.get("REQUEST_METHOD"), "path": environ.get("PATH_INFO", "")}
        if environ.get("QUERY_STRING"):
            rec["query"] = environ["QUERY_STRING"][:200]

        def timed_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            app_ms = (time.perf_counter() - t0) * 1000
            rec["status"], rec["app_ms"] = int(status.split(" ", 1)[0]), round(app_ms, 3)
            headers = [*headers, ("Server-Timing", f"app;dur={app_ms:.3f}")]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        body = self.app(environ, timed_start)
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None and isinstance(body, wrapper):  # static files: waitress sends them itself, kept so
            rec["file"] = True
            self._write(rec, t0, wall, 0)
            return body
        return self._drain(body, rec, t0, wall)

    def _write(self, rec: dict[str, Any], t0: float, wall: float, sent: int) -> None:
        rec.update(start=round(wall, 6), total_ms=round((time.perf_counter() - t0) * 1000, 3), bytes=sent)
        line = json.dumps(rec, separators=(",", ":")) + "\n"
        with self._lock:
            self._fh.write(line)

    def _drain(self, body: Iterable[bytes], rec: dict[str, Any], t0: float, wall: float) -> Iterator[bytes]:
        sent = 0
        try:
            for chunk in body:
                sent += len(chunk)
                yield chunk
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            self._write(rec, t0, wall, sent)


def main() -> None:
    import api.app

    log_path = os.environ["TELERAD_BENCH_TIMING_LOG"]
    create_app = api.app.create_app

    def timed_create_app(*args: Any, **kw: Any) -> Any:
        app = create_app(*args, **kw)
        app.wsgi_app = Timing(app.wsgi_app, log_path)  # type: ignore[method-assign]
        return app

    api.app.create_app = timed_create_app  # telerad.cli._app() imports it at call time
    from telerad.cli import main as cli

    cli(["web"])


if __name__ == "__main__":
    main()
