"""Fault injection for the DSEC-05 crash test: kill the SCP process at a chosen point of the C-STORE receive path.

`TELERAD_DICOM_FAULT=<point>[:<n>]` makes the n-th instance (default 1st) that reaches `<point>` end the process
with `os._exit(9)` — no cleanup, no commit, no response, as a power cut or `kill -9` would. Points, in receive
order (dicom/handlers.handle_store):

    after_receive    the data set is in the store's tmp/ (not yet fsynced)
    after_rename     the file is linked under its content key, not yet fsynced (SECURITY.md's name for the step;
                     engine/imaging/storage.py links instead of renaming)
    after_fsync      the file and its directory are fsynced (no index row yet)
    after_db_insert  the index row is inserted (not committed)
    before_response  the row is committed (the C-STORE-RSP is not sent)

Unset (always, outside tests) every call is a no-op; the variable is ignored in production mode.
"""

from __future__ import annotations

import logging
import os
import threading

POINTS = ("after_receive", "after_fsync", "after_rename", "after_db_insert", "before_response")
EXIT_CODE = 9

log = logging.getLogger("telerad.dicom")


def _parse(spec: str) -> tuple[str | None, int]:
    if not spec:
        return None, 0
    point, _, nth = spec.partition(":")
    if point not in POINTS:
        raise ValueError(f"TELERAD_DICOM_FAULT: unknown point {point!r}; one of {', '.join(POINTS)}")
    return point, int(nth or "1")


_POINT, _NTH = (
    _parse(os.environ.get("TELERAD_DICOM_FAULT", ""))
    if os.environ.get("TELERAD_MODE", "demo") != "production"
    else (None, 0)
)
_lock = threading.Lock()
_seen = 0


def hit(point: str) -> None:
    """Called at each point of the receive path; ends the process when this is the armed point's n-th hit."""
    if _POINT is None or point != _POINT:
        return
    global _seen
    with _lock:
        _seen += 1
        if _seen >= _NTH:
            log.warning("TELERAD_DICOM_FAULT: exiting at %s (instance %d)", point, _seen)
            os._exit(EXIT_CODE)
