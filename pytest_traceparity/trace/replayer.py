"""Replay a recorded trace on one backend, in recorded order, one step at a time.

Each distinct database the program opened (``db1``, ``db2`` ... in the trace) gets its
own fresh database on the backend; each recorded connection gets its own connection to
it, so interleaved multi-connection traffic (and its locking) replays as recorded.
Nothing is papered over: a backend that refuses named parameters or raises a different
exception class produces a different outcome, which the caller compares and judges.

A replay never aborts on what a trace contains: a connection whose open failed turns
its later steps into "not run" outcomes, an unreadable final state becomes a recorded
error in the snapshot, and file targets (ATTACH, VACUUM INTO, load_extension) are mapped
into the replay's private workdir (:mod:`.isolation`). Given the trace path, each
database is snapshotted and closed right after its last use, so memory stays bounded by
the databases in use at once, not by the trace's size.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends.base import CAP_SYNC, Backend, BackendContext, Connection, Database
from ..compare import Outcome
from ..errors import DatabaseError, TraceparityError
from ..errors import ReplayError as ReplayError
from ..fingerprint import safe_snapshot
from ..sqltext import split, statement_kind
from ..values import Result
from .faithful import Departure, departure_for
from .format import Event, TraceReader
from .isolation import PathMapper, file_targets, isolate, isolate_many
from .registrations import Registrations
from .seed import restore_seed
from .volatile import Volatility, load_patterns


@dataclass
class Step:
    event: Event
    outcome: Outcome


def not_run(reason: str, backend: str) -> Outcome:
    """The outcome of a step that could not be attempted (its connection never opened)."""
    return Outcome(
        error=DatabaseError(
            f"not run: {reason}", kind="not_run", backend=backend, exc_type="traceparity.NotRun", dbapi_class="NotRun"
        )
    )


_HEAD = re.compile(r'\{"seq":(\d+),"conn":(\d+),"op":"(\w+)"')


def last_uses(trace: str | Path) -> dict[str, int]:
    """``{db id: seq of its last event}``, one streaming pass over the trace.

    A pre-pass, so it reads only what it needs: a line in the writer's canonical shape by its
    first keys, any other line as JSON. It does not validate; the replay's own reader does,
    naming the file and line of the first problem.
    """
    last: dict[str, int] = {}
    conn_db: dict[Any, str] = {}
    with open(trace, encoding="utf-8") as fh:
        next(fh, None)  # the header
        for line in fh:
            head = _HEAD.match(line)
            if head is not None and head.group(3) != "open":
                db = conn_db.get(int(head.group(2)))
                if db:
                    last[db] = int(head.group(1))
                continue
            try:
                data = json.loads(line)
                seq, conn, db = data.get("seq"), data.get("conn"), data.get("db")
                if data.get("op") == "open" and isinstance(db, str):
                    conn_db[conn] = db
                else:
                    db = conn_db.get(conn)
            except (ValueError, AttributeError, TypeError):  # not an event: the replay's reader says why
                continue
            if db and isinstance(seq, int):
                last[db] = seq
    return last


@dataclass
class ReplayStats:
    """What the replay did besides running steps, for reports."""

    excluded: dict[str, int] = field(default_factory=dict)  # reason -> steps not run
    seeded: dict[str, str] = field(default_factory=dict)  # db id -> how its pre-existing content was restored
    unreadable: list[str] = field(default_factory=list)  # final-state parts that could not be read, by name

    def to_json(self) -> dict[str, Any]:
        return {
            "excluded": dict(self.excluded),
            "excluded_steps": sum(self.excluded.values()),
            "seeded": dict(self.seeded),
            "unreadable": list(self.unreadable),
        }

    def lines(self) -> list[str]:
        """For people: what was not compared, and what was restored before replay."""
        out = []
        if self.excluded:
            out.append(f"{sum(self.excluded.values())} step(s) marked and excluded from comparison:")
            out += [f"  {n}x {reason}" for reason, n in sorted(self.excluded.items())]
        out += [f"database {db} existed before recording: {how}" for db, how in sorted(self.seeded.items())]
        out += [f"final state: {what} (recorded as such and compared)" for what in self.unreadable]
        return out


class Replayer:
    """Drives one trace on one backend; use as a context manager so databases get released."""

    def __init__(
        self,
        backend: Backend,
        make_context: Callable[[str], BackendContext],
        name: str,
        *,
        trace: str | Path | None = None,
        departures: bool = True,
        last_use: dict[str, int] | None = None,
    ) -> None:
        """``last_use`` (db id -> seq of its last event) spares the pass over ``trace`` that finds it: a golden
        made from these very trace bytes carries it."""
        self.backend = backend
        self.make_context = make_context
        self.name = name
        self.databases: dict[str, Database] = {}
        self.connections: dict[int, Connection] = {}
        self.failed_opens: dict[int, str] = {}
        self.conn_db: dict[int, str] = {}
        self.targets: dict[str, str] = {}  # db id -> the name the program used for it
        self.served_by: dict[str, str] = {}
        self.snapshots: dict[str, Any] = {}
        self.departures: list[Departure] = []
        self._track_departures = departures  # only a golden update reads them (verify keeps no per-step state)
        self._inert: dict[str, bool] = {}  # SQL text -> neither volatile nor CREATE/ALTER (bounded below)
        self._plain: dict[str, bool] = {}  # SQL text -> inert and names no file (bounded)
        self.uncaptured: set[int] = set()  # connections to a pre-existing database the trace could not carry
        self.stats = ReplayStats()
        self.registrations = Registrations()
        self.paths = PathMapper(lambda: self.make_context(f"{self.name}-files").workdir)
        self._last = last_use if last_use is not None else last_uses(trace) if trace is not None else None
        self._retire_at = frozenset(self._last.values()) if self._last else frozenset()  # seqs that end a database
        self.volatility = Volatility(load_patterns(Path(trace).parent if trace is not None else Path.cwd()))

    @property
    def last_use(self) -> dict[str, int] | None:
        """db id -> seq of its last event (``None``: not known, databases are released at the end)."""
        return self._last

    def __enter__(self) -> Replayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _database(self, event: Event) -> Database:
        db_id = event.db or "db"
        if db_id not in self.databases:
            ctx = self.make_context(f"{self.name}-{db_id}")
            database = self.backend.create_database(ctx)
            self.databases[db_id] = database
            if event.seed:
                self.stats.seeded[db_id] = restore_seed(database, event.seed)
        return self.databases[db_id]

    def run(self, reader: TraceReader) -> Iterator[Step]:
        """Execute every event of ``reader`` (streamed) and yield its outcome."""
        for event in reader:
            yield Step(event, self.step(event))

    def step(self, event: Event) -> Outcome:
        """Run one event; never raises for what the trace contains."""
        try:
            conn = self.connections.get(event.conn) if event.op == "execute" else None
            if conn is None or event.error or self.registrations.active:
                outcome = self._step(event)
            else:  # _step's execute branch, directly (run_block runs a plain statement without even this)
                outcome = self._execute(conn, event)
        except TraceparityError as exc:
            outcome = not_run(_one_line(exc), self.backend.id)
        except Exception as exc:  # a client library failing outside its error model: a fact, not an abort
            outcome = not_run(f"the client raised {type(exc).__name__}: {_one_line(exc)}", self.backend.id)
        if self._track_departures:
            departure = departure_for(event, outcome)
            if departure is not None:
                self.departures.append(departure)
        if self._last is not None and event.db and self._last.get(event.db) == event.seq:
            self._retire(event.db)
        return outcome

    def run_block(self, events: list[Event]) -> list[Outcome]:
        """:meth:`step` of each event, in order, inside the backend's :meth:`~.Backend.run_steps`."""
        return self.backend.run_steps(lambda: self._run_block(events))

    def _run_block(self, events: list[Event]) -> list[Outcome]:
        """:meth:`step` of each event, in order. The usual steps (a statement that names no file and whose values
        nothing masks, BEGIN, COMMIT, on an open connection) run inline here; anything else through :meth:`step`."""
        outcomes: list[Outcome] = []
        append, step, connections, plain = outcomes.append, self.step, self.connections, self._plain
        volatility, registrations = self.volatility, self.registrations
        if self._track_departures:
            return [step(event) for event in events]
        retire_at = self._retire_at
        for event in events:
            conn = connections.get(event.conn)
            op = event.op
            if conn is None or event.error or registrations.active or event.seq in retire_at:
                append(step(event))
                continue
            try:  # step()'s usual cases and its error handling, spelled out
                if op == "execute":
                    if not plain.get(event.sql) or volatility.tables or volatility.columns:  # type: ignore[arg-type]
                        append(step(event))
                        continue
                    result = conn.execute(event.sql, event.params)  # type: ignore[arg-type]
                    append(Outcome(result if isinstance(result, Result) else Result()))
                elif op == "begin":
                    conn.begin(event.mode or "DEFERRED")
                    append(Outcome(result=Result()))  # as _plain: no rows, success or error only
                elif op == "commit":
                    conn.commit()
                    append(Outcome(result=Result()))
                else:
                    append(step(event))
            except DatabaseError as exc:
                append(Outcome(error=exc))
            except TraceparityError as exc:
                append(not_run(_one_line(exc), self.backend.id))
            except Exception as exc:
                append(not_run(f"the client raised {type(exc).__name__}: {_one_line(exc)}", self.backend.id))
        return outcomes

    def _step(self, event: Event) -> Outcome:
        op = event.op
        if op == "open":
            self.conn_db[event.conn] = event.db or "db"
            self.targets.setdefault(event.db or "db", event.target or "?")
            if event.seed and "skipped" in event.seed:
                self.uncaptured.add(event.conn)
            if event.fresh and event.db in self.databases:  # the program deleted the file: start afresh
                self._discard(event.db, keep=event.conn)
            try:
                database = self._database(event)
                self.connections[event.conn] = database.connect()
            except Exception as exc:  # any failure to open is a fact about this backend, never an abort
                self.failed_opens[event.conn] = _one_line(exc)
                if isinstance(exc, DatabaseError):
                    return Outcome(error=exc)
                return not_run(f"database could not be opened ({_one_line(exc)})", self.backend.id)
            return Outcome(result=Result())
        if op == "register":
            self.registrations.add(event)
            return Outcome(result=Result())
        conn = self.connections.get(event.conn)
        if conn is None:
            if op == "close":
                self.failed_opens.pop(event.conn, None)
                return Outcome(result=Result())
            reason = self.failed_opens.get(event.conn)
            why = f"open failed ({reason})" if reason is not None else "its connection is not open"
            return not_run(why, self.backend.id)
        if op in ("execute", "executemany", "executescript"):
            marked = self._marked(event)
            if marked is not None:
                return marked
        if op == "execute":
            return self._execute(conn, event)
        if op == "executemany":
            sql, batches = isolate_many(event.sql or "", list(event.many or []), self.paths)
            return self._volatile(sql, Outcome.capture(conn.executemany, sql, batches))
        if op == "executescript":
            sql, _ = isolate(event.sql or "", (), self.paths)
            for statement in split(sql):
                self.volatility.observe(statement)
            return _plain(Outcome.capture(conn.executescript, sql))
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
        return not_run(f"unknown op {op!r}", self.backend.id)

    def _execute(self, conn: Connection, event: Event) -> Outcome:
        """An execute step, not marked (``Outcome.capture(conn.execute, ...)`` spelled out: every
        replayed step comes here)."""
        sql, params = isolate(event.sql or "", event.params, self.paths)
        try:
            result = conn.execute(sql, params)
        except DatabaseError as exc:
            return self._volatile(sql, Outcome(error=exc))
        outcome = self._volatile(sql, Outcome(result=result if isinstance(result, Result) else Result()))
        if sql is event.sql and self._inert.get(sql) and len(self._plain) < 4096:
            self._plain[sql] = not file_targets(sql)  # the next time, step() runs it without asking again
        return outcome

    def _volatile(self, sql: str, outcome: Outcome) -> Outcome:
        """Values a volatile statement returns are compared by storage class only."""
        volatility = self.volatility
        inert = self._inert.get(sql)
        if inert is None:  # observing such a statement changes nothing and answers False: ask once per text
            inert = statement_kind(sql) not in ("CREATE", "ALTER") and not volatility.is_volatile(sql)
            if len(self._inert) >= 4096:
                self._inert.clear()
            self._inert[sql] = inert
        volatile = False if inert else volatility.observe(sql)
        result = outcome.result
        if result is None or not result.rows or (inert and not volatility.tables and not volatility.columns):
            return outcome
        positions = None if volatile else self.volatility.result_columns(sql, result.columns)
        if positions is None or positions:
            return Outcome(result=self.volatility.mask(result, positions))
        return outcome

    def _marked(self, event: Event) -> Outcome | None:
        """Steps whose outcome the replay cannot reproduce faithfully are marked, not run.

        Every backend gets the same marked outcome, so they are excluded from comparison;
        the count per reason is in :attr:`stats`.
        """
        reason = self.registrations.dependency(event.conn, event.sql or "")
        if reason is None and event.error and event.error.get("in_progress"):
            reason = "failed in the program because a cursor was still unfetched (cursor lifetime not replayed)"
        if reason is None:
            return None
        self.stats.excluded[reason] = self.stats.excluded.get(reason, 0) + 1
        fields = dict(event.error) if event.error and "in_progress" in event.error else {}
        fields.update(
            {"kind": "excluded", "dbapi_class": "Excluded", "exc_type": "traceparity.Excluded", "reason": reason}
        )
        return Outcome(error_json=fields)

    def _retire(self, db_id: str) -> None:
        """After a database's last event: close what is still open on it, snapshot it, release it."""
        for conn_id in [c for c, d in self.conn_db.items() if d == db_id]:
            conn = self.connections.pop(conn_id, None)
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            del self.conn_db[conn_id]
        database = self.databases.pop(db_id, None)
        if database is None:
            return
        self.snapshots[db_id] = self._snapshot(db_id, database)
        with contextlib.suppress(Exception):
            database.close()

    def _discard(self, db_id: str, keep: int) -> None:
        for conn_id in [c for c, d in self.conn_db.items() if d == db_id and c != keep]:
            conn = self.connections.pop(conn_id, None)
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
        database = self.databases.pop(db_id)
        with contextlib.suppress(Exception):
            database.close()

    def _snapshot(self, db_id: str, database: Database) -> dict[str, Any]:
        with contextlib.suppress(Exception):
            self.served_by[db_id] = database.served_by
        try:
            conn = database.connect()
        except Exception as exc:
            snap = {"error": f"final state could not be read: connect failed ({_one_line(exc)})"}
            self._note_unreadable(db_id, snap)
            return snap
        with contextlib.closing(conn):
            snap = safe_snapshot(lambda sql: conn.execute(sql), self.volatility.volatile_columns, conn.stream)
        self._note_unreadable(db_id, snap)
        return snap

    def _note_unreadable(self, db_id: str, snap: dict[str, Any]) -> None:
        where = f"database {db_id} ({self.targets.get(db_id, '?')})"
        if "error" in snap:
            self.stats.unreadable.append(f"{where}: {snap['error']}")
        for table, digest in snap.get("content", {}).items():
            if "error" in digest:
                self.stats.unreadable.append(f"{where}, table {table!r}: unreadable ({digest['error']})")

    def final_state(self) -> dict[str, Any]:
        """Close what the program left open (like process exit), then snapshot every database."""
        self._close_connections()
        out = dict(self.snapshots)
        for db_id in list(self.databases):
            database = self.databases[db_id]
            out[db_id] = self._snapshot(db_id, database)
        return {k: out[k] for k in sorted(out, key=_db_order)}

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


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 240 else text[:237] + "..."


def _plain(outcome: Outcome) -> Outcome:
    """Ops without rows compare on success/error only (drivers disagree on rowcount -1/0 there)."""
    if outcome.failed:
        return outcome
    return Outcome(result=Result())


def _db_order(db_id: str) -> tuple[int, str]:
    digits = "".join(ch for ch in db_id if ch.isdigit())
    return (int(digits) if digits else 0, db_id)
