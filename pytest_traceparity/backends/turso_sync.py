"""``turso-sync``: pyturso's sync client (``turso.sync.connect``) against a real ``tursodb --sync-server``.

Every connection of a database opens the same local replica file (reads and writes run
on it, in Turso's engine); ``push()`` sends the local changes to the server and ``pull()``
brings back what others pushed. Each test gets a fresh server (one ``tursodb`` process on
a new database file) and a fresh replica. The backend never starts a server itself: the harness
hands it a :class:`SyncServerHost` (:class:`pytest_traceparity.servers.tursodb.TursodbHost`)
through :meth:`TursoSyncBackend.configure`.

When the harness calls ``push()`` / ``pull()`` (``--turso-sync``, same names as
``--replica-sync``):

``auto`` (default)
    push after every statement that changed data outside a transaction (or ended one),
    and pull before a read outside a transaction whenever another replica of the same
    server pushed since this one last pulled. Every write reaches the server at once and
    every read is fresh: a difference from SQLite is the engine's or the sync's, not staleness.
``after-write``
    push and then pull right after each such write; other replicas read what they last pulled.
``before-read``
    push after each write; pull before every read outside a transaction.
``manual``
    neither, except one pull when a connection opens; only explicit ``sync()`` calls
    (push, then pull) and ``sync`` trace steps. Shows the raw staleness.

Inside a transaction the harness never pushes or pulls. A failed push is raised from the
statement that triggered it: the write happened locally but the server refused it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import BackendUnavailable, DatabaseError, TraceparityError, UsageError, wrap_error
from .base import (
    CAP_FILE,
    CAP_MULTI_CONNECTION,
    CAP_NAMED_PARAMS,
    CAP_REMOTE,
    CAP_SYNC,
    BackendContext,
    Connection,
    Database,
    safe_name,
)
from .dbapi import GuardedDBAPIConnection
from .embedded_replica import REPLICA_SYNC_MODES, statement_kind
from .turso_local import PytursoBackend, import_turso, pyturso_version

BACKEND_ID = "turso-sync"
TURSO_SYNC_MODES = REPLICA_SYNC_MODES  # --turso-sync takes the same names as --replica-sync


class SyncServer(Protocol):
    """One running ``tursodb --sync-server`` on one fresh database file."""

    url: str
    label: str
    log_path: Path

    def running(self) -> bool: ...

    def diagnose(self) -> str:
        """What happened to the server (exit code, log tail), for an error message."""


class SyncServerHost(Protocol):
    """Starts and stops sync servers for this backend; the harness's servers layer provides it."""

    def unavailable_reason(self) -> str | None:
        """Why no server can start here (no ``tursodb`` binary, and what to install), else ``None``."""

    def start(self, name: str) -> SyncServer: ...

    def stop(self, server: Any) -> None: ...


@dataclass
class ServerClock:
    """Pushes the harness made to one server, shared by all replicas of it."""

    ticks: int = 0


class TursoSyncConnection(GuardedDBAPIConnection):
    """One ``turso.sync.connect`` of the replica file, pushing and pulling as ``--turso-sync`` says."""

    def __init__(self, raw: Any, database: TursoSyncDatabase) -> None:
        super().__init__(raw, BACKEND_ID)
        self.database = database

    def _policy(self, sql: str, moment: str) -> None:
        db = self.database
        if db.mode == "manual" or self.raw.in_transaction:
            return
        kind = statement_kind(sql)
        if moment == "before":
            if kind == "read" and (db.mode == "before-read" or (db.mode == "auto" and db.clock.ticks > db.file_seen)):
                self._pull(sql)
            return
        if kind != "write":
            return
        self._push(sql)
        if db.mode == "after-write":
            self._pull(sql)

    def _push(self, sql: str | None) -> None:
        db = self.database
        try:
            self.raw.push()
        except Exception as exc:
            raise db.failure(exc, "push()", sql) from exc
        db.pushes += 1
        db.clock.ticks += 1
        db.file_seen = db.clock.ticks  # this replica already holds what it pushed

    def _pull(self, sql: str | None) -> None:
        db = self.database
        try:
            self.raw.pull()
        except Exception as exc:
            raise db.failure(exc, "pull()", sql) from exc
        db.pulls += 1
        db.file_seen = db.clock.ticks

    def sync(self) -> int | None:
        """Push local changes, then pull the server's (``None``: the protocol has no frame numbers)."""
        self._push(None)
        self._pull(None)
        return None

    def _run(self, sql: str, action: Any) -> Any:
        self._policy(sql, "before")
        result = action()
        self._policy(sql, "after")
        return result


class TursoSyncDatabase(Database):
    """A replica file of one fresh ``tursodb --sync-server`` database."""

    backend_id = BACKEND_ID

    def __init__(
        self,
        replica_path: Path,
        server: SyncServer,
        mode: str,
        *,
        servers: SyncServerHost | None = None,
        clock: ServerClock | None = None,
    ) -> None:
        self.replica_path = replica_path
        self.server = server
        self.mode = mode
        self._servers = servers  # set when this database owns (and stops) the server
        self.clock = clock or ServerClock()
        self.file_seen = 0
        self.pushes = 0
        self.pulls = 0
        self._connections: list[TursoSyncConnection] = []

    @property
    def served_by(self) -> str:
        return str(self.server.label)

    def failure(self, exc: BaseException, during: str, sql: str | None) -> DatabaseError:
        """A sync error that says which server, and what its log shows if it died."""
        error = wrap_error(exc, backend=BACKEND_ID, sql=sql)
        if not self.server.running():
            error.args = (f"{during} failed: {exc}; {self.server.diagnose()}",)
        else:
            error.args = (f"{during} to {self.server.label} at {self.server.url} failed: {exc}",)
        return error

    def connect(self) -> Connection:
        import_turso()
        import turso.sync

        try:
            raw = turso.sync.connect(str(self.replica_path), remote_url=self.server.url, isolation_level=None)
        except Exception as exc:
            raise self.failure(exc, "turso.sync.connect()", None) from exc
        conn = TursoSyncConnection(raw, self)
        conn._pull(None)  # start from the server's latest state, whatever the mode
        self._connections.append(conn)
        return conn

    def another_replica(self, name: str = "second", *, mode: str | None = None) -> TursoSyncDatabase:
        """A second replica file of the same server (closing it leaves the server running)."""
        return TursoSyncDatabase(
            self.replica_path.with_name(f"{safe_name(name, 40)}.replica.db"),
            self.server,
            mode or self.mode,
            clock=self.clock,
        )

    def info(self) -> dict[str, Any]:
        return {
            "served_by": self.served_by,
            "client": f"pyturso {pyturso_version()} (sync)",
            "turso_sync": self.mode,
            "pushes": self.pushes,
            "pulls": self.pulls,
            "server_log": str(self.server.log_path),
        }

    def close(self) -> None:
        for conn in self._connections:
            with contextlib.suppress(TraceparityError):
                conn.close()
        self._connections.clear()
        if self._servers is not None:
            self._servers.stop(self.server)


class TursoSyncBackend(PytursoBackend):
    id = BACKEND_ID
    description = "turso.sync.connect(path, remote_url=...) (pyturso) against tursodb --sync-server"
    capabilities = frozenset({CAP_FILE, CAP_SYNC, CAP_REMOTE, CAP_MULTI_CONNECTION, CAP_NAMED_PARAMS})

    def __init__(self) -> None:
        self.sync = "auto"
        self.host: SyncServerHost | None = None

    def configure(self, host: SyncServerHost, sync: str = "auto") -> None:
        """Called by the harness before selection: who starts servers, and ``--turso-sync``."""
        if sync not in TURSO_SYNC_MODES:
            raise UsageError(f"--turso-sync={sync!r} is not one of: {', '.join(TURSO_SYNC_MODES)}")
        self.host = host
        self.sync = sync

    def unavailable_reason(self) -> str | None:
        reason = super().unavailable_reason()
        if reason:
            return reason
        if self.host is None:
            return (
                "no tursodb host was configured: run it through pytest or the traceparity CLI, "
                "or call configure(TursodbHost(...)) first"
            )
        return self.host.unavailable_reason()

    def create_database(self, ctx: BackendContext) -> Database:
        mode = str(ctx.options.get("turso_sync") or self.sync)
        if mode not in TURSO_SYNC_MODES:
            raise UsageError(f"--turso-sync={mode!r} is not one of: {', '.join(TURSO_SYNC_MODES)}")
        reason = self.unavailable_reason()
        if reason or self.host is None:
            raise BackendUnavailable(f"{BACKEND_ID}: {reason}")
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        server = self.host.start(safe_name(ctx.name, 40))
        return TursoSyncDatabase(ctx.workdir / "replica.db", server, mode, servers=self.host)
