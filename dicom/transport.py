"""pynetdicom transport tuned for ingest: event-driven DUL, bounded PDU reads, TCP_NODELAY/QUICKACK, shared contexts.

Subclasses of pynetdicom 3.0.4's classes (pinned in pyproject.toml; tests/dicom/test_transport.py checks the
internals relied on here). What they change and why — measured on this machine, see issue 4:

- `DULServiceProvider` polls its socket with `select(..., 0)` and sleeps `_run_loop_delay` (1 ms) when idle, and
  `Association._run_reactor` sleeps 1 ms per loop: together ~3.4 ms per message. Here the DUL blocks in `select` on
  the socket *and* a wake-up pipe written whenever a primitive is queued for sending, and the association reactor
  blocks on the DIMSE message queue: no polling latency and no idle CPU.
- `AssociationSocket.recv` reads 4 KiB at a time and trusts the PDU length field: here it reads into one buffer and
  refuses a PDU longer than the negotiated maximum (plus slack) before allocating (REQ: DSEC-07; the pynetdicom
  #1086 "PDU LENGTH OOM" class). TCP_QUICKACK is re-armed after reads (Linux clears it) and TCP_NODELAY is set, so
  peers that keep Nagle on do not wait ~44 ms per response.
- `RequestHandler` deep-copies the server's presentation contexts for every association (~35 ms for ~170 contexts);
  negotiation only reads them, so every association shares the server's list (dicom/server.py FastRequestHandler).
"""

from __future__ import annotations

import logging
import os
import queue
import select
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, cast

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu_primitives import A_ABORT, A_P_ABORT
from pynetdicom.timer import Timer
from pynetdicom.transport import AssociationSocket

from dicom.fastpath import StreamingDIMSE

_log = logging.getLogger("telerad.dicom")
A_ABORT_PDU = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0x02, 0x00])  # PS3.8 9.3.8: source service provider, reason 0

PDU_HEADER = 6
# A PDU may carry a little more than max_pdu (the PDV headers); anything beyond this is a lie or an attack.
PDU_SLACK = 1024
_SELECT_TIMEOUT = 0.05
_REACTOR_WAIT = 0.02
_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def _peer_description(assoc: Any) -> str:
    """`AE title from address:port` of the association's requestor, as far as it is known."""
    req: Any = getattr(assoc, "requestor", None)  # anything: this describes an association in any state
    aet = ""
    try:
        aet = str(getattr(req.primitive, "calling_ae_title", "") or req.ae_title or "").strip()
    except Exception:  # noqa: S110 - before the A-ASSOCIATE-RQ there is no AE title yet
        pass
    try:
        where = f"{req.address}:{req.port}"
    except Exception:
        where = "?"
    return f"calling AE {aet or '?'} from {where}"


def association_lost(assoc: Any, reason: str, *, exc_info: bool = False) -> None:
    """Log (warning, once per association) that an association ended other than by A-RELEASE or a rejection:
    an abort by us or by the peer, a timeout, a closed connection. A dropped association is never silent."""
    if getattr(assoc, "_telerad_lost", False):
        return
    try:
        assoc._telerad_lost = True
    except AttributeError:
        pass
    _log.warning("DICOM association (%s) ended abnormally: %s", _peer_description(assoc), reason, exc_info=exc_info)


class _Wake:
    """A self-pipe: one byte written wakes a `select` waiting on `fd`."""

    def __init__(self) -> None:
        self.fd, self._w = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._w, False)
        self.closed = False

    def set(self) -> None:
        try:
            os.write(self._w, b"\0")
        except (BlockingIOError, OSError):
            pass  # pipe full (a wake-up is already pending) or closed

    def drain(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for fd in (self.fd, self._w):
                try:
                    os.close(fd)
                except OSError:
                    pass


class _WakeQueue(queue.Queue):  # type: ignore[type-arg]
    """The DUL's to-provider queue: putting a primitive wakes the DUL thread."""

    def __init__(self, wake: _Wake) -> None:
        super().__init__()
        self._wake = wake

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._wake.set()


class _NotifyQueue(queue.Queue):  # type: ignore[type-arg]
    """The DUL's to-user queue: putting an ACSE primitive (A-RELEASE, A-ABORT) also wakes the association reactor,
    which otherwise only notices it when its wait on the DIMSE queue times out."""

    def __init__(self, notify: Callable[[], None]) -> None:
        super().__init__()
        self._notify = notify

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._notify()


class MonotonicTimer(Timer):
    """pynetdicom's Timer on the monotonic clock: it measures with time.time(), so a wall-clock step (NTP, a VM
    resuming) expired the idle and ARTIM timers of every open association at once — a silent A-ABORT."""

    @property
    def remaining(self) -> float:
        if self.timeout is None:
            return 1
        if self._start_time is None:
            return self.timeout
        end = time.monotonic() if self._end_time is None else self._end_time
        return self.timeout - (end - self._start_time)

    def start(self) -> None:
        self._start_time = time.monotonic()
        self._end_time = None

    def stop(self) -> None:
        self._end_time = time.monotonic()


class FastDUL(DULServiceProvider):
    """DUL without polling sleeps: waits in `select` until the peer sends or a primitive is queued."""

    def __init__(self, assoc: Association) -> None:
        super().__init__(assoc)
        self.wake = _Wake()
        self.to_provider_queue = _WakeQueue(self.wake)
        self.to_user_queue = _NotifyQueue(self._notify_reactor)
        self._run_loop_delay = 0  # time.sleep(0): only yields; the blocking happens in FastSocket.ready
        # pynetdicom's Association applies network_timeout to the idle timer of the DUL it created itself; this one
        # replaces that DUL, so it takes the (configured) value here instead of keeping Timer(60). FastAssociation
        # sets the ARTIM timeout (acse_timeout) after this.
        self._idle_timer = MonotonicTimer(assoc.network_timeout)
        self.artim_timer = MonotonicTimer(self.artim_timer.timeout)
        # A request being served (here or in the reactor) is not peer idleness: the peer waits for our response.
        self.serving = 0

    def _notify_reactor(self) -> None:
        dimse = getattr(self.assoc, "dimse", None)
        cond = getattr(getattr(dimse, "msg_queue", None), "not_empty", None)
        if cond is not None:
            with cond:
                cond.notify_all()

    def kill_dul(self) -> None:
        super().kill_dul()
        self.wake.set()

    def stop_dul(self) -> bool:
        self.wake.set()
        return super().stop_dul()

    def run_reactor(self) -> None:
        try:
            super().run_reactor()
        except Exception:
            # REQ: DSEC-08 — pynetdicom's state machine re-raises what it cannot decode (an even presentation context
            # ID, …) and its thread ends with the socket still open: answer A-ABORT and close instead.
            association_lost(self.assoc, "undecodable PDU from the peer; A-ABORT sent", exc_info=True)
            self.abort_and_close()
        finally:
            self.wake.close()
            sock = self.socket
            if sock is not None and sock.socket is not None:
                sock.close()  # the reactor is gone: nobody reads this connection any more (pynetdicom leaves it open)

    def abort_and_close(self) -> None:
        """A-ABORT (service provider, reason not specified) then close the connection; best effort."""
        self.assoc.is_aborted = True
        self.assoc.is_established = False
        self.assoc._kill = True
        if isinstance(self.socket, FastSocket):
            self.socket.abort_and_close()


class FastSocket(AssociationSocket):
    """Acceptor socket: blocking readiness wait with a wake-up fd, one-buffer bounded reads, QUICKACK re-armed."""

    def __init__(self, assoc: Association, client_socket: socket.socket, max_pdu: int) -> None:
        super().__init__(assoc, client_socket=client_socket)
        self.max_read = max_pdu + PDU_SLACK
        try:
            client_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        # A peer that stalls inside a PDU (slowloris, a length field larger than what it sends) times out instead
        # of blocking the DUL thread forever (REQ: DSEC-07).
        client_socket.settimeout(assoc.network_timeout)
        self._opened = time.monotonic()
        self._quickack()

    def _quickack(self) -> None:
        if _TCP_QUICKACK is not None and self.socket is not None:
            try:
                self.socket.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
            except OSError:
                pass

    @property
    def ready(self) -> bool:
        sock = self.socket
        if sock is None or self._is_connected is False:
            return False
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        dul = self.assoc.dul
        wake = getattr(dul, "wake", None)
        # Something queued for sending, or an event the state machine has not processed yet (the A-ASSOCIATE-RQ
        # read in the same loop as the connection's Evt5): report "no data" at once so the DUL loop handles it.
        # Waiting here instead held every association request for the full select timeout (50 ms).
        if dul.event_queue.queue or (
            getattr(dul, "to_provider_queue", None) is not None and dul.to_provider_queue.queue
        ):
            timeout = 0.0
        else:
            timeout = _SELECT_TIMEOUT
        fds: list[Any] = [sock]
        if wake is not None and not wake.closed:
            fds.append(wake.fd)
        try:
            readable, _, _ = select.select(fds, [], [], timeout)
        except (OSError, ValueError) as exc:
            association_lost(self.assoc, f"connection unusable ({type(exc).__name__}: {exc}); closed")
            self.event_queue.put("Evt17")
            return False
        if wake is not None and wake.fd in readable:
            wake.drain()
        return sock in readable

    def recv(self, nr_bytes: int) -> bytearray:
        """Read exactly `nr_bytes` (or fewer when the peer closes); refuses lengths above the PDU bound.

        Raises:
            OSError: the requested length exceeds the negotiated maximum PDU (the DUL then closes the connection).
        """
        if nr_bytes > self.max_read:
            association_lost(self.assoc, f"PDU length {nr_bytes} exceeds the maximum {self.max_read}; A-ABORT sent")
            self.abort_and_close()
            raise OSError(f"PDU length {nr_bytes} exceeds the maximum {self.max_read}")
        sock = self.socket
        if sock is None:
            return bytearray()
        buf = bytearray(nr_bytes)
        view = memoryview(buf)
        got = 0
        deadline: float | None = None
        while got < nr_bytes:
            if got and deadline is None:
                # A partial PDU (rare: usually it is all buffered): the rest must come in time, however it trickles
                # — one byte per second would otherwise hold this thread and an association slot forever
                # (REQ: DSEC-07 slowloris). Before the association is established that is the ACSE (ARTIM) limit
                # counted from the connection, afterwards the network timeout per PDU.
                deadline = self._pdu_deadline()
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    del view
                    association_lost(self.assoc, f"PDU not completed in time ({got} of {nr_bytes} bytes); A-ABORT sent")
                    self.abort_and_close()
                    raise TimeoutError("PDU not received in time")
                sock.settimeout(remaining)
            try:
                n = sock.recv_into(view[got:], nr_bytes - got)
            except TimeoutError:
                del view
                association_lost(
                    self.assoc,
                    f"no data from the peer for {self.assoc.network_timeout} s inside a PDU ({got} of {nr_bytes} "
                    "bytes; network timeout); A-ABORT sent",
                )
                self.abort_and_close()
                raise
            if n == 0:
                del view
                return buf[:got]
            got += n
        del view
        if deadline is not None:
            sock.settimeout(self.assoc.network_timeout)
        self._quickack()
        return buf

    def _pdu_deadline(self) -> float:
        if not self.assoc.is_established:
            return self._opened + float(self.assoc.acse_timeout or 30)
        return time.monotonic() + float(self.assoc.network_timeout or 60)

    def abort_and_close(self) -> None:
        """A-ABORT (service provider, reason not specified), then close the connection; best effort."""
        sock = self.socket
        if sock is not None:
            try:
                sock.sendall(A_ABORT_PDU)
            except OSError:
                pass
            self.close()


class FastAssociation(Association):
    """Acceptor association with the event-driven DUL and a reactor that waits on the DIMSE queue."""

    def __init__(
        self, ae: Any, mode: str, on_end: Callable[[Association], None] | None = None, rx_dir: str | None = None
    ) -> None:
        super().__init__(ae, mode)
        self.dul = FastDUL(self)
        if rx_dir is not None:
            self.dimse = StreamingDIMSE(self, rx_dir)
        self.acse_timeout = ae.acse_timeout  # the setter arms the new DUL's ARTIM timer (PS3.8 9.1.5)
        self._on_end = on_end
        self.telerad: Any = None  # per-association state set by dicom/handlers.py

    def run_reactor(self) -> None:
        try:
            super().run_reactor()
        finally:
            # A data set cut off by A-ABORT, A-RELEASE-RQ, RST or close: its temp file is removed (and its fd
            # closed), never left half-stored in the store's tmp/ (REQ: DSEC-05, §C1 teardown races).
            received = getattr(getattr(self.dimse, "message", None), "received", None)
            if received is not None:
                received.discard()
            if self.is_aborted:  # aborted on a path that did not say why (pynetdicom's DUL error handling, …)
                association_lost(self, "association aborted")
            if self._on_end is not None:
                self._on_end(self)

    def _run_reactor(self) -> None:
        # Same checks as pynetdicom's loop (association.py), but it blocks on the DIMSE queue instead of sleeping.
        self._is_paused = False
        msg_queue = self.dimse.msg_queue
        dul = cast(FastDUL, self.dul)  # set in __init__
        user_queue = dul.to_user_queue
        last_head: Any = None
        while not self._kill:
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False
            # Wait for a DIMSE message; an ACSE primitive from the DUL (release, abort) wakes this wait too
            # (FastDUL._notify_reactor), so the timeout only bounds how late _kill and a dead DUL are noticed. A
            # primitive already queued is looked at once without waiting (it may have come before this wait).
            with msg_queue.not_empty:
                head = user_queue.queue[0] if user_queue.queue else None
                if not msg_queue.queue and (head is None or head is last_head):
                    msg_queue.not_empty.wait(_REACTOR_WAIT)
                last_head = head
            try:
                context_id, msg = msg_queue.get(block=False)
            except queue.Empty:
                msg = None
            if msg:
                dul.serving += 1
                try:
                    self._serve_request(msg, cast(int, context_id))  # a message always comes with its context
                finally:
                    dul.serving -= 1
                    dul._idle_timer.restart()
                continue
            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return
            if self.acse.is_aborted():
                association_lost(self, _abort_reason(self.dul.receive_pdu(wait=False)))
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return
            if not self.dul.is_alive():
                association_lost(self, "the DUL thread stopped (connection closed or DUL error)")
                self.kill()
                return
            if self.dul.idle_timer_expired() and not dul.serving:
                # The network timeout counts the peer's silence only: the time spent serving its last request (a
                # long fsync, a lock wait) used to count too, and a handler slower than the timeout was followed by
                # a silent A-ABORT.
                association_lost(
                    self, f"no data from the peer for {self.network_timeout} s (network timeout); A-ABORT sent"
                )
                self.abort()
                self.kill()
                return


def _abort_reason(primitive: Any) -> str:
    """Why the DUL delivered an A-ABORT (the peer's) or an A-P-ABORT (the provider's: connection closed, …)."""
    if isinstance(primitive, A_ABORT):
        return f"A-ABORT received from the peer (abort source {primitive.abort_source})"
    if isinstance(primitive, A_P_ABORT):
        return f"connection lost without A-RELEASE (A-P-ABORT, provider reason {primitive.provider_reason})"
    return f"aborted ({type(primitive).__name__})"
