"""sqlite3 interception: ``sqlite3.connect`` returns a subclass of the class the caller asked for.

A subclass (not a proxy) so ``isinstance`` checks, aiosqlite and SQLAlchemy keep working.
Registrations of functions, aggregates, window functions and collations are recorded by
name and arity (their Python code cannot travel; the replay marks the steps using them).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any

from .sink import _Active, _begin_mode, _end, _in_tx, _run, file_exists_now


def _sqlite_cursor_class(base: type[sqlite3.Cursor]) -> type[sqlite3.Cursor]:
    class RecordingCursor(base):  # type: ignore[valid-type,misc]
        def execute(self, sql: str, parameters: Any = (), /) -> Any:
            conn = self.connection
            rec, cid = getattr(conn, "_tp_recorder", None), getattr(conn, "_tp_conn", 0)
            if rec is None:
                return super().execute(sql, parameters)
            return _run(
                rec,
                conn,
                cid,
                "execute",
                sql,
                parameters,
                lambda: super(RecordingCursor, self).execute(sql, parameters),
            )

        def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any:
            conn = self.connection
            rec, cid = getattr(conn, "_tp_recorder", None), getattr(conn, "_tp_conn", 0)
            if rec is None:
                return super().executemany(sql, seq_of_parameters)
            batch = list(seq_of_parameters)
            return _run(
                rec, conn, cid, "executemany", sql, batch, lambda: super(RecordingCursor, self).executemany(sql, batch)
            )

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
    """A recording subclass of the program's own connection class (``factory=`` may be a subclass).

    Long because it is one class body: each overridden method records and delegates, and they
    must all close over the same ``base``.
    """

    class RecordingConnection(base):  # type: ignore[valid-type,misc]
        _tp_recording = True

        def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
            rec = _Active.recorder
            existed = file_exists_now(database, bool(kwargs.get("uri"))) if rec else None
            super().__init__(database, *args, **kwargs)
            self._tp_recorder = rec
            self._tp_conn = rec.open("sqlite3", database, uri=bool(kwargs.get("uri")), existed=existed) if rec else 0
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
            args = args[:_FACTORY_POS] + args[_FACTORY_POS + 1 :]
        factory = kwargs.get("factory") or sqlite3.Connection
        if not getattr(factory, "_tp_recording", False):
            kwargs["factory"] = _sqlite_connection_class(factory)
        return original(database, *args, **kwargs)

    connect._tp_original = original  # type: ignore[attr-defined]
    return connect
