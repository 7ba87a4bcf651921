"""Accept-ahead relay: takes a polling server's accept sleep off each request's path.

``tursodb --sync-server`` 0.6 serves one connection at a time and closes it after each
answer (``Connection: close``). Between connections it calls a non-blocking ``accept`` and,
when no connection is waiting, sleeps 10 ms before trying again (its ``cli/sync_server.rs``,
``TursoSyncServer::run``). A client that connects right after the previous answer (pyturso's
sync client opens a new connection per request) therefore waits about 10 ms per request:
``strace`` shows ``accept4 = EAGAIN`` then ``clock_nanosleep(10 ms)`` while the request waits
in the listen backlog. Nagle and delayed ACKs play no part: every request is one
``sendto`` and the answer one ``sendto`` followed by ``close``.

The relay listens on its own loopback port and keeps one connection to the server open
*ahead* of need, so the server always finds one waiting when it returns to ``accept`` and
blocks reading it. The next client connection is forwarded over that connection, byte for
byte in both directions, until the server closes it; a new spare is opened as soon as one
is taken, and queues in the server's backlog behind it. The server reads an idle connection
for at most 30 s, so a spare older than ``spare_max_age`` is replaced before it is used.

Requests go through unchanged and in order: the server still sees every request, one per
connection. All clients of the server must use the relay (``url``): a direct connection
would queue behind the spare the server is blocked reading.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

_CHUNK = 64 * 1024


class AcceptAheadRelay:
    """Forwards each connection on ``127.0.0.1:port`` to ``upstream`` over a connection opened ahead."""

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        name: str = "relay",
        first_spare: socket.socket | None = None,
        spare_max_age: float = 15.0,
        idle_timeout: float = 120.0,
    ) -> None:
        self.upstream = upstream
        self.spare_max_age = spare_max_age
        self.idle_timeout = idle_timeout
        self.forwarded = 0
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = int(self._listener.getsockname()[1])
        self._spare: tuple[socket.socket, float] | None = None
        if first_spare is not None:  # e.g. the connection that found the server listening
            first_spare.settimeout(None)
            self._spare = (first_spare, time.monotonic())
        self._closing = False
        self._thread = threading.Thread(target=self._serve, name=f"traceparity-relay-{name}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        if self._spare is None:
            with contextlib.suppress(OSError):
                self._spare = self._connect()  # the first request is then served without waiting too
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                break
            with client:
                if self._closing:
                    break
                try:
                    upstream = self._take()
                except OSError:
                    continue  # the server is gone: the client sees a closed connection, and says so
                self.forwarded += 1  # counted before the answer goes back: a client that has it sees the count
                with upstream:
                    with contextlib.suppress(OSError):
                        self._spare = self._connect()  # waits in the server's backlog behind this one
                    with contextlib.suppress(OSError):
                        self._pipe(client, upstream)
        self._drop_spare()

    def _connect(self) -> tuple[socket.socket, float]:
        sock = socket.create_connection(self.upstream, timeout=5.0)
        sock.settimeout(None)
        return sock, time.monotonic()

    def _take(self) -> socket.socket:
        """The spare if it is fresh and the server has not closed it; else a new connection."""
        spare, self._spare = self._spare, None
        if spare is not None:
            sock, born = spare
            if time.monotonic() - born < self.spare_max_age and not _readable(sock):
                return sock
            fresh = self._connect()[0]  # queued before the old one closes: the server takes it next
            sock.close()
            return fresh
        return self._connect()[0]

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copy both ways until the server closes its side (it answers once, then closes)."""
        peers = {client: upstream, upstream: client}
        open_from = {client, upstream}
        while upstream in open_from:
            ready, _, _ = select.select(list(open_from), [], [], self.idle_timeout)
            if not ready:
                return
            for sock in ready:
                data = sock.recv(_CHUNK)
                if data:
                    peers[sock].sendall(data)
                    continue
                open_from.discard(sock)
                with contextlib.suppress(OSError):
                    peers[sock].shutdown(socket.SHUT_WR)

    def _drop_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            spare[0].close()

    def close(self) -> None:
        """Stop accepting and close the spare (the server then returns to its accept loop)."""
        if self._closing:
            return
        self._closing = True
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()  # wakes accept()
        self._thread.join(timeout=5.0)
        self._listener.close()
        if not self._thread.is_alive():
            self._drop_spare()


def _readable(sock: socket.socket) -> bool:
    """True when the peer closed (or sent something unasked): the connection cannot carry a request."""
    ready, _, _ = select.select([sock], [], [], 0)
    return bool(ready)
