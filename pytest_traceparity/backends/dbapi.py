"""PEP 249 in both directions.

* :class:`DBAPIConnection` adapts a DB-API-like client (``libsql``, ``sqlite3``) to our
  :class:`~pytest_traceparity.backends.base.Connection` interface (autocommit).
* :class:`Sqlite3Connection` goes the other way: it puts a ``sqlite3``-shaped connection
  (cursors, ``fetch*``, ``description``, ``row_factory``, ``isolation_level`` with implicit
  ``BEGIN`` before DML, ``with conn:``) on top of any backend's ``Connection``, so code written
  for ``sqlite3`` runs unchanged on every backend (the ``dbapi`` fixture and redirect mode).

Errors are the backend's own: the facade re-raises the exception the driver raised
(``sqlite3.IntegrityError`` on the reference, ``ValueError`` from libsql), because code that
catches ``sqlite3.IntegrityError`` really does break on a backend that raises ``ValueError``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any, Protocol

from ..errors import DatabaseError, TraceparityError, add_note, wrap_error
from ..values import Result
from .base import Connection, Params
from .sqlite3_rules import (  # re-exported: they lived here
    _IN_PROCESS_ONLY,
    _check_level,
    _in_process_message,
    adapt,
    adapt_params,
    is_dml,
    reraise,
    sqlite3_adapted,
)

__all__ = [
    "DBAPIConnection",
    "GuardedDBAPIConnection",
    "SQLConnection",
    "Sqlite3Connection",
    "Sqlite3Cursor",
    "adapt",
    "adapt_params",
    "is_dml",
    "reraise",
    "sqlite3_adapted",
]

_NAME = itemgetter(0)  # a column's name in a DB-API description

# -- backend Connection adapter for DB-API clients ---------------------------------------


class DBAPIConnection(Connection):
    """Adapter for DB-API-like clients (``libsql``, ``sqlite3``) in autocommit mode."""

    def __init__(self, raw: Any, backend_id: str) -> None:
        self.raw = raw
        self.backend_id = backend_id

    def execute(self, sql: str, params: Params = ()) -> Result:
        # Connection.execute with _execute, _result and _normalized's usual case inlined: every replayed
        # step comes here, and on a local file the client answers in a few microseconds
        try:
            cursor = self.raw.execute(sql, params)  # a cursor per statement: libsql's rowcount is per cursor
            # no close() once every row is read: the cursor goes with its last reference, here, at once; a
            # failure closes it explicitly (a traceback would keep it, and its locks, alive)
            try:
                description = cursor.description
                if not description:
                    return Result((), [], cursor.rowcount, cursor.lastrowid)
                rows = cursor.fetchall()
                if type(rows) is not list:
                    rows = list(rows)
                result = Result(tuple(map(_NAME, description)), rows, cursor.rowcount, cursor.lastrowid)
            except BaseException:
                cursor.close()
                raise
            return self._normalized(result) if rows else result
        except TraceparityError:
            raise
        except Exception as exc:
            raise wrap_error(exc, backend=self.backend_id, sql=sql) from exc

    def _execute(self, sql: str, params: Params) -> Result:
        cursor = self.raw.execute(sql, params)
        try:
            return self._result(cursor)
        finally:
            cursor.close()

    def _executemany(self, sql: str, batch: list[Params]) -> Result:
        cursor = self.raw.executemany(sql, batch)
        try:
            return self._result(cursor)
        finally:
            cursor.close()

    def _executescript(self, script: str) -> None:
        self.raw.executescript(script)

    def stream(self, sql: str, size: int = 512) -> Iterator[list[tuple[Any, ...]]]:
        with self._errors(sql):
            cursor = self.raw.execute(sql)
        try:
            while True:
                with self._errors(sql):
                    rows = cursor.fetchmany(size)
                if not rows:
                    return
                # rows that are not plain tuples of plain values are copied by _normalized
                yield self._normalized(Result(rows=rows if type(rows) is list else list(rows))).rows
        finally:
            cursor.close()

    def _in_transaction(self) -> bool:
        return bool(self.raw.in_transaction)

    def _close(self) -> None:
        self.raw.close()

    @staticmethod
    def _result(cursor: Any) -> Result:
        description = cursor.description or ()
        rows = cursor.fetchall() if description else []  # rows that are not tuples become tuples in _normalized
        if type(rows) is not list:
            rows = list(rows)
        return Result(
            columns=tuple(map(_NAME, description)),
            rows=rows,
            rowcount=cursor.rowcount,
            lastrowid=cursor.lastrowid,
        )


class GuardedDBAPIConnection(DBAPIConnection):
    """A DB-API connection whose every statement runs inside ``_run(sql, action)``.

    Why: replica backends sync before and after statements (``--replica-sync``, ``--turso-sync``)
    and translate client errors; one place wraps execute, executemany and executescript alike.
    """

    def _run(self, sql: str, action: Callable[[], Any]) -> Any:
        return action()

    execute = Connection.execute  # through _execute and so _run, never DBAPIConnection's inlined path

    def stream(self, sql: str, size: int = 512) -> Iterator[list[tuple[Any, ...]]]:
        return Connection.stream(self, sql, size)  # through _run like every other statement

    def _execute(self, sql: str, params: Params) -> Result:
        return self._run(sql, lambda: DBAPIConnection._execute(self, sql, params))  # type: ignore[no-any-return]

    def _executemany(self, sql: str, batch: list[Params]) -> Result:
        return self._run(sql, lambda: DBAPIConnection._executemany(self, sql, batch))  # type: ignore[no-any-return]

    def _executescript(self, script: str) -> None:
        self._run(script, lambda: DBAPIConnection._executescript(self, script))


# -- the sqlite3-shaped facade -------------------------------------------------------------


class SQLConnection(Protocol):
    """What the facade needs from a backend connection (``Connection`` and its shadowed twin)."""

    backend_id: str

    def execute(self, sql: str, params: Params = ()) -> Result: ...

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> Result: ...

    def executescript(self, script: str) -> None: ...

    def begin(self, mode: str = "DEFERRED") -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    @property
    def in_transaction(self) -> bool: ...

    def close(self) -> None: ...


class Sqlite3Cursor:
    """A ``sqlite3.Cursor`` look-alike; results are fetched whole by the backend, then served."""

    def __init__(self, connection: Sqlite3Connection) -> None:
        self.connection = connection
        self.arraysize = 1
        self.row_factory: Any = connection.row_factory
        self.description: tuple[tuple[Any, ...], ...] | None = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[tuple[Any, ...]] = []
        self._pos = 0
        self._closed = False
        self._row_shaper: Any = None

    # -- statements ---------------------------------------------------------------------
    def execute(self, sql: str, parameters: Any = (), /) -> Sqlite3Cursor:
        conn = self._check()
        params = adapt_params(parameters)
        conn._begin_if_needed(sql)
        self._take(conn._run(lambda c: c.execute(sql, params)))
        return self

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> Sqlite3Cursor:
        conn = self._check()
        batch = [adapt_params(p) for p in seq_of_parameters]
        conn._begin_if_needed(sql)
        result = conn._run(lambda c: c.executemany(sql, batch))
        self._take(Result(rowcount=result.rowcount, lastrowid=result.lastrowid))
        return self

    def executescript(self, sql_script: str, /) -> Sqlite3Cursor:
        conn = self._check()
        if conn.in_transaction:
            conn._run(lambda c: c.commit())
        conn._run(lambda c: c.executescript(sql_script))
        self._take(Result())
        return self

    def _take(self, result: Result) -> None:
        self.description = tuple((name, None, None, None, None, None, None) for name in result.columns) or None
        self._rows, self._pos, self._row_shaper = list(result.rows), 0, None
        self.rowcount = result.rowcount
        self.lastrowid = result.lastrowid

    # -- fetching -------------------------------------------------------------------------
    def fetchone(self) -> Any:
        self._check()
        if self._pos >= len(self._rows):
            return None
        row = self._rows[self._pos]
        self._pos += 1
        return self._shape(row)

    def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        out = []
        for _ in range(max(count, 0)):
            row = self.fetchone()
            if row is None:
                break
            out.append(row)
        return out

    def fetchall(self) -> list[Any]:
        self._check()
        rest, self._pos = self._rows[self._pos :], len(self._rows)
        return [self._shape(row) for row in rest]

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def _shape(self, row: tuple[Any, ...]) -> Any:
        text_factory = self.connection.text_factory
        if text_factory is not str:
            row = tuple(text_factory(v.encode("utf-8")) if isinstance(v, str) else v for v in row)
        factory = self.row_factory
        if factory is None:
            return row
        if factory is sqlite3.Row:
            return sqlite3.Row(self._row_template(), row)
        return factory(self, row)

    def _row_template(self) -> sqlite3.Cursor:
        """A real ``sqlite3.Cursor`` whose description matches, so rows are genuine ``sqlite3.Row``.

        ``sqlite3.Row`` only accepts a ``sqlite3.Cursor``; this private in-memory cursor only
        lends its column names (``SELECT NULL AS "name"``), the values are the backend's.
        """
        if self._row_shaper is None:
            names = [d[0] for d in self.description or ()]
            columns = ", ".join('NULL AS "' + str(n).replace('"', '""') + '"' for n in names) or "NULL"
            self._row_shaper = self.connection._shaper().execute(f"SELECT {columns}")
        return self._row_shaper  # type: ignore[no-any-return]

    # -- the rest of PEP 249 ----------------------------------------------------------------
    def close(self) -> None:
        self._closed = True
        self._rows = []

    def setinputsizes(self, sizes: Any) -> None:
        """PEP 249 no-op, as in sqlite3."""

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        """PEP 249 no-op, as in sqlite3."""

    def __enter__(self) -> Sqlite3Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self) -> Sqlite3Connection:
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed cursor.")
        self.connection._check()
        return self.connection


class Sqlite3Connection:
    """A ``sqlite3.Connection`` look-alike over one backend connection.

    ``isolation_level`` works as in sqlite3 (3.11 and the 3.12+ legacy mode): ``None`` is
    autocommit; otherwise a ``BEGIN <level>`` is issued before INSERT/UPDATE/DELETE/REPLACE
    when no transaction is open, ``commit()``/``rollback()`` end it, ``executescript``
    commits first, ``with conn:`` commits or rolls back (and does not close).
    """

    Warning = sqlite3.Warning
    Error = sqlite3.Error
    InterfaceError = sqlite3.InterfaceError
    DatabaseError = sqlite3.DatabaseError
    DataError = sqlite3.DataError
    OperationalError = sqlite3.OperationalError
    IntegrityError = sqlite3.IntegrityError
    InternalError = sqlite3.InternalError
    ProgrammingError = sqlite3.ProgrammingError
    NotSupportedError = sqlite3.NotSupportedError

    def __init__(self, conn: SQLConnection, *, isolation_level: str | None = "", label: str = "") -> None:
        self._conn: SQLConnection | None = conn
        self.backend_id = conn.backend_id
        self.label = label
        self.row_factory: Any = None
        self.text_factory: Any = str
        self._isolation_level = _check_level(isolation_level)
        self._functions: dict[str, Callable[..., Any]] = {}
        self._row_shaper_conn: sqlite3.Connection | None = None
        self.closed_because: str | None = None
        # Set by whoever closed it on the caller's behalf (redirect, at the end of a test): a
        # later use reconnects through it instead of failing (pooled connections of an engine).
        self.reopen: Callable[[], SQLConnection | None] | None = None

    # -- sqlite3 API ---------------------------------------------------------------------
    def cursor(self, factory: Any = None) -> Any:
        self._check()
        if factory is None or factory is Sqlite3Cursor:
            return Sqlite3Cursor(self)
        if isinstance(factory, type) and issubclass(factory, sqlite3.Cursor):
            raise sqlite3.NotSupportedError(
                f"cursor(factory={factory.__name__}): a sqlite3.Cursor subclass needs a real SQLite handle, "
                f"and this connection runs on backend {self.backend_id!r}; subclass nothing, or run this test "
                "without --traceparity-redirect"
            )
        return factory(self)

    def execute(self, sql: str, parameters: Any = (), /) -> Sqlite3Cursor:
        return Sqlite3Cursor(self).execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Sqlite3Cursor:
        return Sqlite3Cursor(self).executemany(sql, parameters)

    def executescript(self, sql_script: str, /) -> Sqlite3Cursor:
        return Sqlite3Cursor(self).executescript(sql_script)

    def commit(self) -> None:
        self._check()
        if self.in_transaction:
            self._run(lambda c: c.commit())

    def rollback(self) -> None:
        self._check()
        if self.in_transaction:
            self._run(lambda c: c.rollback())

    def close(self) -> None:
        conn, self._conn, self.reopen = self._conn, None, None
        shaper, self._row_shaper_conn = self._row_shaper_conn, None
        if shaper is not None:
            shaper.close()
        if conn is not None:
            self._run_on(conn, lambda c: c.close())

    @property
    def in_transaction(self) -> bool:
        conn = self._check()
        try:
            return conn.in_transaction
        except DatabaseError as exc:
            raise reraise(exc) from None

    @property
    def isolation_level(self) -> str | None:
        return self._isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        level = _check_level(value)
        if level is None and self._conn is not None and self.in_transaction:
            self._run(lambda c: c.commit())  # sqlite3 commits a pending transaction here
        self._isolation_level = level

    @property
    def total_changes(self) -> int:
        return int(self._run(lambda c: c.execute("SELECT total_changes()")).scalar() or 0)

    def create_function(self, name: str, narg: int, func: Callable[..., Any] | None, **kwargs: Any) -> None:
        """Kept, never run: a backend cannot call Python; a statement using it fails there by name.

        (SQLAlchemy registers ``regexp``/``floor`` on every sqlite connection, so refusing here
        would break every engine; the backend's "no such function" names it when it is used.)
        """
        self._check()
        if func is None:
            self._functions.pop(name.lower(), None)
        else:
            self._functions[name.lower()] = func

    def set_trace_callback(self, callback: Any) -> None:
        self._only_none("set_trace_callback", callback)

    def set_progress_handler(self, handler: Any, n: int = 0) -> None:
        self._only_none("set_progress_handler", handler)

    def __getattr__(self, name: str) -> Any:
        if name in _IN_PROCESS_ONLY:
            raise sqlite3.NotSupportedError(_in_process_message(f"Connection.{name}()", self.backend_id))
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __enter__(self) -> Sqlite3Connection:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is None:
            try:
                self.commit()
            except BaseException:
                self.rollback()
                raise
        else:
            self.rollback()

    def __repr__(self) -> str:
        return f"<traceparity sqlite3-shaped connection to {self.label or '?'} on {self.backend_id}>"

    # -- internals ---------------------------------------------------------------------------
    def _check(self) -> SQLConnection:
        if self._conn is None and self.reopen is not None:
            conn = self.reopen()
            if conn is not None:
                self._conn, self.backend_id, self.closed_because, self.reopen = conn, conn.backend_id, None, None
        if self._conn is None:
            raise sqlite3.ProgrammingError(self.closed_because or "Cannot operate on a closed database.")
        return self._conn

    def _run(self, fn: Callable[[SQLConnection], Any]) -> Any:
        return self._run_on(self._check(), fn)

    def _run_on(self, conn: SQLConnection, fn: Callable[[SQLConnection], Any]) -> Any:
        try:
            return fn(conn)
        except DatabaseError as exc:
            error = reraise(exc)
            for name in self._functions if exc.kind == "no_such_function" else ():
                if name in exc.message.lower():
                    add_note(
                        error,
                        f"[traceparity] {name}() was registered with create_function(), which runs "
                        f"Python inside SQLite; backend {self.backend_id!r} cannot call it",
                    )
        raise error from None  # outside the except: the caller sees the driver's error, not ours

    def _begin_if_needed(self, sql: str) -> None:
        if self._isolation_level is not None and is_dml(sql) and not self.in_transaction:
            level = self._isolation_level or "DEFERRED"
            self._run(lambda c: c.begin(level))

    def _shaper(self) -> sqlite3.Connection:
        if self._row_shaper_conn is None:
            self._row_shaper_conn = sqlite3.Connection(":memory:", check_same_thread=False)
        return self._row_shaper_conn

    def _only_none(self, what: str, value: Any) -> None:
        if value is not None:
            raise sqlite3.NotSupportedError(_in_process_message(f"Connection.{what}()", self.backend_id))
