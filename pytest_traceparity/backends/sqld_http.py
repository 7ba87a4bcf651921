"""``sqld-http``: the ``libsql`` client in remote mode (Hrana over HTTP) against sqld.

Whichever server the harness chose (real sqld from a binary, Docker or a URL, or the
stand-in) is reached through ``ctx.services.sqld()``; each database is a fresh namespace
when the server offers one the client can route to, otherwise the harness-owned default
database wiped clean (see :mod:`pytest_traceparity.servers.launcher`).
"""

from __future__ import annotations

import uuid

from ..errors import BackendUnavailable
from ..secret import reveal
from .base import CAP_MULTI_CONNECTION, CAP_REMOTE, BackendContext, Connection, Database, safe_name
from .endpoint import SqldEndpoint
from .libsql_local import DBAPIConnection, LibsqlClientBackend, import_libsql, libsql_version


class SqldHttpDatabase(Database):
    def __init__(self, endpoint: SqldEndpoint, namespace: str, url: str, backend_id: str) -> None:
        self.endpoint = endpoint
        self.namespace = namespace
        self.url = url
        self.backend_id = backend_id

    def __repr__(self) -> str:
        return f"SqldHttpDatabase(url={self.url!r}, served_by={self.served_by!r})"

    @property
    def served_by(self) -> str:
        return self.endpoint.label

    def connect(self) -> Connection:
        libsql = import_libsql()
        raw = libsql.connect(self.url, auth_token=reveal(self.endpoint.auth_token) or "", isolation_level=None)
        return DBAPIConnection(raw, self.backend_id)

    def info(self) -> dict[str, object]:
        return {
            "served_by": self.served_by,
            "client": f"libsql {libsql_version()} (remote)",
            "namespace": self.namespace if self.endpoint.supports_namespaces else "default (wiped)",
        }

    def close(self) -> None:
        self.endpoint.drop_database(self.namespace)


class SqldHttpBackend(LibsqlClientBackend):
    id = "sqld-http"
    description = 'libsql.connect("http://...") against sqld (or the traceparity stand-in)'
    capabilities = frozenset({CAP_REMOTE, CAP_MULTI_CONNECTION})

    def create_database(self, ctx: BackendContext) -> Database:
        endpoint, namespace, url = fresh_namespace(ctx, self.id)
        return SqldHttpDatabase(endpoint, namespace, url, self.id)


def fresh_namespace(ctx: BackendContext, backend_id: str) -> tuple[SqldEndpoint, str, str]:
    """A new, empty database on the session's sqld: (endpoint, namespace, URL to connect to)."""
    endpoint = ctx.services.sqld()
    namespace = f"{safe_name(ctx.name, 40)}-{uuid.uuid4().hex[:8]}"
    try:
        url = endpoint.create_database(namespace)
    except BackendUnavailable as exc:  # the launcher's SqldUnavailable / ResetRefused
        raise BackendUnavailable(f"{backend_id}: {exc}") from None  # exc names the server
    return endpoint, namespace, url
