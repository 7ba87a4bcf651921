"""Replay a recorded trace on one backend, in recorded order, one step at a time.

Each distinct database the program opened (``db1``, ``db2`` ... in the trace) gets its
own fresh database on the backend; each recorded connection gets its own connection to
it, so interleaved multi-connection traffic (and its locking) replays as recorded.
Nothing is papered over: a backend that refuses named parameters or raises a different
exception class produces a different outcome, which the caller compares and judges.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..backends.base import CAP_SYNC, Backend, BackendContext, Connection, Database
from ..backends.errors import DatabaseError, TraceparityError
from ..backends.values import Result
from ..compare import Outcome
from ..golden.fingerprint import snapshot
from .format import Event, TraceReader


@dataclass
class Step:
    event: Event
    outcome: Outcome


class ReplayError(TraceparityError):
    """The replay itself could not go on (not a divergence): e.g. a database could not be created."""


class Replayer:
    """Drives one trace on one backend; use as a context manager so databases get released."""

    def __init__(self, backend: Backend, make_context: Callable[[str], BackendContext], name: str) -> None:
        self.backend = backend
        self.make_context = make_context
        self.name = name
        self.databases: dict[str, Database] = {}
        self.connections: dict[int, Connection] = {}
        self.served_by: dict[str, str] = {}

    def __enter__(self) -> Replayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _database(self, db_id: str) -> Database:
        if db_id not in self.databases:
            ctx = self.make_context(f"{self.name}-{db_id}")
            try:
                self.databases[db_id] = self.backend.create_database(ctx)
            except TraceparityError as exc:
                raise ReplayError(f"[{self.backend.id}] cannot create a database for {db_id}: {exc}") from exc
        return self.databases[db_id]

    def run(self, reader: TraceReader) -> Iterator[Step]:
        """Execute every event of ``reader`` (streamed) and yield its outcome."""
        for event in reader:
            yield Step(event, self.step(event))

    def step(self, event: Event) -> Outcome:
        op = event.op
        if op == "open":
            database = self._database(event.db or "db")
            try:
                self.connections[event.conn] = database.connect()
            except DatabaseError as exc:
                return Outcome(error=exc)
            return Outcome(result=Result())
        conn = self.connections.get(event.conn)
        if conn is None:  # the reader validates this; guards direct callers
            raise ReplayError(f"seq {event.seq}: connection {event.conn} is not open")
        if op == "execute":
            return Outcome.capture(conn.execute, event.sql or "", event.params)
        if op == "executemany":
            return Outcome.capture(conn.executemany, event.sql or "", event.many or [])
        if op == "executescript":
            return _plain(Outcome.capture(conn.executescript, event.sql or ""))
        if op == "begin":
            return _plain(Outcome.capture(conn.begin, event.mode or "DEFERRED"))
        if op == "commit":
            return _plain(Outcome.capture(conn.commit))
        if op == "rollback":
            return _plain(Outcome.capture(conn.rollback))
        if op == "sync":
            if self.backend.has(CAP_SYNC):
                return _plain(Outcome.capture(conn.sync))
            return Outcome(result=Result())  # nothing to pull from on a backend without a primary
        if op == "close":
            del self.connections[event.conn]
            return _plain(Outcome.capture(conn.close))
        raise ReplayError(f"seq {event.seq}: unknown op {op!r}")

    def final_state(self) -> dict[str, Any]:
        """Close what the program left open (like process exit), then snapshot every database."""
        self._close_connections()
        out: dict[str, Any] = {}
        for db_id in sorted(self.databases, key=_db_order):
            database = self.databases[db_id]
            with contextlib.closing(database.connect()) as conn:
                out[db_id] = snapshot(lambda sql, c=conn: c.execute(sql))  # type: ignore[misc]
            with contextlib.suppress(Exception):
                self.served_by[db_id] = database.served_by
        return out

    def _close_connections(self) -> None:
        conns, self.connections = self.connections, {}
        for conn in conns.values():
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        self._close_connections()
        dbs, self.databases = self.databases, {}
        for database in dbs.values():
            with contextlib.suppress(Exception):
                database.close()


def _plain(outcome: Outcome) -> Outcome:
    """Ops without rows compare on success/error only (drivers disagree on rowcount -1/0 there)."""
    if outcome.failed:
        return outcome
    return Outcome(result=Result())


def _db_order(db_id: str) -> tuple[int, str]:
    digits = "".join(ch for ch in db_id if ch.isdigit())
    return (int(digits) if digits else 0, db_id)
