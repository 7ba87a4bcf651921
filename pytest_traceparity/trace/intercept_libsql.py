"""libsql interception: its classes cannot be subclassed, so ``libsql.connect`` returns a proxy."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from .sink import Recorder, _Active, _end, _run, file_exists_now


class RecordingLibsqlCursor:
    """Proxy for a ``libsql`` cursor (its classes cannot be subclassed)."""

    def __init__(self, raw: Any, conn: RecordingLibsqlConnection) -> None:
        self._raw = raw
        self._conn = conn

    def execute(self, sql: str, parameters: Any = (), /) -> RecordingLibsqlCursor:
        c = self._conn
        _run(c._tp_recorder, c._raw, c._tp_conn, "execute", sql, parameters, lambda: self._raw.execute(sql, parameters))
        return self

    def executemany(self, sql: str, parameters: Any, /) -> RecordingLibsqlCursor:
        c, batch = self._conn, list(parameters)
        _run(c._tp_recorder, c._raw, c._tp_conn, "executemany", sql, batch, lambda: self._raw.executemany(sql, batch))
        return self

    def executescript(self, script: str, /) -> RecordingLibsqlCursor:
        c = self._conn
        _run(c._tp_recorder, c._raw, c._tp_conn, "executescript", script, None, lambda: self._raw.executescript(script))
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

    def __init__(self, raw: Any, recorder: Recorder, database: Any, existed: bool | None = None) -> None:
        self._raw = raw
        self._tp_recorder = recorder
        self._tp_conn = recorder.open("libsql", database, existed=existed)

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
        existed = file_exists_now(database) if _Active.recorder is not None else None
        raw = original(database, *args, **kwargs)
        rec = _Active.recorder
        return raw if rec is None else RecordingLibsqlConnection(raw, rec, database, existed)

    connect._tp_original = original  # type: ignore[attr-defined]
    return connect
