"""``libsql-local``: the ``libsql`` client on a local file (no server, no sync)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable
from .base import CAP_FILE, CAP_MULTI_CONNECTION, Backend, BackendContext, Connection, Database
from .dbapi import DBAPIConnection  # re-exported: it lived here before backends/dbapi.py

__all__ = ["DBAPIConnection", "LibsqlClientBackend", "LibsqlLocalBackend", "import_libsql", "libsql_version"]


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
