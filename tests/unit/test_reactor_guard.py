"""The requestor reactor race fix (dicom/reactor_guard.py): while a caller pauses the reactor, the reactor's
non-blocking take leaves the next DIMSE message on the queue for that caller."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from pynetdicom.dimse import DIMSEServiceProvider

import dicom  # noqa: F401  # the package installs the guard


def _provider() -> DIMSEServiceProvider:
    assoc = SimpleNamespace(_reactor_checkpoint=threading.Event(), dimse_timeout=1)
    provider = DIMSEServiceProvider(assoc)  # type: ignore[arg-type]
    provider.msg_queue.put((1, "response"))
    return provider


def test_reactor_takes_nothing_while_a_caller_pauses_it() -> None:
    provider = _provider()
    provider.assoc._reactor_checkpoint.clear()  # a send_c_*() caller is pausing the reactor
    assert provider.get_msg(block=False) == (None, None)
    assert provider.msg_queue.qsize() == 1  # left for the caller
    assert provider.get_msg(block=True) == (1, "response")  # the caller's blocking take gets it


def test_reactor_takes_a_message_when_nobody_waits() -> None:
    provider = _provider()
    provider.assoc._reactor_checkpoint.set()
    assert provider.get_msg(block=False) == (1, "response")
    assert provider.get_msg(block=False) == (None, None)
