"""Record what a Python program sends to its databases, with no change to its code.

Three capture points, all feeding one :class:`Recorder`:

* ``sqlite3``: ``sqlite3.connect`` returns a subclass of the connection class the caller
  asked for (so ``isinstance`` checks, aiosqlite and SQLAlchemy keep working);
* ``libsql``: its classes cannot be subclassed, so ``libsql.connect`` returns a proxy;
* SQLAlchemy: an event listener on every sync and async engine, for drivers the two
  proxies do not see (a connection already captured by a proxy is not recorded twice).

Transactions are recorded as SQLite saw them: the drivers begin transactions implicitly
(``isolation_level='DEFERRED'``), so a ``begin`` event is written whenever a call moved
the connection from autocommit into a transaction, and ``commit``/``rollback`` only when
one was open. Replay on an autocommit connection then reproduces the same boundaries.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.abc
import importlib.machinery
import os
import re
import sqlite3
import struct
import sys
import tempfile
import threading
import time
import types
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..backends.errors import classify_message, dbapi_class, qualified_type_name
from ..backends.values import encode_value
from ..sqltext import is_transaction_control
from .format import TraceHeader, TraceWriter
from .seed import capture_seed


# -- redaction ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RedactionRule:
    """Replace parameter values before they are written.

    ``sql``: regex searched in the statement (``None``: every statement); ``params``:
    positions (0-based) or names to redact, empty = all; ``value``: regex a text value
    must match (e.g. an e-mail pattern), ``None`` = any value. Redacted values become a
    stable hash of the same storage class, so equal values stay equal and joins,
    uniqueness and ``GROUP BY`` still replay the same way.
    """

    sql: str | None = None
    params: tuple[int | str, ...] = ()
    value: str | None = None

    @classmethod
    def parse(cls, spec: str) -> RedactionRule:
        """Command-line form: ``sql=REGEX;params=0,email;value=REGEX`` (each part optional).

        A spec without ``=`` is taken as ``sql=SPEC`` (every parameter of matching statements).
        """
        if "=" not in spec.split(";", 1)[0]:
            spec = f"sql={spec}"
        fields: dict[str, str] = {}
        for part in spec.split(";"):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in ("sql", "params", "value"):
                raise ValueError(f"expected sql=REGEX, params=P1,P2 or value=REGEX, got {part!r}")
            fields[key] = value
        for key in ("sql", "value"):
            if key in fields:
                re.compile(fields[key])
        params: list[int | str] = []
        for item in filter(None, (p.strip() for p in fields.get("params", "").split(","))):
            params.append(int(item) if item.lstrip("-").isdigit() else item.lstrip(":@$"))
        return cls(sql=fields.get("sql") or None, params=tuple(params), value=fields.get("value") or None)

    def spec(self) -> str:
        parts = []
        if self.sql is not None:
            parts.append(f"sql={self.sql}")
        if self.params:
            parts.append("params=" + ",".join(map(str, self.params)))
        if self.value is not None:
            parts.append(f"value={self.value}")
        return ";".join(parts) or "sql=."


def _hashed(value: Any) -> Any:
    digest = hashlib.sha256(repr((type(value).__name__, value)).encode("utf-8", "surrogatepass")).digest()
    if isinstance(value, (bool, int)):
        return int.from_bytes(digest[:6], "big")
    if isinstance(value, float):
        return float(int.from_bytes(digest[:6], "big")) / 1024
    if isinstance(value, str):
        return f"redacted:{digest[:8].hex()}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return digest[:16]
    return value


class Redactor:
    def __init__(self, rules: Iterable[RedactionRule] = ()) -> None:
        self.rules = list(rules)
        self._sql = [(r, re.compile(r.sql) if r.sql else None, re.compile(r.value) if r.value else None)
                     for r in self.rules]

    def __bool__(self) -> bool:
        return bool(self.rules)

    def apply(self, sql: str, params: Any) -> Any:
        if not self.rules or params is None:
            return params
        active = [(r, v) for r, s, v in self._sql if s is None or s.search(sql)]
        if not active:
            return params
        if isinstance(params, dict):
            return {k: self._one(k, None, v, active) for k, v in params.items()}
        return [self._one(None, i, v, active) for i, v in enumerate(params)]

    @staticmethod
    def _one(name: str | None, index: int | None, value: Any, active: list[Any]) -> Any:
        for rule, value_re in active:
            if rule.params and index not in rule.params and name not in rule.params:
                continue
            if value_re is not None and not (isinstance(value, str) and value_re.search(value)):
                continue
            return _hashed(value)
        return value


# -- the sink ------------------------------------------------------------------------------
def _adapt(value: Any) -> Any:
    """What sqlite3 would bind: registered adapters and ``__conform__`` applied."""
    if value is None or isinstance(value, (int, float, str, bytes, bytearray, memoryview)):
        return value
    adapter = sqlite3.adapters.get((type(value), sqlite3.PrepareProtocol))
    if adapter is not None:
        return adapter(value)
    conform = getattr(value, "__conform__", None)
    if conform is not None:
        adapted = conform(sqlite3.PrepareProtocol)
        if adapted is not None:
            return adapted
    return str(value)


def _encode_params(params: Any) -> Any:
    if params is None:
        return []
    if isinstance(params, dict):
        return {str(k): encode_value(_adapt(v)) for k, v in params.items()}
    if isinstance(params, (str, bytes)):
        raise TypeError("parameters must be a sequence or a mapping, not a string")
    return [encode_value(_adapt(v)) for v in params]


def _error_json(exc: BaseException) -> dict[str, Any]:
    orig = getattr(exc, "orig", exc)
    data: dict[str, Any] = {"kind": classify_message(str(orig)), "dbapi_class": dbapi_class(exc),
                            "exc_type": qualified_type_name(exc)}
    if "statements in progress" in str(orig):  # cursor lifetime: the replay marks this step
        data["in_progress"] = True
    return data


class Recorder:
    """Numbers connections and databases and writes events, one line each, thread-safe."""

    def __init__(self, writer: TraceWriter, *, redactor: Redactor | None = None,
                 base_dir: str | None = None, stamp: bool = False) -> None:
        self.writer = writer
        self.stamp = stamp  # part files of a multi-process recording carry a merge key (stripped on merge)
        self.redactor = redactor or Redactor()
        self.base_dir = os.path.realpath(base_dir or os.getcwd())
        self._lock = threading.RLock()
        self._conns = 0
        self._dbs: dict[str, tuple[str, str]] = {}
        self._labels: set[str] = set()
        self._ndb = 0
        self._temp_dirs: dict[str, str] = {}
        self._new_file: str | None = None  # real path of a file database seen for the first time
        self.started = float(os.environ.get(ENV_START) or time.time())
        self.closed = False

    # databases -------------------------------------------------------------------------
    def _database(self, database: Any, uri: bool) -> tuple[str, str, str | None]:
        """(db id, label, key) for what ``connect()`` opened; each private memory db is new.

        ``key`` identifies the file across processes (a digest of its real path, never
        written to the final trace); ``label`` is the path relative to the recording's
        directory, or the base name, made unique when two files would share it.
        """
        text = os.fsdecode(database) if isinstance(database, (bytes, os.PathLike)) else str(database)
        if "://" in text:  # a remote URL: its query (?authToken=...) and user info never reach the trace
            parts = urllib.parse.urlsplit(text)
            text = urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
        path, memory = text, text in ("", ":memory:")
        if uri or text.startswith("file:"):
            body, _, query = text[len("file:"):].partition("?") if text.startswith("file:") else (text, "", "")
            shared = "cache=shared" in query
            memory = "mode=memory" in query or body in ("", ":memory:")
            if memory and shared:
                label = f"file:{body}?mode=memory&cache=shared"
                return (*self._db_for(f"memory:{body}", label), f"memory:{body}")
            path = body
        if memory:
            db_id, label = self._db_for(None, ":memory:")
            return db_id, label, None
        real = os.path.realpath(path)
        key = hashlib.sha256(real.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        if key not in self._dbs:
            self._new_file = real
        return (*self._db_for(key, self._label(real)), key)

    def _label(self, real: str) -> str:
        """A name that does not change between recordings: relative to the recording's directory,
        or ``tmpN/...`` for files under the temporary root (``N`` numbers their directories by
        first appearance, so random directory names never reach the trace), else the base name."""
        try:
            label = os.path.relpath(real, self.base_dir)
        except ValueError:
            label = ".."
        if label.startswith(".."):
            temp = os.path.realpath(tempfile.gettempdir())
            parent = os.path.dirname(real)
            if real.startswith(temp + os.sep):
                if parent not in self._temp_dirs:
                    self._temp_dirs[parent] = f"tmp{len(self._temp_dirs) + 1}"
                label = f"{self._temp_dirs[parent]}/{os.path.basename(real)}"
            else:
                label = os.path.basename(real)
        return label.replace(os.sep, "/")

    def _db_for(self, key: str | None, label: str) -> tuple[str, str]:
        if key is not None and key in self._dbs:
            return self._dbs[key]
        self._ndb += 1
        db_id = f"db{self._ndb}"
        if key is not None:
            if not self.stamp:  # parts of a multi-process recording are made unique when merged
                label = unique_label(label, self._labels)
            self._dbs[key] = (db_id, label)
        return db_id, label

    def open(self, driver: str, database: Any, *, uri: bool = False) -> int:
        with self._lock:
            self._conns += 1
            conn = self._conns
            self._new_file = None
            db_id, label, key = self._database(database, uri)
            seed = None
            if self._new_file is not None and _existed_before(self._new_file, self.started):
                seed = capture_seed(self._new_file)
                if seed and "skipped" in seed:
                    sys.stderr.write(f"traceparity record: {label}: {seed['skipped']}\n")
            self._write("open", conn, db=db_id, target=label, driver=driver, seed=seed,
                        key=key if self.stamp else None)
            return conn

    # events ------------------------------------------------------------------------------
    def _write(self, op: str, conn: int, **fields: Any) -> None:
        if self.closed:
            return
        if self.stamp:
            fields["t"] = time.monotonic_ns()
            # pytest-xdist names its workers only after start-up: the merge orders parts by that name.
            fields["w"] = os.environ.get("PYTEST_XDIST_WORKER")
        self.writer.write_event(op, conn, **fields)

    def statement(self, conn: int, op: str, sql: str, params: Any, *, began: bool,
                  ended: str | None = None, error: BaseException | None = None, mode: str = "DEFERRED") -> None:
        """Write one statement, preceded by the implicit ``begin`` the driver issued for it."""
        if op == "executemany":
            encoded = [_encode_params(self.redactor.apply(sql, p)) for p in params]
        elif op == "executescript":
            encoded = None
        else:
            encoded = _encode_params(self.redactor.apply(sql, params))
        with self._lock:
            if ended:
                self._write(ended, conn)
            if began:
                self._write("begin", conn, mode=mode)
            self._write(op, conn, sql=sql, params=encoded, error=_error_json(error) if error else None)

    def simple(self, conn: int, op: str, **fields: Any) -> None:
        with self._lock:
            self._write(op, conn, **fields)

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                self.writer.close()


def _existed_before(path: str, started: float) -> bool:
    """True for a non-empty file last written before the recording started."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_size > 0 and st.st_mtime < started - 0.01  # the kernel's file clock is coarse


def unique_label(label: str, used: set[str]) -> str:
    """``label``, or ``label~2``, ``label~3`` ... when another database already has it."""
    candidate, n = label, 1
    while candidate in used:
        n += 1
        candidate = f"{label}~{n}"
    used.add(candidate)
    return candidate


def _in_tx(conn: Any) -> bool:
    try:
        return bool(conn.in_transaction)
    except Exception:
        return False


def _begin_mode(conn: Any) -> str:
    level = getattr(conn, "isolation_level", "DEFERRED")
    return str(level).upper() if str(level).upper() in ("IMMEDIATE", "EXCLUSIVE") else "DEFERRED"


def _run(rec: Recorder, owner: Any, conn_id: int, op: str, sql: str, params: Any,
         call: Callable[[], Any], *, script_commits: bool = False) -> Any:
    """Run one driver call and record it with the transaction transition it caused.

    ``script_commits``: the driver COMMITs a pending transaction before ``executescript``
    (``sqlite3`` does), so that commit is recorded first.
    """
    before = _in_tx(owner)
    error: Exception | None = None
    try:
        return call()
    except Exception as exc:
        error = exc
        raise
    finally:
        after = _in_tx(owner)
        script = op == "executescript"
        rec.statement(conn_id, op, sql, params, error=error, mode=_begin_mode(owner),
                      began=not script and _implicit_begin(sql, before, after),
                      ended="commit" if script and script_commits and before else None)


def _implicit_begin(sql: str, before: bool, after: bool) -> bool:
    return not before and after and not is_transaction_control(sql)


def _end(rec: Recorder, owner: Any, conn_id: int, op: str, call: Callable[[], Any]) -> Any:
    """commit()/rollback(): recorded only when a transaction was open; a driver that opens
    the next one at once (``sqlite3`` with ``autocommit=False``) gets that ``begin`` recorded."""
    before = _in_tx(owner)
    result = call()
    if before:
        rec.simple(conn_id, op)
        if _in_tx(owner):
            rec.simple(conn_id, "begin", mode=_begin_mode(owner))
    return result


# -- sqlite3 ---------------------------------------------------------------------------
class _Active:
    recorder: Recorder | None = None


def _sqlite_cursor_class(base: type[sqlite3.Cursor]) -> type[sqlite3.Cursor]:
    class RecordingCursor(base):  # type: ignore[valid-type,misc]
        def execute(self, sql: str, parameters: Any = (), /) -> Any:
            conn = self.connection
            rec, cid = getattr(conn, "_tp_recorder", None), getattr(conn, "_tp_conn", 0)
            if rec is None:
                return super().execute(sql, parameters)
            return _run(rec, conn, cid, "execute", sql, parameters, lambda: super(RecordingCursor, self)
                        .execute(sql, parameters))

        def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any:
            conn = self.connection
            rec, cid = getattr(conn, "_tp_recorder", None), getattr(conn, "_tp_conn", 0)
            if rec is None:
                return super().executemany(sql, seq_of_parameters)
            batch = list(seq_of_parameters)
            return _run(rec, conn, cid, "executemany", sql, batch, lambda: super(RecordingCursor, self)
                        .executemany(sql, batch))

        def executescript(self, sql_script: str, /) -> Any:
            conn = self.connection
            rec, cid = getattr(conn, "_tp_recorder", None), getattr(conn, "_tp_conn", 0)
            if rec is None:
                return super().executescript(sql_script)

            def run_script() -> Any:
                # Python 3.10's executescript() commits through conn.commit(); that commit is
                # already recorded as the script's own (script_commits), so not twice.
                conn._tp_in_script = True
                try:
                    return super(RecordingCursor, self).executescript(sql_script)
                finally:
                    conn._tp_in_script = False

            return _run(rec, conn, cid, "executescript", sql_script, None, run_script, script_commits=True)

    RecordingCursor.__name__ = RecordingCursor.__qualname__ = f"Recording{base.__name__}"
    return RecordingCursor


@functools.cache
def _sqlite_connection_class(base: type[sqlite3.Connection]) -> type[sqlite3.Connection]:
    class RecordingConnection(base):  # type: ignore[valid-type,misc]
        _tp_recording = True

        def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(database, *args, **kwargs)
            rec = _Active.recorder
            self._tp_recorder = rec
            self._tp_conn = rec.open("sqlite3", database, uri=bool(kwargs.get("uri"))) if rec else 0
            if rec is not None and _in_tx(self):  # autocommit=False (3.12+) opens a transaction at once
                rec.simple(self._tp_conn, "begin", mode=_begin_mode(self))

        def cursor(self, factory: Any = sqlite3.Cursor) -> Any:
            return super().cursor(_sqlite_cursor_class_cached(factory))

        def execute(self, sql: str, parameters: Any = (), /) -> Any:
            return self.cursor().execute(sql, parameters)

        def executemany(self, sql: str, parameters: Any, /) -> Any:
            return self.cursor().executemany(sql, parameters)

        def executescript(self, sql_script: str, /) -> Any:
            return self.cursor().executescript(sql_script)

        def commit(self) -> None:
            if self._tp_recorder is None or getattr(self, "_tp_in_script", False):
                super().commit()
            else:
                _end(self._tp_recorder, self, self._tp_conn, "commit", super().commit)

        def rollback(self) -> None:
            if self._tp_recorder is None:
                super().rollback()
            else:
                _end(self._tp_recorder, self, self._tp_conn, "rollback", super().rollback)

        def create_function(self, name: str, narg: int, func: Any, *args: Any, **kwargs: Any) -> None:
            super().create_function(name, narg, func, *args, **kwargs)
            self._tp_register("function", name, narg)

        def create_aggregate(self, name: str, n_arg: int, aggregate_class: Any) -> None:
            super().create_aggregate(name, n_arg, aggregate_class)
            self._tp_register("aggregate", name, n_arg)

        def create_window_function(self, name: str, num_params: int, aggregate_class: Any, /) -> None:
            super().create_window_function(name, num_params, aggregate_class)
            self._tp_register("window", name, num_params)

        def create_collation(self, name: str, callable: Any, /) -> None:
            super().create_collation(name, callable)
            self._tp_register("collation", name, None)

        def _tp_register(self, kind: str, name: str, arity: int | None) -> None:
            rec = getattr(self, "_tp_recorder", None)
            if rec is not None:
                rec.simple(self._tp_conn, "register", kind=kind, name=str(name), arity=arity)

        def close(self) -> None:
            rec, self._tp_recorder = getattr(self, "_tp_recorder", None), None
            super().close()
            if rec is not None:
                rec.simple(self._tp_conn, "close")

    RecordingConnection.__name__ = RecordingConnection.__qualname__ = f"Recording{base.__name__}"
    return RecordingConnection


@functools.cache
def _sqlite_cursor_class_cached(base: type[sqlite3.Cursor]) -> type[sqlite3.Cursor]:
    return _sqlite_cursor_class(base)


_FACTORY_POS = 4  # sqlite3.connect(database, timeout, detect_types, isolation_level, check_same_thread, factory)


def _patched_sqlite_connect(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def connect(database: Any, *args: Any, **kwargs: Any) -> Any:
        if _Active.recorder is None:
            return original(database, *args, **kwargs)
        if len(args) > _FACTORY_POS:
            kwargs["factory"] = args[_FACTORY_POS]
            args = args[:_FACTORY_POS] + args[_FACTORY_POS + 1:]
        factory = kwargs.get("factory") or sqlite3.Connection
        if not getattr(factory, "_tp_recording", False):
            kwargs["factory"] = _sqlite_connection_class(factory)
        return original(database, *args, **kwargs)

    connect._tp_original = original  # type: ignore[attr-defined]
    return connect


# -- libsql ----------------------------------------------------------------------------
class RecordingLibsqlCursor:
    """Proxy for a ``libsql`` cursor (its classes cannot be subclassed)."""

    def __init__(self, raw: Any, conn: RecordingLibsqlConnection) -> None:
        self._raw = raw
        self._conn = conn

    def execute(self, sql: str, parameters: Any = (), /) -> RecordingLibsqlCursor:
        c = self._conn
        _run(c._tp_recorder, c._raw, c._tp_conn, "execute", sql, parameters,
             lambda: self._raw.execute(sql, parameters))
        return self

    def executemany(self, sql: str, parameters: Any, /) -> RecordingLibsqlCursor:
        c, batch = self._conn, list(parameters)
        _run(c._tp_recorder, c._raw, c._tp_conn, "executemany", sql, batch,
             lambda: self._raw.executemany(sql, batch))
        return self

    def executescript(self, script: str, /) -> RecordingLibsqlCursor:
        c = self._conn
        _run(c._tp_recorder, c._raw, c._tp_conn, "executescript", script, None,
             lambda: self._raw.executescript(script))
        return self

    @property
    def connection(self) -> RecordingLibsqlConnection:
        return self._conn

    def __iter__(self) -> Iterator[Any]:
        return iter(self._raw.fetchall())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class RecordingLibsqlConnection:
    """Proxy for a ``libsql`` connection; everything not recorded is delegated."""

    _tp_recording = True

    def __init__(self, raw: Any, recorder: Recorder, database: Any) -> None:
        self._raw = raw
        self._tp_recorder = recorder
        self._tp_conn = recorder.open("libsql", database)

    def cursor(self) -> RecordingLibsqlCursor:
        return RecordingLibsqlCursor(self._raw.cursor(), self)

    def execute(self, sql: str, parameters: Any = (), /) -> RecordingLibsqlCursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> RecordingLibsqlCursor:
        return self.cursor().executemany(sql, parameters)

    def executescript(self, script: str, /) -> RecordingLibsqlCursor:
        return self.cursor().executescript(script)

    def commit(self) -> None:
        _end(self._tp_recorder, self._raw, self._tp_conn, "commit", self._raw.commit)

    def rollback(self) -> None:
        _end(self._tp_recorder, self._raw, self._tp_conn, "rollback", self._raw.rollback)

    def sync(self) -> Any:
        result = self._raw.sync()
        self._tp_recorder.simple(self._tp_conn, "sync")
        return result

    def close(self) -> None:
        self._raw.close()
        self._tp_recorder.simple(self._tp_conn, "close")

    def __enter__(self) -> RecordingLibsqlConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _patched_libsql_connect(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def connect(database: Any, *args: Any, **kwargs: Any) -> Any:
        raw = original(database, *args, **kwargs)
        rec = _Active.recorder
        return raw if rec is None else RecordingLibsqlConnection(raw, rec, database)

    connect._tp_original = original  # type: ignore[attr-defined]
    return connect


# -- SQLAlchemy --------------------------------------------------------------------------
def _captured_by_proxy(dbapi_conn: Any) -> bool:
    seen: set[int] = set()
    todo = [dbapi_conn]
    while todo:  # the adapted driver connection may wrap the real one a few levels down
        obj = todo.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if getattr(type(obj), "_tp_recording", False):
            return True
        if len(seen) < 8:
            todo.extend(getattr(obj, a, None) for a in ("driver_connection", "_connection", "_conn"))
    return False


def _sa_in_tx(dbapi_conn: Any) -> bool | None:
    for path in ((), ("_connection",), ("driver_connection",), ("_connection", "_conn")):
        obj = dbapi_conn
        for attr in path:
            obj = getattr(obj, attr, None)
        value = getattr(obj, "in_transaction", None) if obj is not None else None
        if isinstance(value, bool):
            return value
    return None


class SQLAlchemyListener:
    """Engine-wide listeners: every ``Engine`` (and the sync side of every ``AsyncEngine``)."""

    def __init__(self) -> None:
        self.installed = False

    def install(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        if self.installed:
            return
        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)
        event.listen(Engine, "handle_error", self._error)
        event.listen(Engine, "commit", self._commit)
        event.listen(Engine, "rollback", self._rollback)
        self.installed = True

    def uninstall(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        if not self.installed:
            return
        for name, fn in (("before_cursor_execute", self._before), ("after_cursor_execute", self._after),
                         ("handle_error", self._error), ("commit", self._commit), ("rollback", self._rollback)):
            with contextlib.suppress(Exception):
                event.remove(Engine, name, fn)
        self.installed = False

    def _conn_id(self, conn: Any) -> tuple[Recorder, int] | None:
        rec = _Active.recorder
        if rec is None:
            return None
        try:
            pooled = conn.connection
            dbapi_conn = pooled.dbapi_connection
        except Exception:
            return None
        if _captured_by_proxy(dbapi_conn):
            return None
        info = pooled.info
        key = ("traceparity", id(rec))
        if key not in info:
            url = conn.engine.url
            info[key] = rec.open(f"sqlalchemy:{url.get_backend_name()}", url.database or ":memory:")
        return rec, info[key]

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> None:
        if context is not None:
            context._tp_before = _sa_in_tx(conn.connection.dbapi_connection)

    def _emit(self, conn: Any, statement: str, parameters: Any, context: Any, executemany: bool,
              error: BaseException | None) -> None:
        found = self._conn_id(conn)
        if found is None:
            return
        rec, cid = found
        before = getattr(context, "_tp_before", None)
        after = _sa_in_tx(conn.connection.dbapi_connection)
        began = bool(before is False and after and not is_transaction_control(statement))
        op = "executemany" if executemany else "execute"
        params = list(parameters) if executemany else parameters
        rec.statement(cid, op, statement, params, began=began, error=error)

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        self._emit(conn, statement, parameters, context, executemany, None)

    def _error(self, ctx: Any) -> None:
        if ctx.connection is not None and ctx.statement is not None:
            many = bool(getattr(ctx.execution_context, "executemany", False))
            self._emit(ctx.connection, ctx.statement, ctx.parameters, ctx.execution_context, many,
                       ctx.original_exception)

    def _tx_end(self, conn: Any, op: str) -> None:
        found = self._conn_id(conn)
        if found is None:
            return
        in_tx = _sa_in_tx(conn.connection.dbapi_connection)
        if in_tx is not False:  # the driver has a transaction open (or we cannot tell)
            found[0].simple(found[1], op)

    def _commit(self, conn: Any) -> None:
        self._tx_end(conn, "commit")

    def _rollback(self, conn: Any) -> None:
        self._tx_end(conn, "rollback")


# -- installation ------------------------------------------------------------------------
class _PostImportHook(importlib.abc.MetaPathFinder):
    """Runs a callback right after a module is imported (for libsql and SQLAlchemy)."""

    def __init__(self, callbacks: dict[str, Callable[[types.ModuleType], None]]) -> None:
        self.callbacks = callbacks
        self._busy: set[str] = set()

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in self.callbacks or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is None:
                for finder in sys.meta_path:
                    if finder is self or not hasattr(finder, "find_spec"):
                        continue
                    spec = finder.find_spec(fullname, path, target)
                    if spec is not None:
                        break
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None:
            return None
        loader, callback = spec.loader, self.callbacks[fullname]
        original_exec = loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            original_exec(module)
            callback(module)

        wrapped = types.SimpleNamespace(create_module=getattr(loader, "create_module", lambda s: None),
                                        exec_module=exec_module)
        spec.loader = wrapped  # type: ignore[assignment]
        return spec


class Installation:
    """Everything :func:`install` patched, so :func:`uninstall` can put it back."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.patched: list[tuple[Any, str, Any]] = []
        self.listener = SQLAlchemyListener()
        self.hook: _PostImportHook | None = None

    def patch(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        current = getattr(owner, name, None)
        if current is None or hasattr(current, "_tp_original"):
            return
        self.patched.append((owner, name, current))
        setattr(owner, name, make(current))


_installation: Installation | None = None


def install(recorder: Recorder, *, sqlite: bool = True, libsql: bool = True, sqlalchemy: bool = True) -> None:
    """Start recording every connection opened from now on into ``recorder``."""
    global _installation
    if _installation is not None:
        raise RuntimeError("a trace recorder is already installed in this process")
    inst = _installation = Installation(recorder)
    _Active.recorder = recorder
    if sqlite:
        inst.patch(sqlite3, "connect", _patched_sqlite_connect)
        inst.patch(sqlite3.dbapi2, "connect", _patched_sqlite_connect)
    callbacks: dict[str, Callable[[types.ModuleType], None]] = {}
    if libsql:
        def patch_libsql(module: types.ModuleType) -> None:
            inst.patch(module, "connect", _patched_libsql_connect)

        if "libsql" in sys.modules:
            patch_libsql(sys.modules["libsql"])
        else:
            callbacks["libsql"] = patch_libsql
    if sqlalchemy:
        def patch_sqlalchemy(module: types.ModuleType) -> None:
            inst.listener.install()

        if "sqlalchemy.engine" in sys.modules:
            inst.listener.install()
        else:
            callbacks["sqlalchemy.engine"] = patch_sqlalchemy
    if callbacks:
        inst.hook = _PostImportHook(callbacks)
        sys.meta_path.insert(0, inst.hook)


def uninstall() -> Recorder | None:
    """Stop recording (connections already open stop writing too); returns the recorder."""
    global _installation
    inst, _installation = _installation, None
    _Active.recorder = None
    if inst is None:
        return None
    for owner, name, original in reversed(inst.patched):
        setattr(owner, name, original)
    inst.listener.uninstall()
    if inst.hook is not None and inst.hook in sys.meta_path:
        sys.meta_path.remove(inst.hook)
    return inst.recorder


@contextlib.contextmanager
def recording(path: str | os.PathLike[str], *, source: dict[str, Any] | None = None,
              redact: Iterable[RedactionRule] = (), base_dir: str | None = None,
              sqlite: bool = True, libsql: bool = True, sqlalchemy: bool = True) -> Iterator[Recorder]:
    """Record every connection opened inside the block into the trace at ``path``."""
    writer = TraceWriter(path, TraceHeader(source=source or {}))
    recorder = Recorder(writer, redactor=Redactor(redact), base_dir=base_dir)
    install(recorder, sqlite=sqlite, libsql=libsql, sqlalchemy=sqlalchemy)
    try:
        yield recorder
    finally:
        uninstall()
        recorder.close()


# -- the child-process side of ``traceparity record`` ------------------------------------
ENV_DIR = "TRACEPARITY_RECORD_DIR"
ENV_BASE = "TRACEPARITY_RECORD_BASE"
ENV_REDACT = "TRACEPARITY_RECORD_REDACT"
ENV_START = "TRACEPARITY_RECORD_START"


def install_from_env() -> Recorder | None:
    """Called by the bootstrap ``sitecustomize``: record this process into a part file."""
    directory = os.environ.get(ENV_DIR)
    if not directory or _installation is not None:
        return None
    import atexit

    rules = [RedactionRule.parse(s) for s in os.environ.get(ENV_REDACT, "").split("\x1f") if s]
    # Events carry a system-wide monotonic stamp so the parts of a multi-process recording
    # merge in the order they happened; the merge strips it (no clock in the final trace).
    name = struct.pack(">QI", time.monotonic_ns(), os.getpid()).hex()
    path = Path(directory) / f"part-{name}.jsonl"
    writer = TraceWriter(path, TraceHeader(source={"pid": os.getpid()}))
    recorder = Recorder(writer, redactor=Redactor(rules), base_dir=os.environ.get(ENV_BASE), stamp=True)
    install(recorder)
    atexit.register(recorder.close)
    return recorder
