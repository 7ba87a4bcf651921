"""``sqlalchemy-libsql`` / ``sqlalchemy-libsql-http``: SQLAlchemy 2 with the ``sqlalchemy-libsql`` dialect.

This is the production path of stacks that configure ``sqlite+libsql://...``: a sync
SQLAlchemy engine whose DB-API driver is ``libsql_experimental`` (not the ``libsql``
package the ``libsql-*`` backends drive). The dialect's URL forms, from its source:
``sqlite+libsql:///ABS/PATH`` is a local file; ``sqlite+libsql://HOST:PORT/PATH`` is a
remote database over HTTP (``?secure=true`` makes it HTTPS).

SQL runs through ``exec_driver_sql`` on an ``AUTOCOMMIT`` connection, as for the
reference: the driver's transaction semantics are compared, not SQLAlchemy's autobegin.
:class:`SQLAlchemyEngineConnection` is shared with ``sqlalchemy-turso``.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..values import Result, plain
from .base import (
    CAP_FILE,
    CAP_MULTI_CONNECTION,
    CAP_REMOTE,
    Backend,
    BackendContext,
    Connection,
    Database,
    Params,
)

if TYPE_CHECKING:
    from .endpoint import SqldEndpoint

SQLALCHEMY_LIBSQL_INSTALL = 'pip install "pytest-traceparity[sqlalchemy-libsql]"  (or: pip install sqlalchemy-libsql)'


def dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def missing_modules(modules: tuple[str, ...], install: str) -> str | None:
    """Why a dialect cannot load here (``None`` when every module imports)."""
    for module in modules:
        try:
            __import__(module)
        except ImportError as exc:
            return f"the {module!r} module is not importable ({exc}); install it with: {install}"
    return None


def _driver_params(params: Params | None) -> Any:
    if params is None:
        return ()
    if isinstance(params, Mapping):
        return dict(params)
    return tuple(params)


class SQLAlchemyEngineConnection(Connection):
    """One SQLAlchemy (sync) engine connection in ``AUTOCOMMIT``, driven by raw driver SQL."""

    def __init__(
        self,
        url: Any,
        backend_id: str,
        connect_args: Mapping[str, Any] | None = None,
        *,
        sqlalchemy_autocommit: bool = True,
    ) -> None:
        """``sqlalchemy_autocommit=False``: the driver is put in autocommit through ``connect_args`` only.

        (``sqlalchemy-libsql`` cannot take SQLAlchemy's ``AUTOCOMMIT``: it assigns
        ``isolation_level`` on a ``libsql_experimental`` connection, where it is read-only.)
        """
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self.backend_id = backend_id
        with self._errors(None):
            self._engine = create_engine(url, poolclass=NullPool, connect_args=dict(connect_args or {}))
            try:
                conn = self._engine.connect()
                self._conn = conn.execution_options(isolation_level="AUTOCOMMIT") if sqlalchemy_autocommit else conn
            except BaseException:
                self._engine.dispose()
                raise

    def _driver(self) -> Any:
        return self._conn.connection.driver_connection

    def _execute(self, sql: str, params: Params) -> Result:
        result = self._conn.exec_driver_sql(sql, _driver_params(params))
        # libsql_experimental reports description == () (PEP 249: None) for statements without
        # rows, so SQLAlchemy claims returns_rows and fetchall() raises TypeError: look at the columns.
        # Read the counters before fetching, as an application does (``result.lastrowid`` right
        # after ``execute``): SQLAlchemy closes the DB-API cursor once the rows are consumed.
        rowcount, lastrowid = result.rowcount, _lastrowid(result)
        if result.returns_rows and result.cursor is not None and result.cursor.description:
            columns = tuple(result.keys())
            rows = [tuple(plain(v) for v in row) for row in result.fetchall()]
        else:
            columns, rows = (), []
        return Result(columns=columns, rows=rows, rowcount=rowcount, lastrowid=lastrowid)

    def _executemany(self, sql: str, batch: list[Params]) -> Result:
        if not batch:
            return Result(rowcount=0)
        result = self._conn.exec_driver_sql(sql, [_driver_params(p) for p in batch])
        return Result(rowcount=result.rowcount, lastrowid=_lastrowid(result))

    def _executescript(self, script: str) -> None:
        self._driver().executescript(script)

    def _in_transaction(self) -> bool:
        return bool(self._driver().in_transaction)

    def _close(self) -> None:
        try:
            self._conn.close()
        finally:
            self._engine.dispose()


def _lastrowid(result: Any) -> int | None:
    try:
        return result.lastrowid  # type: ignore[no-any-return]
    except Exception:
        return None


def libsql_dialect_label() -> str:
    return (
        f"SQLAlchemy {dist_version('sqlalchemy')} + sqlalchemy-libsql {dist_version('sqlalchemy-libsql')} "
        f"(libsql-experimental {dist_version('libsql-experimental')})"
    )


class SQLAlchemyLibsqlDatabase(Database):
    def __init__(self, path: Path, backend_id: str) -> None:
        self.path = path
        self.backend_id = backend_id
        self._sqlite: str | None = None

    @property
    def served_by(self) -> str:
        if self._sqlite is None:
            with self.connect() as conn:
                self._sqlite = str(conn.execute("SELECT sqlite_version()").scalar())
        return f"{libsql_dialect_label()}, sqlite {self._sqlite}, local file"

    def connect(self) -> Connection:
        return SQLAlchemyEngineConnection(
            f"sqlite+libsql:///{self.path}", self.backend_id, {"isolation_level": None}, sqlalchemy_autocommit=False
        )


def remote_url(http_url: str) -> Any:
    """The ``sqlite+libsql://`` URL for an ``http(s)://host:port[/path]`` database URL."""
    from sqlalchemy.engine import URL

    parts = urlsplit(http_url)
    query = {"secure": "true"} if parts.scheme == "https" else {}
    return URL.create(
        "sqlite+libsql", host=parts.hostname, port=parts.port, database=parts.path.lstrip("/") or None, query=query
    )


class SQLAlchemyLibsqlHttpDatabase(Database):
    def __init__(self, endpoint: SqldEndpoint, namespace: str, url: str, backend_id: str) -> None:
        self.endpoint = endpoint
        self.namespace = namespace
        self.url = url
        self.backend_id = backend_id

    @property
    def served_by(self) -> str:
        return self.endpoint.label

    def connect(self) -> Connection:
        args: dict[str, Any] = {"isolation_level": None}
        if self.endpoint.auth_token:
            args["auth_token"] = self.endpoint.auth_token
        return SQLAlchemyEngineConnection(remote_url(self.url), self.backend_id, args, sqlalchemy_autocommit=False)

    def info(self) -> dict[str, object]:
        return {
            "served_by": self.served_by,
            "client": f"{libsql_dialect_label()} (remote)",
            "namespace": self.namespace if self.endpoint.supports_namespaces else "default (wiped)",
        }

    def close(self) -> None:
        self.endpoint.drop_database(self.namespace)


class SQLAlchemyLibsqlBackend(Backend):
    id = "sqlalchemy-libsql"
    description = "SQLAlchemy 2 engine, sqlite+libsql (sqlalchemy-libsql), on a local file"
    capabilities = frozenset({CAP_FILE, CAP_MULTI_CONNECTION})

    def unavailable_reason(self) -> str | None:
        return missing_modules(("sqlalchemy", "sqlalchemy_libsql", "libsql_experimental"), SQLALCHEMY_LIBSQL_INSTALL)

    def create_database(self, ctx: BackendContext) -> Database:
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        return SQLAlchemyLibsqlDatabase(ctx.workdir / f"{ctx.name}.db", self.id)


class SQLAlchemyLibsqlHttpBackend(SQLAlchemyLibsqlBackend):
    id = "sqlalchemy-libsql-http"
    description = "SQLAlchemy 2 engine, sqlite+libsql://HOST:PORT against sqld (or the traceparity stand-in)"
    capabilities = frozenset({CAP_REMOTE, CAP_MULTI_CONNECTION})

    def create_database(self, ctx: BackendContext) -> Database:
        from .sqld_http import fresh_namespace

        endpoint, namespace, url = fresh_namespace(ctx, self.id)
        return SQLAlchemyLibsqlHttpDatabase(endpoint, namespace, url, self.id)
