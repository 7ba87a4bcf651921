"""The ``sqld-http`` backend (real libsql client, remote mode) on a stand-in the launcher started."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_traceparity import http
from pytest_traceparity.backends.base import BackendContext
from pytest_traceparity.backends.sqld_http import SqldHttpBackend, SqldHttpDatabase
from pytest_traceparity.errors import BackendUnavailable, DatabaseError
from pytest_traceparity.servers.launcher import SqldConfig, SqldEndpoint, SqldHandle, start_sqld


class OneServer:
    def __init__(self, endpoint: SqldEndpoint) -> None:
        self.endpoint = endpoint

    def sqld(self) -> SqldEndpoint:
        return self.endpoint


@pytest.fixture(scope="module")
def handle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqldHandle]:
    h = start_sqld(SqldConfig(strategy="stand-in", workdir=tmp_path_factory.mktemp("be")))
    yield h
    h.stop()


def test_fresh_database_per_context_and_label(handle: SqldHandle, tmp_path: Path) -> None:
    backend = SqldHttpBackend()
    assert backend.unavailable_reason() is None
    ctx = BackendContext(workdir=tmp_path, name="tests/test x::case[1]", services=OneServer(handle.endpoint))
    first, second = backend.create_database(ctx), backend.create_database(ctx)
    assert isinstance(first, SqldHttpDatabase) and isinstance(second, SqldHttpDatabase)
    try:
        assert first.served_by == "stand-in 0.1 (traceparity) [write-lock handover 0.2 s; sqld: 5 s]"
        assert first.url != second.url and "/dev/" in first.url
        with first.connect() as conn:
            conn.execute("CREATE TABLE t(x)")
            conn.execute("INSERT INTO t VALUES (?)", ("a",))
        with second.connect() as conn:
            assert conn.execute("SELECT count(*) FROM sqlite_schema").scalar() == 0
        with first.connect() as conn:
            assert conn.execute("SELECT x FROM t").rows == [("a",)]
            with pytest.raises(DatabaseError):
                conn.execute("SELECT * FROM missing")
    finally:
        first.close()
        second.close()
    status, body = http.request("GET", f"{handle.endpoint.url}/v1/namespaces")
    assert status == 200
    assert first.namespace not in json.loads(body)["namespaces"]  # close() dropped the namespace


def test_refused_reset_is_reported_as_unavailable(handle: SqldHandle, tmp_path: Path) -> None:
    borrowed = SqldEndpoint(url=handle.endpoint.url, label="sqld 9.9 (url)", strategy="url", owned=False)
    ctx = BackendContext(workdir=tmp_path, services=OneServer(borrowed))
    with pytest.raises(BackendUnavailable, match="refusing to wipe"):
        SqldHttpBackend().create_database(ctx)
