"""``sqlalchemy-turso``: SQLAlchemy 2 with pyturso's own dialect (``sqlite+turso:///PATH``).

The dialect ignores SQLAlchemy's isolation-level switch (it is fixed at connect time),
so the harness asks the driver for SQLite's autocommit mode with ``isolation_level=None``.
"""

from __future__ import annotations

from pathlib import Path

from .base import CAP_FILE, CAP_MULTI_CONNECTION, CAP_NAMED_PARAMS, Backend, BackendContext, Connection, Database
from .sqlalchemy_libsql import SQLAlchemyEngineConnection, dist_version, missing_modules
from .turso_local import PYTURSO_INSTALL, engine_label, import_turso


class SQLAlchemyTursoDatabase(Database):
    def __init__(self, path: Path, backend_id: str) -> None:
        self.path = path
        self.backend_id = backend_id

    @property
    def served_by(self) -> str:
        return (
            f"SQLAlchemy {dist_version('sqlalchemy')} + pyturso {dist_version('pyturso')} "
            f"(turso engine, {engine_label(import_turso())}, local file)"
        )

    def connect(self) -> Connection:
        return SQLAlchemyEngineConnection(f"sqlite+turso:///{self.path}", self.backend_id, {"isolation_level": None})


class SQLAlchemyTursoBackend(Backend):
    id = "sqlalchemy-turso"
    description = "SQLAlchemy 2 engine, sqlite+turso (pyturso's dialect), on a local file"
    capabilities = frozenset({CAP_FILE, CAP_MULTI_CONNECTION, CAP_NAMED_PARAMS})

    def unavailable_reason(self) -> str | None:
        return missing_modules(("sqlalchemy", "turso"), PYTURSO_INSTALL)

    def create_database(self, ctx: BackendContext) -> Database:
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        return SQLAlchemyTursoDatabase(ctx.workdir / f"{ctx.name}.db", self.id)
