"""``libsql-local``: the ``libsql`` client on a local file (no server, no sync)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from .base import CAP_FILE, CAP_MULTI_CONNECTION, Backend, BackendContext, Connection, Database, Params
from .errors import BackendUnavailable
from .values import Result


def libsql_version() -> str:
    try:
        return metadata.version("libsql")
    except metadata.PackageNotFoundError:
        return "?"


def import_libsql() -> Any:
    """Import the client or say how to get it (it is a compiled wheel)."""
    try:
        import libsql
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BackendUnavailable(
            f"the 'libsql' package is not importable ({exc}); install it with: pip install libsql"
        ) from exc
    return libsql


class DBAPIConnection(Connection):
    """Adapter for DB-API-like clients (``libsql``, ``sqlite3``) in autocommit mode."""

    def __init__(self, raw: Any, backend_id: str) -> None:
        self.raw = raw
        self.backend_id = backend_id

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

    def _in_transaction(self) -> bool:
        return bool(self.raw.in_transaction)

    def _close(self) -> None:
        self.raw.close()

    @staticmethod
    def _result(cursor: Any) -> Result:
        description = cursor.description or ()
        rows = [tuple(row) for row in cursor.fetchall()] if description else []
        return Result(
            columns=tuple(d[0] for d in description),
            rows=rows,
            rowcount=cursor.rowcount,
            lastrowid=cursor.lastrowid,
        )


class LibsqlLocalDatabase(Database):
    def __init__(self, path: Path, backend_id: str) -> None:
        self.path = path
        self.backend_id = backend_id
        self._served_by: str | None = None

    @property
    def served_by(self) -> str:
        if self._served_by is None:
            with self.connect() as conn:
                version = str(conn.execute("SELECT sqlite_version()").scalar())
            self._served_by = f"libsql {libsql_version()} (sqlite {version}, local file)"
        return self._served_by

    def connect(self) -> Connection:
        libsql = import_libsql()
        return DBAPIConnection(libsql.connect(str(self.path), isolation_level=None), self.backend_id)


class LibsqlClientBackend(Backend):
    """Base of the backends that drive the ``libsql`` client: they run wherever it imports."""

    def unavailable_reason(self) -> str | None:
        try:
            import_libsql()
        except BackendUnavailable as exc:
            return str(exc)
        return None


class LibsqlLocalBackend(LibsqlClientBackend):
    id = "libsql-local"
    description = "libsql.connect(path) on a local file"
    capabilities = frozenset({CAP_FILE, CAP_MULTI_CONNECTION})

    def create_database(self, ctx: BackendContext) -> Database:
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        return LibsqlLocalDatabase(ctx.workdir / f"{ctx.name}.db", self.id)
