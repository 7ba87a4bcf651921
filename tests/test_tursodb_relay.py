"""The accept-ahead relay in front of ``tursodb --sync-server``, and servers started ahead of need."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
import urllib.error
from pathlib import Path

import pytest

from pytest_traceparity.errors import BackendUnavailable
from pytest_traceparity.http import request
from pytest_traceparity.servers.launcher.relay import AcceptAheadRelay
from pytest_traceparity.servers.tursodb import TursoServers, find_tursodb

ROOT = Path(__file__).resolve().parents[1]
TURSODB = find_tursodb(os.environ.get("TRACEPARITY_TURSO_BIN"), (Path.cwd(), ROOT))
needs_tursodb = pytest.mark.skipif(
    TURSODB is None,
    reason="no tursodb binary (not on PATH, not under ./node_modules); install: npm install --prefix . turso",
)


class PollingServer:
    """Serves like tursodb 0.6: non-blocking accept polled with a sleep, one answer per connection.

    Records, after each answer, whether the next connection was already waiting in the
    listen backlog (then the next ``accept`` finds it without sleeping).
    """

    def __init__(self, poll: float = 0.05) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.port = int(self.listener.getsockname()[1])
        self.poll = poll
        self.next_waiting: list[bool] = []
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except BlockingIOError:
                time.sleep(self.poll)
                continue
            with conn:
                conn.setblocking(True)
                conn.settimeout(5)
                try:
                    data = _read_request(conn)
                except OSError:
                    continue
                if not data:
                    continue  # a spare closed unused
                body = b"echo:" + data.split(b"\r\n\r\n", 1)[1]
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                conn.sendall(head.encode() + body)
            self.next_waiting.append(bool(select.select([self.listener], [], [], 0)[0]))

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(5)
        self.listener.close()


def _read_request(conn: socket.socket) -> bytes:
    """Headers, then as many body bytes as Content-Length says (as tursodb reads)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_relay_forwards_each_request_over_a_connection_opened_ahead() -> None:
    server = PollingServer()
    relay = AcceptAheadRelay(("127.0.0.1", server.port))
    try:
        answers = [request("POST", f"{relay.url}/x", body={"n": n}, timeout=5) for n in range(5)]
        assert [a[0] for a in answers] == [200] * 5
        assert [a[1] for a in answers] == [f'echo:{{"n": {n}}}'.encode() for n in range(5)]
        assert relay.forwarded == 5
        # after each answer the next connection was already queued: accept never found the backlog empty
        assert server.next_waiting == [True] * 5
    finally:
        relay.close()
        server.stop()


def test_relay_replaces_a_spare_older_than_its_limit() -> None:
    server = PollingServer(poll=0.01)
    relay = AcceptAheadRelay(("127.0.0.1", server.port), spare_max_age=0.0)
    try:
        for n in range(3):
            assert request("POST", f"{relay.url}/x", body=n, timeout=5) == (200, f"echo:{n}".encode())
        assert relay.forwarded == 3
    finally:
        relay.close()
        server.stop()


def test_relay_close_stops_listening() -> None:
    server = PollingServer()
    relay = AcceptAheadRelay(("127.0.0.1", server.port))
    relay.close()
    server.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", relay.port), timeout=1).close()


@needs_tursodb
def test_tursodb_through_the_relay_and_after_it_died(tmp_path: Path) -> None:
    assert TURSODB is not None
    servers = TursoServers(TURSODB, tmp_path, ahead=False)
    server = servers.start("relayed")
    try:
        assert server.relay is not None and server.url == server.relay.url != server.direct_url
        server.execute("CREATE TABLE t(v)")
        server.execute("INSERT INTO t VALUES (42)")
        assert server.execute("SELECT v FROM t") == [["42"]]
        assert server.relay.forwarded >= 3
        server.proc.kill()
        server.proc.wait()
        with pytest.raises(BackendUnavailable, match="exited"):
            server.execute("SELECT 1")  # a closed connection, not a hang; the message says the server died
    finally:
        servers.close()


def _our_tursodb_children() -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if comm == "tursodb" and int(rest[1]) == os.getpid() and rest[0] != "Z":
            found.append(int(pid))
    return found


@needs_tursodb
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads child processes from /proc (Linux)")
def test_servers_start_the_next_one_ahead_and_close_stops_it(tmp_path: Path) -> None:
    assert TURSODB is not None
    others = set(_our_tursodb_children())  # servers other tests of this worker process left running

    def ours() -> set[int]:
        return set(_our_tursodb_children()) - others

    servers = TursoServers(TURSODB, tmp_path)
    first = servers.start("first")
    second = servers.start("second")  # the one started ahead of need
    assert servers.pids == [first.pid, second.pid]
    assert "serves test database 'second'" in second.log_path.read_text()
    deadline = time.monotonic() + 10
    while len(ours()) < 3 and time.monotonic() < deadline:  # the third, started ahead
        time.sleep(0.01)
    assert len(ours()) == 3
    servers.close()
    assert ours() == set()
    with pytest.raises(urllib.error.URLError):
        request("POST", f"{first.url}/v2/pipeline", body={}, timeout=2)
