"""The async twin of :class:`~pytest_traceparity.backends.base.Connection` (the ``adb`` fixture).

Backends with a native async driver (SQLAlchemy + aiosqlite) provide their own; every
other backend gets its sync connection driven on one private worker thread, so calls
stay ordered and the event loop never blocks on I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from ..errors import DatabaseError, no_sync_error
from ..values import Params, Result

T = TypeVar("T")


class Connection(Protocol):
    """The sync connection this module drives (:class:`~pytest_traceparity.backends.base.Connection`).

    A protocol, not an import: ``base`` builds on this module (``Database.connect_async``).
    """

    def execute(self, sql: str, params: Params = ()) -> Result: ...

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> Result: ...

    def executescript(self, script: str) -> None: ...

    @property
    def in_transaction(self) -> bool: ...

    def sync(self) -> int | None: ...

    def close(self) -> None: ...


class AsyncConnection(ABC):
    backend_id: str = "?"

    @abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> Result: ...

    @abstractmethod
    async def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> Result: ...

    @abstractmethod
    async def executescript(self, script: str) -> None: ...

    @abstractmethod
    async def in_transaction(self) -> bool: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def begin(self, mode: str = "DEFERRED") -> None:
        if mode.upper() not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"begin mode must be DEFERRED, IMMEDIATE or EXCLUSIVE, not {mode!r}")
        await self.execute(f"BEGIN {mode.upper()}")

    async def commit(self) -> None:
        await self.execute("COMMIT")

    async def rollback(self) -> None:
        await self.execute("ROLLBACK")

    @contextlib.asynccontextmanager
    async def transaction(self, mode: str = "DEFERRED") -> AsyncIterator[AsyncConnection]:
        await self.begin(mode)
        try:
            yield self
        except BaseException:
            with contextlib.suppress(DatabaseError):
                await self.rollback()
            raise
        await self.commit()

    async def sync(self) -> int | None:
        raise no_sync_error(self.backend_id)

    async def __aenter__(self) -> AsyncConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class ThreadedAsyncConnection(AsyncConnection):
    """Runs a sync connection on one dedicated thread; opened lazily on first use."""

    def __init__(self, opener: Callable[[], Connection], backend_id: str) -> None:
        self.backend_id = backend_id
        self._opener = opener
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"traceparity-{backend_id}")
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._opener()
        return self._conn

    async def _call(self, fn: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._connection()))

    async def execute(self, sql: str, params: Params = ()) -> Result:
        return await self._call(lambda c: c.execute(sql, params))

    async def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> Result:
        batch = list(seq_of_params)
        return await self._call(lambda c: c.executemany(sql, batch))

    async def executescript(self, script: str) -> None:
        await self._call(lambda c: c.executescript(script))

    async def in_transaction(self) -> bool:
        return await self._call(lambda c: c.in_transaction)

    async def sync(self) -> int | None:
        return await self._call(lambda c: c.sync())

    async def close(self) -> None:
        if self._conn is not None:
            await self._call(lambda c: c.close())
            self._conn = None
        self._executor.shutdown(wait=False)
