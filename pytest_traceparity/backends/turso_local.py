"""``turso-local``: ``turso.connect(path)`` (pyturso), Turso's new in-process engine in Rust.

Teams evaluate it as a drop-in SQLite replacement; it is beta, so what it refuses is as
much a finding as what it returns differently. The connection runs in SQLite's own
autocommit mode (``isolation_level=None``), like every other backend here.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable
from .base import CAP_FILE, CAP_MULTI_CONNECTION, CAP_NAMED_PARAMS, Backend, BackendContext, Connection, Database
from .libsql_local import DBAPIConnection

PYTURSO_INSTALL = 'pip install "pytest-traceparity[turso]"  (or: pip install "pyturso>=0.8")'


def pyturso_version() -> str:
    try:
        return metadata.version("pyturso")
    except metadata.PackageNotFoundError:
        return "?"


def import_turso() -> Any:
    """Import pyturso or say how to get it (a compiled wheel, distribution name ``pyturso``)."""
    try:
        import turso
    except ImportError as exc:
        raise BackendUnavailable(
            f"the 'pyturso' package is not importable ({exc}); install it with: {PYTURSO_INSTALL}"
        ) from None
    return turso


def engine_label(turso: Any) -> str:
    """What pyturso reports as its SQLite compatibility level."""
    return f"sqlite {getattr(turso, 'sqlite_version', '?')} compatible"


class TursoLocalDatabase(Database):
    def __init__(self, path: Path, backend_id: str) -> None:
        self.path = path
        self.backend_id = backend_id

    @property
    def served_by(self) -> str:
        return f"turso engine, pyturso {pyturso_version()} ({engine_label(import_turso())}, local file)"

    def connect(self) -> Connection:
        turso = import_turso()
        return DBAPIConnection(turso.connect(str(self.path), isolation_level=None), self.backend_id)


class PytursoBackend(Backend):
    """Base of the backends that need pyturso importable."""

    def unavailable_reason(self) -> str | None:
        try:
            import_turso()
        except BackendUnavailable as exc:
            return str(exc)
        return None


class TursoLocalBackend(PytursoBackend):
    id = "turso-local"
    description = "turso.connect(path) (pyturso), Turso's new engine, on a local file"
    capabilities = frozenset({CAP_FILE, CAP_MULTI_CONNECTION, CAP_NAMED_PARAMS})

    def create_database(self, ctx: BackendContext) -> Database:
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        return TursoLocalDatabase(ctx.workdir / f"{ctx.name}.db", self.id)
