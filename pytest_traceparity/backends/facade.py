"""The objects behind the ``db`` and ``adb`` fixtures: one fresh database, uniform API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from ..values import Result
from .aio import AsyncConnection
from .base import Backend, BackendContext, Connection, Database, Params


class DB:
    """A fresh database on one backend plus a default connection to it.

    ``db.execute(...)`` runs on the default connection; ``db.connect()`` opens another
    one (for isolation and locking tests), closed together with the database.
    """

    def __init__(self, backend: Backend, ctx: BackendContext) -> None:
        self.backend = backend
        self.backend_id = backend.id
        self.database: Database = backend.create_database(ctx)
        self._extra: list[Connection] = []
        try:
            self.connection: Connection = self.database.connect()
        except BaseException:
            self.database.close()
            raise

    @property
    def served_by(self) -> str:
        return self.database.served_by

    def connect(self) -> Connection:
        conn = self.database.connect()
        self._extra.append(conn)
        return conn

    def execute(self, sql: str, params: Params = ()) -> Result:
        return self.connection.execute(sql, params)

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> Result:
        return self.connection.executemany(sql, seq_of_params)

    def executescript(self, script: str) -> None:
        self.connection.executescript(script)

    def begin(self, mode: str = "DEFERRED") -> None:
        self.connection.begin(mode)

    def commit(self) -> None:
        self.connection.commit()

    def rollback(self) -> None:
        self.connection.rollback()

    def transaction(self, mode: str = "DEFERRED") -> contextlib.AbstractContextManager[Connection]:
        return self.connection.transaction(mode)

    @property
    def in_transaction(self) -> bool:
        return self.connection.in_transaction

    def sync(self) -> int | None:
        return self.connection.sync()

    def info(self) -> dict[str, Any]:
        return self.database.info()

    def close(self) -> None:
        """Close every connection, then release the database; the first error wins."""
        errors: list[BaseException] = []
        for conn in [*self._extra, self.connection]:
            try:
                conn.close()
            except Exception as exc:
                errors.append(exc)
        self._extra.clear()
        try:
            self.database.close()
        except Exception as exc:
            errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> DB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DB {self.backend_id}>"


class AsyncDB:
    """Async twin of :class:`DB` (the ``adb`` fixture); connections open on first await."""

    def __init__(self, backend: Backend, ctx: BackendContext) -> None:
        self.backend = backend
        self.backend_id = backend.id
        self.database: Database = backend.create_database(ctx)
        self.connection: AsyncConnection = self.database.connect_async()
        self._extra: list[AsyncConnection] = []

    @property
    def served_by(self) -> str:
        return self.database.served_by

    def connect(self) -> AsyncConnection:
        conn = self.database.connect_async()
        self._extra.append(conn)
        return conn

    async def execute(self, sql: str, params: Params = ()) -> Result:
        return await self.connection.execute(sql, params)

    async def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> Result:
        return await self.connection.executemany(sql, seq_of_params)

    async def executescript(self, script: str) -> None:
        await self.connection.executescript(script)

    async def begin(self, mode: str = "DEFERRED") -> None:
        await self.connection.begin(mode)

    async def commit(self) -> None:
        await self.connection.commit()

    async def rollback(self) -> None:
        await self.connection.rollback()

    @contextlib.asynccontextmanager
    async def transaction(self, mode: str = "DEFERRED") -> AsyncIterator[AsyncConnection]:
        async with self.connection.transaction(mode) as conn:
            yield conn

    async def in_transaction(self) -> bool:
        return await self.connection.in_transaction()

    async def sync(self) -> int | None:
        return await self.connection.sync()

    async def aclose(self) -> None:
        errors: list[BaseException] = []
        for conn in [*self._extra, self.connection]:
            try:
                await conn.close()
            except Exception as exc:
                errors.append(exc)
        self._extra.clear()
        try:
            self.database.close()
        except Exception as exc:
            errors.append(exc)
        if errors:
            raise errors[0]

    def __repr__(self) -> str:
        return f"<AsyncDB {self.backend_id}>"
