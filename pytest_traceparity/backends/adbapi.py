"""An ``aiosqlite``-shaped async twin of :class:`~pytest_traceparity.backends.dbapi.Sqlite3Connection`.

Built the way aiosqlite is: one worker thread per connection runs the sync connection,
fed through a queue of ``(future, function)`` pairs. Keeping that shape (``_conn``,
``_tx``, ``_thread``, ``_connection``) matters: SQLAlchemy's ``sqlite+aiosqlite`` dialect
reaches into exactly those attributes (to set ``isolation_level`` and mark the thread
daemon), so an engine whose ``aiosqlite.connect`` is redirected here works unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from typing import Any, Generic, TypeVar

from .callsite import call_site_as, user_call_site
from .dbapi import Sqlite3Connection, Sqlite3Cursor

T = TypeVar("T")

Row = sqlite3.Row


class _Pending(Generic[T]):
    """Awaitable and async context manager, like aiosqlite's ``execute()`` / ``cursor()`` result."""

    def __init__(self, coro: Any) -> None:
        self._coro = coro
        self._value: Any = None

    def __await__(self) -> Generator[Any, None, T]:
        return self._coro.__await__()  # type: ignore[no-any-return]

    async def __aenter__(self) -> T:
        self._value = await self._coro
        return self._value  # type: ignore[no-any-return]

    async def __aexit__(self, *exc: object) -> None:
        close = getattr(self._value, "close", None)
        if close is not None:
            await close()


class AioCursor:
    """``aiosqlite.Cursor`` look-alike: every call runs on the connection's worker thread."""

    def __init__(self, conn: AioConnection, cursor: Sqlite3Cursor) -> None:
        self._conn = conn
        self._cursor = cursor

    async def execute(self, sql: str, parameters: Any = None) -> AioCursor:
        params = () if parameters is None else parameters
        await self._conn._call(lambda: self._cursor.execute(sql, params))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> AioCursor:
        batch = list(parameters)
        await self._conn._call(lambda: self._cursor.executemany(sql, batch))
        return self

    async def executescript(self, sql_script: str) -> AioCursor:
        await self._conn._call(lambda: self._cursor.executescript(sql_script))
        return self

    async def fetchone(self) -> Any:
        return await self._conn._call(self._cursor.fetchone)

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return await self._conn._call(lambda: self._cursor.fetchmany(size))

    async def fetchall(self) -> list[Any]:
        return await self._conn._call(self._cursor.fetchall)

    async def close(self) -> None:
        self._cursor.close()

    async def setinputsizes(self, *sizes: Any) -> None:
        """PEP 249 no-op (SQLAlchemy's async adapter awaits it)."""

    async def nextset(self) -> None:
        """SQLite has one result set per statement."""

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            rows = await self.fetchmany(self._conn.iter_chunk_size)
            if not rows:
                return
            for row in rows:
                yield row

    async def __aenter__(self) -> AioCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    @property
    def row_factory(self) -> Any:
        return self._cursor.row_factory

    @row_factory.setter
    def row_factory(self, value: Any) -> None:
        self._cursor.row_factory = value

    @property
    def connection(self) -> AioConnection:
        return self._conn


_STOP = object()


class AioConnection:
    """``aiosqlite.Connection`` look-alike: ``await``-able and ``async with``-able, like ``connect()``'s result."""

    def __init__(self, opener: Callable[[], Sqlite3Connection], *, iter_chunk_size: int = 64) -> None:
        self._opener = opener
        self.iter_chunk_size = iter_chunk_size
        self._conn: Sqlite3Connection | None = None
        self._tx: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._worker, name="traceparity-adbapi", daemon=True)
        self._running = False

    # -- the worker ----------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            item = self._tx.get()
            if item is _STOP:
                return
            future, function = item
            try:
                value = function()
            except BaseException as exc:
                _settle(future, None, exc)
            else:
                _settle(future, value, None)

    async def _call(self, function: Callable[[], T]) -> T:
        if not self._running:
            raise ValueError("Connection closed")
        future = asyncio.get_running_loop().create_future()
        where = user_call_site()  # the user's code is on this thread's stack, not the worker's

        def run() -> T:
            with call_site_as(where):
                return function()

        self._tx.put_nowait((future, run))
        return await future  # type: ignore[no-any-return]

    def _submit_sync(self, function: Callable[[], T]) -> T:
        """Run on the worker from a thread with no running loop (fixture teardown)."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = function()
            except BaseException as exc:
                box["error"] = exc
            finally:
                done.set()

        self._tx.put_nowait((None, run))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box.get("value")  # type: ignore[return-value]

    async def _connect(self) -> AioConnection:
        if self._conn is None:
            if not self._running:
                self._running = True
                self._thread.start()
            try:
                self._conn = await self._call(self._opener)
            except BaseException:
                self.stop()
                raise
        return self

    def open_sync(self) -> AioConnection:
        """Open from synchronous code (the ``adbapi`` fixture); calls may then come from any loop."""
        if not self._running:
            self._running = True
            self._thread.start()
        try:
            self._conn = self._submit_sync(self._opener)
        except BaseException:
            self.stop()
            raise
        return self

    def __await__(self) -> Generator[Any, None, AioConnection]:
        return self._connect().__await__()

    async def __aenter__(self) -> AioConnection:
        return await self._connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- aiosqlite API ---------------------------------------------------------------------
    @property
    def _connection(self) -> Sqlite3Connection | None:
        return self._conn

    def _sync(self) -> Sqlite3Connection:
        if self._conn is None:
            raise ValueError("no active connection")
        return self._conn

    def cursor(self) -> _Pending[AioCursor]:
        async def make() -> AioCursor:
            return AioCursor(self, await self._call(lambda: self._sync().cursor()))

        return _Pending(make())

    def execute(self, sql: str, parameters: Any = None) -> _Pending[AioCursor]:
        params = () if parameters is None else parameters

        async def run() -> AioCursor:
            return AioCursor(self, await self._call(lambda: self._sync().execute(sql, params)))

        return _Pending(run())

    def executemany(self, sql: str, parameters: Iterable[Any]) -> _Pending[AioCursor]:
        batch = list(parameters)

        async def run() -> AioCursor:
            return AioCursor(self, await self._call(lambda: self._sync().executemany(sql, batch)))

        return _Pending(run())

    def executescript(self, sql_script: str) -> _Pending[AioCursor]:
        async def run() -> AioCursor:
            return AioCursor(self, await self._call(lambda: self._sync().executescript(sql_script)))

        return _Pending(run())

    async def execute_fetchall(self, sql: str, parameters: Any = None) -> list[Any]:
        params = () if parameters is None else parameters
        return await self._call(lambda: self._sync().execute(sql, params).fetchall())

    async def execute_insert(self, sql: str, parameters: Any = None) -> Any:
        params = () if parameters is None else parameters

        def run() -> Any:
            conn = self._sync()
            conn.execute(sql, params)
            return conn.execute("SELECT last_insert_rowid()").fetchone()

        return await self._call(run)

    async def commit(self) -> None:
        await self._call(lambda: self._sync().commit())

    async def rollback(self) -> None:
        await self._call(lambda: self._sync().rollback())

    async def create_function(self, name: str, num_params: int, func: Any, deterministic: bool = False) -> None:
        await self._call(lambda: self._sync().create_function(name, num_params, func))

    async def close(self) -> None:
        if self._conn is None:
            return
        try:
            await self._call(lambda: self._sync().close())
        finally:
            self._conn = None
            self.stop()

    def close_sync(self) -> None:
        """Close from synchronous code (the ``adbapi`` fixture's teardown)."""
        if self._conn is not None and self._running:
            try:
                self._submit_sync(lambda: self._sync().close())
            finally:
                self._conn = None
        self.stop()

    def stop(self) -> None:
        """End the worker thread (aiosqlite 0.22's ``stop()``, used by SQLAlchemy's terminate)."""
        if self._running:
            self._running = False
            self._tx.put_nowait(_STOP)

    @property
    def in_transaction(self) -> bool:
        return self._sync().in_transaction

    @property
    def isolation_level(self) -> str | None:
        return self._sync().isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._sync().isolation_level = value

    @property
    def row_factory(self) -> Any:
        return self._sync().row_factory

    @row_factory.setter
    def row_factory(self, factory: Any) -> None:
        self._sync().row_factory = factory

    @property
    def text_factory(self) -> Any:
        return self._sync().text_factory

    @text_factory.setter
    def text_factory(self, factory: Any) -> None:
        self._sync().text_factory = factory

    @property
    def total_changes(self) -> int:
        return self._sync().total_changes

    def __getattr__(self, name: str) -> Any:
        # aiosqlite exposes the in-process-only sqlite3 features as coroutines; they fail the same way.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._sync(), name)


def _settle(future: Any, value: Any, error: BaseException | None) -> None:
    if future is None:  # a synchronous submission settles itself
        return

    def apply() -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
        future.get_loop().call_soon_threadsafe(apply)
