"""sqlalchemy-libsql (local file) and sqlalchemy-libsql-http (stand-in) with the real dialect and client."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_traceparity.backends.base import BackendContext
from pytest_traceparity.backends.sqlalchemy_libsql import (
    SQLAlchemyLibsqlBackend,
    SQLAlchemyLibsqlHttpBackend,
    remote_url,
)
from pytest_traceparity.errors import DatabaseError
from pytest_traceparity.servers.launcher import SqldEndpoint


class _Services:
    def __init__(self, endpoint: SqldEndpoint) -> None:
        self.endpoint = endpoint

    def sqld(self) -> SqldEndpoint:
        return self.endpoint


def test_local_file_through_the_dialect(tmp_path: Path) -> None:
    database = SQLAlchemyLibsqlBackend().create_database(BackendContext(workdir=tmp_path, name="t"))
    assert "sqlalchemy-libsql" in database.served_by and "libsql-experimental" in database.served_by
    with database.connect() as conn, database.connect() as other:
        conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        result = conn.execute("INSERT INTO t(v) VALUES (?)", ("a",))
        assert (result.rowcount, result.lastrowid) == (1, 1)
        assert other.execute("SELECT id, v FROM t").rows == [(1, "a")], "autocommit: visible at once"
        with pytest.raises(DatabaseError) as info:
            conn.execute("INSERT INTO t(id) VALUES (1)")
        # the kind is recognised from the text; the class is what libsql-experimental raises
        assert (info.value.kind, info.value.exc_type) == ("constraint.unique", "ValueError")
        conn.begin()
        assert conn.in_transaction
        conn.rollback()
        assert not conn.in_transaction


def test_remote_url_follows_the_dialect_syntax() -> None:
    assert str(remote_url("http://127.0.0.1:8080")) == "sqlite+libsql://127.0.0.1:8080"
    assert str(remote_url("http://127.0.0.1:8080/dev/ns1")) == "sqlite+libsql://127.0.0.1:8080/dev/ns1"
    assert str(remote_url("https://db.example:443")) == "sqlite+libsql://db.example:443?secure=true"


def test_http_against_the_standin(standin: SqldEndpoint, tmp_path: Path) -> None:
    ctx = BackendContext(workdir=tmp_path, name="h", services=_Services(standin))
    database = SQLAlchemyLibsqlHttpBackend().create_database(ctx)
    try:
        assert database.served_by == standin.label
        with database.connect() as conn, database.connect() as other:
            conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
            conn.execute("INSERT INTO t(v) VALUES (?)", ("over http",))
            assert other.execute("SELECT v FROM t").rows == [("over http",)]
    finally:
        database.close()
