"""A namespace's database: its file, its connections, and the hooks a sync layer needs.

Streams get fresh connections (sqld opens one per Hrana stream); a few are opened ahead
and idle streams' connections are closed after the answer is sent (or by one background
thread), so neither is on a request's path. One of those opened ahead may be warm (schema
read, checked still current when its stream starts), and an anchor connection keeps the
WAL open for the namespace's life, as sqld's own connections do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import ffi
from .txn import DEFAULT_TXN_TIMEOUT, TxnArbiter

DEFAULT_MAX_RESPONSE_SIZE = 10_000_000  # sqld's --max-response-size default, "10MB"
READY_CONNECTIONS = 2  # per namespace, opened ahead for new streams (0: open on demand)
WAL_CHECKPOINT_FRAMES = 1000  # namespaces without a sync layer: checkpoint beyond this (SQLite's default)

log = logging.getLogger("pytest_traceparity.standin")


class _Background:
    """One daemon thread that opens and closes connections off the request path."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], object]) -> None:
        self._jobs.put(job)
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="standin-connections", daemon=True)
                    self._thread.start()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every job submitted so far has run (jobs run in order)."""
        if self._thread is None:
            return
        done = threading.Event()
        self.submit(done.set)
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:  # keep serving the other jobs
                log.exception("stand-in: background connection job failed")


background = _Background()
_local = threading.local()


def begin_deferring() -> None:
    """This thread answers requests: jobs deferred while it handles one run after its answer
    is sent (:func:`run_deferred`), in the pause while the client reads it, with no handoff
    to another thread. Threads that never call this hand their jobs to ``background``."""
    _local.jobs = []


def defer(job: Callable[[], object]) -> None:
    jobs: list[Callable[[], object]] | None = getattr(_local, "jobs", None)
    if jobs is None:
        background.submit(job)
    else:
        jobs.append(job)


def run_deferred() -> None:
    jobs: list[Callable[[], object]] | None = getattr(_local, "jobs", None)
    while jobs:
        job = jobs.pop(0)
        try:
            job()
        except Exception:  # the answer is sent already; keep serving
            log.exception("stand-in: deferred connection job failed")


def _data_version(conn: ffi.Connection) -> int:
    return int(conn.execute_simple("PRAGMA data_version")[0][0])


class ProtocolError(Exception):
    """The client broke the protocol: answer 4xx with an Error body, drop the stream."""

    def __init__(self, message: str, code: str = "PROTOCOL_ERROR", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class Database:
    """One namespace: a SQLite file in WAL mode plus the hooks a sync layer needs.

    Subclass it (and pass ``database_class=`` to the server) to observe writes:
    :meth:`after_write` runs after every statement that was not read-only, holding
    :attr:`lock`; :attr:`path` is the database file.
    """

    busy_timeout_ms = 5000
    ready_connections = READY_CONNECTIONS
    max_response_size = DEFAULT_MAX_RESPONSE_SIZE  # per execute/batch response (RESPONSE_TOO_LARGE)

    def __init__(
        self, name: str, path: Path, *, wal_autocheckpoint: int = 0, txn_timeout: float = DEFAULT_TXN_TIMEOUT
    ) -> None:
        self.name = name
        self.txn = TxnArbiter(txn_timeout)
        self.path = Path(path)
        self.wal_autocheckpoint = wal_autocheckpoint
        self.lock = threading.RLock()
        self.write_listeners: list[Callable[[Database, ffi.Connection], None]] = []
        self.deleted = False
        # Serializes "is it deleted?" + open against mark_deleted(), so a request racing
        # a namespace delete can never re-create the database file after it is removed.
        self._life = threading.Lock()
        self._pool_lock = threading.Lock()
        self._ready: list[ffi.Connection] = []
        self._refilling = False
        self._closing = 0  # stream connections handed over to be closed, not closed yet
        self._closed_all = threading.Condition(self._pool_lock)
        self.wal_frames = 0  # frames in the WAL after the last commit (see _close_idle)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The anchor: one connection that stays open in WAL mode for the namespace's life, as
        # sqld always has one. Without it every stream's connection was the last one when it
        # closed, so SQLite checkpointed and deleted the WAL each time, and the next write
        # created it anew (two fsyncs and a directory fsync per autocommit statement).
        anchor = self.connect()
        try:
            anchor.execute_simple("PRAGMA journal_mode=WAL")
            anchor.execute_simple("SELECT count(*) FROM sqlite_master")  # opens the WAL and -shm
        except BaseException:
            anchor.close()
            raise
        self._anchor: ffi.Connection | None = anchor
        # One connection opened ahead may also be *warm*: it has read the schema already
        # (see _warm_one). ``_warm_score`` falls when warm connections go stale before use.
        self._warm: ffi.Connection | None = None
        self._warm_score = 0
        self._warm_skips = 0
        probe = self.connect()
        try:
            self._fresh_data_version = _data_version(self._activate(probe))
        finally:
            probe.close()

    def connect(self) -> ffi.Connection:
        """A new connection (housekeeping, and streams when no ready one is waiting)."""
        with self._life:
            if self.deleted:
                raise self.gone()
            conn = ffi.Connection(str(self.path), self.busy_timeout_ms)
        try:
            self.txn.install(conn)
            conn.wal_autocheckpoint(int(self.wal_autocheckpoint))
            if self.wal_autocheckpoint <= 0:
                conn.set_wal_hook(self._note_wal_frames)
            # libsql (and so sqld) is built with SQLITE_DEFAULT_FOREIGN_KEYS=1.
            conn.exec("PRAGMA foreign_keys=ON")
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _activate(conn: ffi.Connection) -> ffi.Connection:
        """What sqld does last when it opens a stream's connection.

        ``PRAGMA synchronous`` is sqld's default durability mode "relaxed" (NORMAL; set per
        connection in libsql-server/src/connection/connection_core.rs): in WAL mode a
        commit does not wait for fsync. It also reads the schema, which SQLite then does
        not re-read for every statement (REINDEX, PRAGMA foreign_key_check resolve names
        against it): so on a connection opened ahead it runs when the stream starts, or
        on a warm connection that is checked to be still current (see :meth:`_take_warm`).
        """
        try:
            conn.exec("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def stream_connection(self) -> ffi.Connection:
        """A fresh connection for a new stream, as sqld opens one per stream.

        Opening one (and its PRAGMAs) was a fifth of an autocommit statement's time, so a
        few are opened ahead, off the request path (:data:`READY_CONNECTIONS`). A ready
        connection has run nothing but PRAGMAs that do not read the schema: ``changes()``,
        ``last_insert_rowid()``, its schema and every per-connection setting are exactly
        those of a connection opened now.
        """
        warm = self._take_warm()
        conn = None
        with self._pool_lock:
            if warm is None and self._ready:
                conn = self._ready.pop()
            refill = not self._refilling and self.ready_connections > 0
            self._refilling = self._refilling or refill
        if refill:
            defer(self._refill)
        if warm is not None:
            return warm
        return self._activate(conn if conn is not None else self.connect())

    def _take_warm(self) -> ffi.Connection | None:
        """The warm connection if nothing was committed since it read the schema, else None.

        ``PRAGMA data_version`` counts the changes by other connections a connection has
        seen. Equal to a just-opened connection's value, it proves that no commit happened
        since the warm connection read the schema and pages: the connection is then
        indistinguishable from one opened now (that PRAGMA itself is visible to clients,
        and a stale one would show a higher value). A stale one is closed, unused.
        """
        with self._pool_lock:
            conn, self._warm = self._warm, None
        if conn is None:
            return None
        try:
            current = _data_version(conn) == self._fresh_data_version
        except ffi.SqliteError:
            current = False
        with self._pool_lock:
            self._warm_score = min(8, self._warm_score + 1) if current else max(-8, self._warm_score - 2)
            if not current:
                self._closing += 1
        if current:
            return conn
        defer(lambda: self._close_idle(conn, warm=False))
        return None

    def _warm_one(self) -> None:
        """Read the schema on a connection opened ahead, after a stream ended: for one client
        at a time the next stream then starts without that read (~30 us). With concurrent
        writers a warm connection is mostly stale by then, so it is only tried now and then."""
        with self._pool_lock:
            if self.deleted or self._warm is not None or not self._ready:
                return
            if self._warm_score < 0:
                self._warm_skips += 1
                if self._warm_skips % 16:
                    return
            conn = self._ready.pop(0)
            refill = not self._refilling
            self._refilling = True
        if refill:
            defer(self._refill)
        try:
            self._activate(conn)  # closes it on failure
        except ffi.SqliteError:
            return
        # (a commit between this read and the stream's start shows in _take_warm's check)
        with self._pool_lock:
            kept = not self.deleted and self._warm is None
            if kept:
                self._warm = conn
        if not kept:
            conn.close()

    def _refill(self) -> None:
        try:
            while True:
                with self._pool_lock:
                    if self.deleted or len(self._ready) >= self.ready_connections:
                        return
                conn = self.connect()
                with self._pool_lock:
                    if not self.deleted:
                        self._ready.append(conn)
                        continue
                conn.close()
                return
        except ProtocolError:  # deleted meanwhile
            return
        except ffi.SqliteError:
            log.warning("stand-in: could not open a connection ahead for namespace %s", self.name, exc_info=True)
        finally:
            with self._pool_lock:
                self._refilling = False

    def release_connection(self, conn: ffi.Connection) -> None:
        """Close a stream's connection; an idle one (no transaction) is closed in the
        background: closing is work the client need not wait for."""
        if not conn.closed and not self.deleted and conn.autocommit and conn.txn_state() == 0:
            with self._pool_lock:
                self._closing += 1
            defer(lambda: self._close_idle(conn))
        else:
            conn.close()

    def _note_wal_frames(self, frames: int) -> None:
        self.wal_frames = frames

    def _close_idle(self, conn: ffi.Connection, warm: bool = True) -> None:
        # The anchor keeps the WAL open, so closing a stream's connection does not checkpoint
        # it as closing the last one would: do it here once the WAL is long, unless a sync
        # layer reads the WAL (it checkpoints itself). After a complete checkpoint the next
        # commit starts the WAL over, and the hook reports a short WAL again.
        try:
            if self.wal_frames >= WAL_CHECKPOINT_FRAMES and not self.write_listeners and not self.deleted:
                with contextlib.suppress(ffi.SqliteError):
                    conn.execute_simple("PRAGMA wal_checkpoint(PASSIVE)")
                    self.wal_frames = 0
        finally:
            conn.close()
            with self._pool_lock:
                self._closing -= 1
                self._closed_all.notify_all()
        if warm:
            self._warm_one()

    def close_ready(self) -> None:
        """Close the connections opened ahead and the anchor (namespace deleted, server stopping)."""
        with self._pool_lock:
            ready, self._ready = self._ready, []
            if self._warm is not None:
                ready.append(self._warm)
                self._warm = None
            anchor, self._anchor = self._anchor, None
        for conn in ready:
            conn.close()
        if anchor is not None:
            anchor.close()

    def gone(self) -> ProtocolError:
        """The error a request on this namespace gets once it is deleted."""
        return ProtocolError(f"Namespace `{self.name}` doesn't exist", "NAMESPACE_DOESNT_EXIST", 404)

    def mark_deleted(self) -> None:
        """From now on no connection to this namespace can be opened."""
        with self._life:
            self.deleted = True
        self.close_ready()

    def after_write(self, conn: ffi.Connection) -> None:
        """Called under :attr:`lock` after each statement that may have written or committed.

        ``conn.autocommit`` tells whether the change is committed yet.
        """
        for listener in list(self.write_listeners):
            listener(self, conn)

    def checkpoint(self, mode: str = "TRUNCATE") -> list[list[Any]]:
        if mode.upper() not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
            raise ValueError(f"unknown checkpoint mode {mode!r}")
        with self.lock:
            conn = self.connect()
            try:
                return conn.execute_simple(f"PRAGMA wal_checkpoint({mode.upper()})")
            finally:
                conn.close()

    def destroy(self) -> None:
        """Remove the files; streams must already be closed."""
        self.mark_deleted()
        # a connection still waiting to be closed would, as the last one, remove the WAL by
        # name when it closes: that of a namespace re-created under the same name meanwhile
        with self._pool_lock:
            self._closed_all.wait_for(lambda: self._closing == 0, timeout=10)
        for suffix in ("", "-wal", "-shm", "-journal"):
            target = Path(str(self.path) + suffix)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
