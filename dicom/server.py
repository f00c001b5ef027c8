"""The DICOM listening server: pynetdicom's threaded association server with telerad's request handler, and, for
`telerad dicom --processes N`, the supervisor's shared listening socket taken in turns by load (issue 12).

Split from dicom/transport.py, which keeps the per-association transport (DUL, socket, reactor).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from pynetdicom import evt
from pynetdicom._globals import MODE_ACCEPTOR
from pynetdicom.association import Association
from pynetdicom.transport import AssociationServer, RequestHandler, ThreadedAssociationServer

from dicom.transport import FastAssociation, FastSocket

if TYPE_CHECKING:
    from dicom.shared_limits import AcceptBalance


class FastRequestHandler(RequestHandler):
    """Creates FastAssociations that share the server's presentation contexts (no per-association deepcopy)."""

    server: TeleradServer

    def handle(self) -> None:
        sock = self.request
        assert isinstance(sock, socket.socket)
        assoc = self._create_association()
        evt.trigger(assoc, evt.EVT_CONN_OPEN, {"address": self.client_address})
        assoc.start()
        self.server.connection.handed_over = True  # the association's end now counts it off (on_association_end)

    def _create_association(self) -> Association:
        ae = self.ae
        srv = self.server
        assoc = FastAssociation(ae, MODE_ACCEPTOR, on_end=srv.on_association_end, rx_dir=srv.rx_dir)
        assoc._server = srv
        assoc.name = f"AcceptorThread@{threading.get_ident()}"
        sock = FastSocket(assoc, self.request, srv.max_pdu)  # type: ignore[arg-type]
        assoc.set_socket(sock)
        assoc.acceptor.maximum_length = ae.maximum_pdu_size
        assoc.acceptor.ae_title = srv.ae_title
        assoc.acceptor.address_info = self.local
        assoc.acceptor.implementation_class_uid = ae.implementation_class_uid
        assoc.acceptor.implementation_version_name = ae.implementation_version_name
        assoc.acceptor.supported_contexts = srv.contexts  # shared, read-only during negotiation
        assoc.requestor.address_info = self.remote
        for event in srv._handlers:
            if event.is_intervention and srv._handlers[event]:
                assoc.bind(event, *srv._handlers[event])
            elif isinstance(event, evt.NotificationEvent):
                for handler in srv._handlers[event]:
                    assoc.bind(event, handler[0], handler[1])  # type: ignore[index]
        return assoc


class TeleradServer(ThreadedAssociationServer):
    """Threaded association server. Several receiver processes on one port either each bind with SO_REUSEPORT
    (`reuse_port`), or share the supervisor's listening socket (`listen_fd`) and take turns by load (`balance`,
    dicom/shared_limits.py AcceptBalance)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        *args: Any,
        reuse_port: bool = False,
        max_pdu: int = 262144,
        on_association_end: Callable[[Association], None] | None = None,
        rx_dir: str | None = None,
        listen_fd: int | None = None,
        balance: AcceptBalance | None = None,
        **kwargs: Any,
    ) -> None:
        self.reuse_port = reuse_port
        self.rx_dir = rx_dir
        self.max_pdu = max_pdu
        self._on_end = on_association_end
        self.listen_fd = listen_fd
        self.balance = balance
        self._deferred_since: float | None = None
        self.connection = threading.local()  # per connection thread: handed_over to an association thread?
        kwargs.setdefault("request_handler", FastRequestHandler)
        super().__init__(*args, **kwargs)

    def on_association_end(self, assoc: Association) -> None:
        try:
            if self._on_end is not None:
                self._on_end(assoc)
        finally:
            if self.balance is not None:
                self.balance.closed()

    def server_bind(self) -> None:
        if self.listen_fd is not None:  # the supervisor's socket, already bound, listening and non-blocking
            cast(socket.socket, self.socket).close()
            self.socket = socket.socket(fileno=os.dup(self.listen_fd))
            self.server_address = self.socket.getsockname()
            return
        sock = cast(socket.socket, self.socket)  # made by socketserver.TCPServer.__init__ before server_bind
        if self.reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        AssociationServer.server_bind(self)
        # Accepted sockets must not inherit a timeout from the listening socket: the DUL waits in select.
        sock.settimeout(None)

    def server_activate(self) -> None:
        if self.listen_fd is None:
            super().server_activate()

    # -- balanced accept (shared listening socket) ----------------------------------------------------------------
    def _handle_request_noblock(self) -> None:
        """Take a pending connection only on this receiver's turn; another receiver's accept empties the backlog
        (ours then fails with EAGAIN, which socketserver ignores)."""
        if self.balance is not None and not self.balance.my_turn():
            now = time.monotonic()
            if self._deferred_since is None:
                self._deferred_since = now
            if now - self._deferred_since < self.balance.MAX_DEFER_S:
                time.sleep(0.001)
                return
        self._deferred_since = None
        super()._handle_request_noblock()  # type: ignore[misc]

    def service_actions(self) -> None:
        if self._deferred_since is None:  # pynetdicom counts turns to its gc.collect(); a deferral is not a turn
            super().service_actions()

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.balance is None:
            super().process_request(request, client_address)
            return
        self.balance.opened()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.balance.closed()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """A connection is counted off when its association ends (on_association_end), or here if it never got
        one (a failed TLS handshake, an error before the association thread started)."""
        self.connection.handed_over = False
        try:
            self.serve_connection(request, client_address)
        finally:
            if self.balance is not None and not self.connection.handed_over:
                self.balance.closed()

    def serve_connection(self, request: Any, client_address: Any) -> None:
        """One accepted connection, in its own thread (subclasses extend this, not process_request_thread)."""
        super().process_request_thread(request, client_address)

    def server_close(self) -> None:
        if self.listen_fd is None:
            super().server_close()
        else:  # never shutdown() the shared socket: the other receivers still listen on it
            cast(socket.socket, self.socket).close()
