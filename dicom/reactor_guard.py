"""A fix for a race in pynetdicom 3.0.4's requestor reactor: a fast peer's response stolen from the waiting caller.

pynetdicom's reactor loop (association.py `_run_reactor`) marks itself paused, passes `_reactor_checkpoint.wait()`
and then takes a message with `dimse.get_msg(block=False)`. A `send_c_*()` caller clears the checkpoint and waits
until `_is_paused` is true before it sends its request. If the caller clears the checkpoint while the reactor sits
between `wait()` (already passed) and `get_msg()`, it sees `_is_paused` still true, sends, and a peer that answers
within microseconds (telerad's own SCP answers C-STORE from its DUL thread) has its response taken by the reactor:
"Received unexpected C-STORE service message", and the caller waits for its DIMSE timeout and aborts. Seen in
telerad's tests under load, and it would hit telerad's own SCU (forwarding, C-GET/C-MOVE, send) against a fast peer.

The reactor is the only caller of `get_msg(block=False)`; here it takes nothing while the checkpoint is cleared,
i.e. while a caller is pausing the reactor to wait for its own response. pynetdicom is pinned exactly
(pyproject.toml), and this module is imported by the `dicom` package so every association in the process has it.
"""

from __future__ import annotations

from typing import Any

from pynetdicom.dimse import DIMSEServiceProvider

_get_msg = DIMSEServiceProvider.get_msg


def _guarded_get_msg(self: DIMSEServiceProvider, block: bool = False) -> Any:
    if not block:
        checkpoint = getattr(getattr(self, "assoc", None), "_reactor_checkpoint", None)
        if checkpoint is not None and not checkpoint.is_set():
            return None, None  # a caller is pausing the reactor: the next message is that caller's
    return _get_msg(self, block)


def install() -> None:
    """Patch DIMSEServiceProvider.get_msg once (idempotent)."""
    if DIMSEServiceProvider.get_msg is not _guarded_get_msg:
        DIMSEServiceProvider.get_msg = _guarded_get_msg  # type: ignore[method-assign]  # the fix, see above


install()
