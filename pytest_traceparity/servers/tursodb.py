"""``tursodb --sync-server``: a real Turso sync server for the ``turso-sync`` backend.

The npm package ``turso`` (0.6.x) ships the ``tursodb`` binary; ``tursodb --sync-server
127.0.0.1:PORT FILE`` serves Turso's sync protocol for the one database FILE (and a
subset of Hrana on ``/v2/pipeline``: ``execute`` and ``batch`` only).

It serves exactly one database and has no namespaces, admin API or health endpoint, and
the sync metadata it keeps cannot be reset through its Hrana subset. A fresh server
database therefore means a fresh ``tursodb`` process on a new file: it starts in ~20 ms.
:class:`TursoServers` (one per harness process, so one per xdist worker) starts them on
free loopback ports, one ahead of need (the next test's server starts while this one runs),
each in its own process group with a parent-death signal and a log
file that is kept, and reaps every one of them by pid when its database closes and again
when the session ends.

Clients reach each server through an :class:`~.launcher.relay.AcceptAheadRelay`: the server
polls ``accept`` with a 10 ms sleep and takes one connection per request, so without it
every request of pyturso's sync client (a new connection each) waits about 10 ms; the relay
keeps a connection waiting for the server ahead of need (see that module for the evidence).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BackendUnavailable
from ..http import request
from .launcher import free_port, spawn, terminate
from .launcher.relay import AcceptAheadRelay

TURSODB_INSTALL = "npm install --prefix DIR turso  (then --turso-bin DIR/node_modules/@tursodatabase/cli-*/tursodb)"


def find_tursodb(explicit: str | None = None, search_dirs: Iterable[Path] = ()) -> str | None:
    """``--turso-bin``, else ``tursodb`` on PATH, else ``node_modules`` (``.bin``, or npm's platform package)."""
    if explicit:
        found = shutil.which(explicit) or (explicit if os.access(explicit, os.X_OK) else None)
        return found
    on_path = shutil.which("tursodb")
    if on_path:
        return on_path
    for directory in search_dirs:
        modules = Path(directory) / "node_modules"
        candidates = [modules / ".bin" / "tursodb", *sorted(modules.glob("@tursodatabase/cli-*/tursodb"))]
        for candidate in candidates:
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def missing_tursodb(explicit: str | None) -> str:
    """Why no ``tursodb`` was found, and what to do."""
    if explicit:
        return f"--turso-bin {explicit!r} is not an executable file; install tursodb with: {TURSODB_INSTALL}"
    return (
        "no tursodb binary: not given with --turso-bin, not on PATH, not under ./node_modules; "
        f"install it with: {TURSODB_INSTALL}"
    )


_VERSIONS: dict[str, str] = {}


def tursodb_version(binary: str) -> str:
    """``X.Y.Z`` from ``tursodb --version`` (``Turso 0.6.0``); cached per binary."""
    if binary not in _VERSIONS:
        try:
            out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BackendUnavailable(f"{binary} --version failed: {exc}") from None
        match = re.search(r"(\d+\.\d+(?:\.\d+)?\S*)", out.stdout + out.stderr)
        _VERSIONS[binary] = match.group(1) if match else "?"
    return _VERSIONS[binary]


def _log_tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class TursoSyncServer:
    """One running ``tursodb --sync-server`` serving one fresh database file.

    ``url`` is what clients use: the relay's once :meth:`TursoServers.start` made it, else the
    server's own port (``direct_url``).
    """

    url: str
    label: str
    database: Path
    log_path: Path
    proc: subprocess.Popen[bytes] = field(repr=False)
    direct_url: str = ""
    relay: AcceptAheadRelay | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def diagnose(self) -> str:
        """What happened to the server, for an error message (exit code, log tail)."""
        code = self.proc.poll()
        state = "still running" if code is None else f"exited with code {code}"
        tail = _log_tail(self.log_path)
        where = f" at {self.direct_url}, relayed from {self.url}" if self.relay is not None else ""
        return f"{self.label} (pid {self.pid}){where} {state}; log {self.log_path}" + (f":\n{tail}" if tail else "")

    def execute(self, sql: str) -> list[list[object]]:
        """Run one statement on the server database over its Hrana subset (``/v2/pipeline``)."""
        pipeline = {"baton": None, "requests": [{"type": "execute", "stmt": {"sql": sql}}]}
        try:
            status, body = request("POST", f"{self.url}/v2/pipeline", body=pipeline, timeout=10)
        except (OSError, urllib.error.URLError) as exc:
            raise BackendUnavailable(f"{self.label} at {self.url}: {exc}; {self.diagnose()}") from None
        if status != 200:
            detail = body.decode("utf-8", "replace")[:200]
            raise BackendUnavailable(f"{self.label}: {sql!r} answered HTTP {status}: {detail}; {self.diagnose()}")
        payload = json.loads(body)
        result = payload["results"][0]
        if result.get("type") != "ok":
            raise BackendUnavailable(f"{self.label}: {sql!r} failed on the server: {result.get('error')}")
        rows = result["response"]["result"]["rows"]
        return [[cell.get("value") for cell in row] for row in rows]

    def stop(self) -> None:
        terminate(self.proc)  # first: closing the relay's spare would log a request error in the server
        if self.relay is not None:
            self.relay.close()


class TursoServers:
    """Starts one ``tursodb --sync-server`` per fresh database and reaps them all by pid."""

    def __init__(
        self, binary: str, workdir: Path, startup_timeout: float = 20.0, *, relay: bool = True, ahead: bool = True
    ) -> None:
        self.binary = binary
        self.relay = relay  # False: clients connect straight to the server (and wait out its accept poll)
        self.ahead = ahead  # start the next server while this one is in use (a start takes ~20 ms)
        self.version = tursodb_version(binary)
        self.label = f"tursodb {self.version} (sync server)"
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self._running: dict[int, TursoSyncServer] = {}
        self._starting: dict[int, TursoSyncServer] = {}  # started (ahead or now), not handed out yet
        self._next: concurrent.futures.Future[TursoSyncServer] | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._count = 0

    def start(self, name: str) -> TursoSyncServer:
        """A fresh server for test database ``name``: the one started ahead if it is healthy."""
        with self._lock:
            upcoming, self._next = self._next, None
        server: TursoSyncServer | None = None
        if upcoming is not None:
            with contextlib.suppress(BackendUnavailable):
                server = upcoming.result()
            if server is not None and not server.running():
                self.stop(server)
                server = None
        if server is None:
            server = self._start_now()
        with self._lock:
            self._starting.pop(server.pid, None)
            self._running[server.pid] = server
            if self.ahead and not self._closed:
                self._next = self._start_ahead()
        with contextlib.suppress(OSError), open(server.log_path, "a", encoding="utf-8") as log:
            log.write(f"[traceparity] this server serves test database {name!r}\n")
        return server

    def _start_ahead(self) -> concurrent.futures.Future[TursoSyncServer]:
        future: concurrent.futures.Future[TursoSyncServer] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(self._start_now())
            except BaseException as exc:  # handed to whoever takes the server
                future.set_exception(exc)

        threading.Thread(target=run, name="traceparity-tursodb-ahead", daemon=True).start()
        return future

    def _start_now(self) -> TursoSyncServer:
        with self._lock:
            self._count += 1
            serial = self._count
        directory = self.workdir / f"server-{serial}"
        directory.mkdir(parents=True, exist_ok=True)
        database = directory / "server.db"
        log_path = directory / "tursodb.log"
        last_error = ""
        for _ in range(3):  # a free port can be taken between probe and bind; retry on a new one
            port = free_port()
            proc = spawn([self.binary, "--sync-server", f"127.0.0.1:{port}", str(database)], log_path)
            url = f"http://127.0.0.1:{port}"
            server = TursoSyncServer(url, self.label, database, log_path, proc, direct_url=url)
            with self._lock:
                self._starting[proc.pid] = server
            try:
                self._wait_ready(server)
            except BackendUnavailable as exc:
                last_error = str(exc)
                self.stop(server)
                continue
            with self._lock:
                closed = self._closed
            if closed:  # close() ran meanwhile: this server is nobody's
                self.stop(server)
                raise BackendUnavailable(f"{self.label}: the harness stopped its servers")
            return server
        raise BackendUnavailable(last_error)

    def _wait_ready(self, server: TursoSyncServer) -> None:
        """Ready when ``/v2/pipeline`` answers ``SELECT 1`` (it has no health endpoint).

        The connection that finds the port listening becomes the relay's first spare, so
        ``SELECT 1`` does not wait out the server's accept poll either.
        """
        deadline = time.monotonic() + self.startup_timeout
        port = int(server.direct_url.rsplit(":", 1)[1])
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise BackendUnavailable(f"{self.binary} --sync-server did not start: {server.diagnose()}")
            try:
                probe = socket.create_connection(("127.0.0.1", port), timeout=0.2)
            except OSError:
                time.sleep(0.005)
                continue
            if self.relay:
                name = server.database.parent.name
                server.relay = AcceptAheadRelay(("127.0.0.1", port), name=name, first_spare=probe)
                server.url = server.relay.url
            else:
                probe.close()
            server.execute("SELECT 1")
            return
        raise BackendUnavailable(f"{self.label} did not answer within {self.startup_timeout:.0f}s: {server.diagnose()}")

    def stop(self, server: TursoSyncServer) -> None:
        with self._lock:
            self._running.pop(server.pid, None)
            self._starting.pop(server.pid, None)
        server.stop()

    @property
    def pids(self) -> list[int]:
        """The servers handed out and still running (not the one started ahead)."""
        with self._lock:
            return list(self._running)

    def close(self) -> None:
        """Stop every server still running (a test that did not close its database, the one started ahead)."""
        with self._lock:
            self._closed = True
            upcoming, self._next = self._next, None
        if upcoming is not None:
            with contextlib.suppress(Exception):
                upcoming.result(timeout=self.startup_timeout + 5)
        with self._lock:
            servers = [*self._running.values(), *self._starting.values()]
            self._running, self._starting = {}, {}
        for server in servers:
            with contextlib.suppress(Exception):
                server.stop()


class TursodbHost:
    """Starts ``tursodb --sync-server`` processes for the ``turso-sync`` backend (its ``SyncServerHost``).

    The harness makes one per process (:class:`~pytest_traceparity.services.HarnessServices`, or
    the CLI's registry) and hands it to the backend, which never imports this layer. The binary
    is looked up on each question, so ``--turso-bin`` and ``npm install`` take effect at once;
    servers still running at :meth:`close` or interpreter exit are stopped.
    """

    def __init__(
        self, explicit: str | None = None, search_dirs: Iterable[Path] = (), workdir: Path | None = None
    ) -> None:
        self.explicit = explicit
        self.search_dirs = tuple(search_dirs)
        self._workdir = workdir
        self._made: Path | None = None
        self._servers: TursoServers | None = None
        self._lock = threading.Lock()

    def binary(self) -> str | None:
        return find_tursodb(self.explicit, self.search_dirs)

    def unavailable_reason(self) -> str | None:
        return None if self.binary() is not None else missing_tursodb(self.explicit)

    def start(self, name: str) -> TursoSyncServer:
        with self._lock:
            if self._servers is None:
                binary = self.binary()
                if binary is None:
                    raise BackendUnavailable(f"turso-sync: {missing_tursodb(self.explicit)}")
                if self._workdir is None:  # ours to remove at close
                    self._workdir = self._made = Path(tempfile.mkdtemp(prefix="traceparity-tursodb-"))
                self._servers = TursoServers(binary, self._workdir)
                atexit.register(self.close)
            servers = self._servers
        return servers.start(name)

    def stop(self, server: TursoSyncServer) -> None:
        if self._servers is not None:
            self._servers.stop(server)
        else:
            server.stop()

    @property
    def pids(self) -> list[int]:
        return self._servers.pids if self._servers is not None else []

    def close(self) -> None:
        """Stop every server still running (a test that did not close its database)."""
        with self._lock:
            servers, self._servers = self._servers, None
        if servers is not None:
            with contextlib.suppress(Exception):
                atexit.unregister(self.close)
            servers.close()
        if self._made is not None:
            shutil.rmtree(self._made, ignore_errors=True)
            self._workdir = self._made = None
