"""``sqlalchemy-sqlite``: SQLAlchemy 2 async engine on ``sqlite+aiosqlite`` (the reference).

This is the path teams migrate away from (an ``AsyncSQLTraceManager``-style storage
layer), so it is what every other backend is compared against by default. SQL runs
through ``exec_driver_sql`` with the driver in autocommit mode: SQLite's own transaction
semantics, not SQLAlchemy's autobegin, are what we compare.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from ..errors import BackendUnavailable, TraceparityError, wrap_error
from ..values import Result, plain
from .aio import AsyncConnection
from .base import (
    CAP_FILE,
    CAP_MULTI_CONNECTION,
    CAP_NAMED_PARAMS,
    CAP_NATIVE_ASYNC,
    Backend,
    BackendContext,
    Connection,
    Database,
    Params,
)

T = TypeVar("T")

# the event loop a block of replayed steps runs in on this thread (run_in_one_loop), else None
_BLOCK = threading.local()


def run_in_one_loop(steps: Callable[[], T]) -> T:
    """Run ``steps`` inside one entry into an event loop: every statement the sync facade sends meanwhile is
    awaited in that loop (SQLAlchemy's greenlet bridge, as its own ``AsyncSession`` does) instead of starting
    and stopping a loop per statement. Why: on the reference replay a loop entry per statement was about a
    sixth of each statement's cost. A caller already inside a running loop gets the usual path."""
    if getattr(_BLOCK, "loop", None) is not None:
        return steps()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return steps()
    from sqlalchemy.util import greenlet_spawn

    loop = asyncio.new_event_loop()
    _BLOCK.loop = loop
    try:
        return loop.run_until_complete(greenlet_spawn(steps))
    finally:
        _BLOCK.loop = None
        loop.close()


class LoopThread:
    """A private event loop that sync callers drive, one call at a time.

    The loop runs on the *calling* thread when that thread has no loop of its own, so a
    statement costs one thread hop (to aiosqlite's worker), not two: a loop parked on its
    own thread added a second hop per statement (about 1.24x on the reference replay). A
    caller already inside a running loop (the sync ``db`` facade used from async code)
    cannot nest one, so that call runs the loop on a short-lived helper thread instead.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if getattr(_BLOCK, "loop", None) is not None:  # inside run_in_one_loop: awaited in its loop
            self._refuse_if_closed(coro)
            from sqlalchemy.util import await_only

            return await_only(coro)
        with self._lock:
            self._refuse_if_closed(coro)
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return self.loop.run_until_complete(coro)
            return self._run_on_helper(coro)

    def _refuse_if_closed(self, coro: Coroutine[Any, Any, Any]) -> None:
        """A closed connection's loop runs nothing more (the coroutine is closed, never awaited)."""
        if self.loop.is_closed():
            coro.close()
            raise RuntimeError(f"{self.name}: the connection's event loop is closed")

    def _run_on_helper(self, coro: Coroutine[Any, Any, T]) -> T:
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = self.loop.run_until_complete(coro)
            except BaseException as exc:  # re-raised on the caller's thread
                box["error"] = exc

        helper = threading.Thread(target=target, name=self.name, daemon=True)
        helper.start()
        helper.join()
        if "error" in box:
            raise box["error"]
        return box["value"]  # type: ignore[no-any-return]

    def stop(self) -> None:
        with self._lock:
            if not self.loop.is_closed() and not self.loop.is_running():
                self.loop.close()


class SQLAlchemyAsyncConnection(AsyncConnection):
    """Native async connection; engine and connection open lazily in the caller's loop."""

    def __init__(self, url: str, backend_id: str) -> None:
        self.backend_id = backend_id
        self._url = url
        self._engine: Any = None
        self._conn: Any = None

    async def _connection(self) -> Any:
        if self._conn is None:
            try:
                from sqlalchemy.ext.asyncio import create_async_engine
                from sqlalchemy.pool import NullPool
            except ImportError as exc:
                raise BackendUnavailable(
                    f"{self.backend_id}: {exc}; install with: pip install 'sqlalchemy[asyncio]' aiosqlite"
                ) from exc

            self._engine = create_async_engine(self._url, poolclass=NullPool)
            conn = await self._engine.connect()
            self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    async def _driver(self) -> Any:
        raw = await (await self._connection()).get_raw_connection()
        return raw.driver_connection

    async def execute(self, sql: str, params: Params = ()) -> Result:
        try:
            conn = await self._connection()
            result = await conn.exec_driver_sql(sql, _driver_params(params))
            return _result(result)
        except TraceparityError:
            raise
        except Exception as exc:
            raise wrap_error(exc, backend=self.backend_id, sql=sql) from exc

    async def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> Result:
        batch = [_driver_params(p) for p in seq_of_params]
        try:
            if not batch:
                return Result(rowcount=0)
            conn = await self._connection()
            result = await conn.exec_driver_sql(sql, batch)
            return Result(rowcount=result.rowcount, lastrowid=_lastrowid(result))
        except TraceparityError:
            raise
        except Exception as exc:
            raise wrap_error(exc, backend=self.backend_id, sql=sql) from exc

    async def executescript(self, script: str) -> None:
        try:
            driver = await self._driver()
            await driver.executescript(script)
        except TraceparityError:
            raise
        except Exception as exc:
            raise wrap_error(exc, backend=self.backend_id, sql=script) from exc

    async def in_transaction(self) -> bool:
        driver = await self._driver()
        return bool(driver.in_transaction)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


def _driver_params(params: Params | None) -> Any:
    if params is None:
        return ()
    if isinstance(params, dict):
        return dict(params)
    return tuple(params)


def _lastrowid(result: Any) -> int | None:
    try:
        return result.lastrowid  # type: ignore[no-any-return]
    except Exception:
        return None


def _result(result: Any) -> Result:
    if result.returns_rows:
        columns = tuple(result.keys())
        rows = [tuple(plain(v) for v in row) for row in result.fetchall()]
    else:
        columns, rows = (), []
    return Result(columns=columns, rows=rows, rowcount=result.rowcount, lastrowid=_lastrowid(result))


class SQLAlchemySyncConnection(Connection):
    """The sync ``db`` facade: drives the async connection on a private loop thread."""

    def __init__(self, url: str, backend_id: str) -> None:
        self.backend_id = backend_id
        self._loop = LoopThread(f"traceparity-{backend_id}")
        self._async = SQLAlchemyAsyncConnection(url, backend_id)

    def _execute(self, sql: str, params: Params) -> Result:
        return self._loop.run(self._async.execute(sql, params))

    def _executemany(self, sql: str, batch: list[Params]) -> Result:
        return self._loop.run(self._async.executemany(sql, batch))

    def _executescript(self, script: str) -> None:
        self._loop.run(self._async.executescript(script))

    def _in_transaction(self) -> bool:
        return self._loop.run(self._async.in_transaction())

    def _close(self) -> None:
        try:
            self._loop.run(self._async.close())
        finally:
            self._loop.stop()


class SQLAlchemySQLiteDatabase(Database):
    def __init__(self, path: Path, backend_id: str) -> None:
        self.path = path
        self.backend_id = backend_id
        self.url = f"sqlite+aiosqlite:///{path}"

    @property
    def served_by(self) -> str:
        return (
            f"SQLAlchemy {metadata.version('sqlalchemy')} + aiosqlite {metadata.version('aiosqlite')} "
            f"(sqlite {sqlite3.sqlite_version}, local file)"
        )

    def connect(self) -> Connection:
        return SQLAlchemySyncConnection(self.url, self.backend_id)

    def connect_async(self) -> AsyncConnection:
        return SQLAlchemyAsyncConnection(self.url, self.backend_id)


class SQLAlchemySQLiteBackend(Backend):
    id = "sqlalchemy-sqlite"
    description = "SQLAlchemy 2 async engine, sqlite+aiosqlite, on a local file"
    capabilities = frozenset({CAP_FILE, CAP_MULTI_CONNECTION, CAP_NAMED_PARAMS, CAP_NATIVE_ASYNC})

    def unavailable_reason(self) -> str | None:
        for module in ("sqlalchemy", "aiosqlite"):
            try:
                __import__(module)
            except ImportError as exc:
                return f"{module} is not importable ({exc}); install it with: pip install sqlalchemy aiosqlite"
        return None

    def create_database(self, ctx: BackendContext) -> Database:
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        return SQLAlchemySQLiteDatabase(ctx.workdir / f"{ctx.name}.db", self.id)

    def run_steps(self, steps: Callable[[], T]) -> T:
        return run_in_one_loop(steps)
