"""The sqlite3-shaped facade (``dbapi``) on real backends, checked against sqlite3 itself."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_traceparity.backends.adbapi import AioConnection
from pytest_traceparity.backends.base import BackendContext
from pytest_traceparity.backends.dbapi import Sqlite3Connection, is_dml
from pytest_traceparity.registry import standalone_registry

LOCAL = ["sqlalchemy-sqlite", "libsql-local"]


@pytest.fixture
def open_facade(tmp_path: Path) -> Iterator[Callable[..., Sqlite3Connection]]:
    """``open_facade(backend_id, isolation_level="")``: a facade on a fresh database of that backend."""
    registry = standalone_registry()
    counter = itertools.count()
    opened: list[tuple[Sqlite3Connection, Any]] = []

    def make(backend_id: str, isolation_level: str | None = "") -> Sqlite3Connection:
        workdir = tmp_path / f"db-{next(counter)}"
        workdir.mkdir()
        database = registry.get(backend_id).create_database(BackendContext(workdir=workdir, name="db"))
        conn = Sqlite3Connection(database.connect(), isolation_level=isolation_level, label="db")
        opened.append((conn, database))
        return conn

    yield make
    for conn, database in opened:
        conn.close()
        database.close()


def storage_layer(conn: Any) -> dict[str, Any]:
    """Code written for sqlite3 (a small repository), returning everything it observed."""
    seen: dict[str, Any] = {}
    cur = conn.cursor()
    cur.execute("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL)")
    cur.execute("INSERT INTO users(name, score) VALUES (?, ?)", ("ann", 1.5))
    seen["lastrowid"] = cur.lastrowid
    seen["rowcount_insert"] = cur.rowcount
    cur.executemany("INSERT INTO users(name, score) VALUES (?, ?)", [("bob", 2.0), ("cy", None), ("di", 4.25)])
    seen["rowcount_many"] = cur.rowcount
    conn.commit()
    cur.execute("UPDATE users SET score = score + 1 WHERE score IS NOT NULL")
    seen["rowcount_update"] = cur.rowcount
    conn.commit()
    cur.execute("SELECT id, name, score FROM users ORDER BY id")
    seen["description"] = [d[0] for d in cur.description]
    seen["one"] = cur.fetchone()
    seen["many"] = cur.fetchmany(2)
    seen["rest"] = cur.fetchall()
    seen["after"] = cur.fetchone()
    seen["iterated"] = list(conn.execute("SELECT name FROM users WHERE score > ? ORDER BY name", (2,)))
    seen["named"] = conn.execute("SELECT :a + :b", {"a": 1, "b": 2}).fetchone() if _named_ok(conn) else None
    seen["empty_description"] = [d[0] for d in conn.execute("SELECT name FROM users WHERE 0").description]
    seen["insert_description"] = conn.execute("INSERT INTO users(name) VALUES ('eve')").description
    conn.rollback()
    seen["count_after_rollback"] = conn.execute("SELECT count(*) FROM users").fetchone()
    return seen


def _named_ok(conn: Any) -> bool:
    return getattr(conn, "backend_id", "sqlite3") != "libsql-local"  # libsql 0.1.11 refuses dict parameters


@pytest.mark.parametrize("backend_id", LOCAL)
def test_code_written_for_sqlite3_sees_the_same(
    backend_id: str, open_facade: Callable[..., Sqlite3Connection], tmp_path: Path
) -> None:
    real = sqlite3.connect(tmp_path / "real.db")
    expected = storage_layer(real)
    real.close()
    got = storage_layer(open_facade(backend_id))
    if backend_id == "libsql-local":
        expected["named"] = None
    assert got == expected


@pytest.mark.parametrize("backend_id", LOCAL)
def test_isolation_level_like_sqlite3(backend_id: str, open_facade: Callable[..., Sqlite3Connection]) -> None:
    conn = open_facade(backend_id)
    conn.execute("CREATE TABLE t(x)")
    assert not conn.in_transaction, "DDL does not open a transaction (sqlite3 >= 3.6 rule)"
    conn.execute("SELECT * FROM t")
    assert not conn.in_transaction, "SELECT does not open one"
    conn.execute("/* comment */ INSERT INTO t VALUES (1)")
    assert conn.in_transaction, "DML opens one implicitly"
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    with conn:
        conn.execute("INSERT INTO t VALUES (2)")
    assert not conn.in_transaction
    with pytest.raises(ZeroDivisionError), conn:
        conn.execute("INSERT INTO t VALUES (3)")
        raise ZeroDivisionError
    assert conn.execute("SELECT x FROM t").fetchall() == [(2,)]
    conn.execute("INSERT INTO t VALUES (4)")
    conn.executescript("INSERT INTO t VALUES (5);")  # commits the pending transaction first
    conn.rollback()
    assert conn.execute("SELECT x FROM t ORDER BY x").fetchall() == [(2,), (4,), (5,)]
    conn.execute("INSERT INTO t VALUES (6)")
    conn.isolation_level = None  # sqlite3 commits the pending transaction here
    assert not conn.in_transaction
    conn.execute("INSERT INTO t VALUES (7)")
    assert not conn.in_transaction, "autocommit: no implicit BEGIN"
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (5,)
    with pytest.raises(ValueError, match="isolation_level"):
        conn.isolation_level = "SERIALIZABLE"


@pytest.mark.parametrize("backend_id", LOCAL)
def test_row_factories(backend_id: str, open_facade: Callable[..., Sqlite3Connection]) -> None:
    conn = open_facade(backend_id)
    conn.row_factory = sqlite3.Row
    row = conn.execute('SELECT 1 AS a, \'x\' AS "we""ird"').fetchone()
    assert isinstance(row, sqlite3.Row)
    assert row.keys() == ["a", 'we"ird'] and row["A"] == 1 and row[1] == "x" and dict(row) == {"a": 1, 'we"ird': "x"}
    conn.row_factory = lambda cursor, values: {d[0]: v for d, v in zip(cursor.description, values)}
    assert conn.execute("SELECT 2 AS b").fetchall() == [{"b": 2}]
    cur = conn.cursor()
    cur.row_factory = None
    assert cur.execute("SELECT 3").fetchone() == (3,)
    conn.row_factory = None
    conn.text_factory = bytes
    assert conn.execute("SELECT 'é'").fetchone() == ("é".encode(),)


def test_errors_are_the_backends_own(open_facade: Callable[..., Sqlite3Connection]) -> None:
    for backend_id in LOCAL:
        conn = open_facade(backend_id, isolation_level=None)
        conn.execute("CREATE TABLE t(a UNIQUE)")
        conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(Exception) as info:
            conn.execute("INSERT INTO t VALUES (1)")
        if backend_id == "sqlalchemy-sqlite":
            assert type(info.value) is sqlite3.IntegrityError
        else:  # what code that catches sqlite3.IntegrityError would really meet on libsql
            assert type(info.value) is ValueError
            assert any("sqlite3 raises a sqlite3.Error subclass" in n for n in getattr(info.value, "__notes__", []))


def test_closed_and_in_process_only(open_facade: Callable[..., Sqlite3Connection]) -> None:
    conn = open_facade("libsql-local")
    with pytest.raises(sqlite3.NotSupportedError, match=r"runs Python inside the SQLite library.*libsql-local"):
        conn.create_collation("nocase2", lambda a, b: 0)
    conn.create_function("twice", 1, lambda v: v * 2)  # kept (SQLAlchemy registers functions on connect)
    with pytest.raises(ValueError) as info:
        conn.execute("SELECT twice(2)")
    assert any("twice() was registered with create_function()" in n for n in getattr(info.value, "__notes__", []))
    cur = conn.cursor()
    cur.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed cursor"):
        cur.execute("SELECT 1")
    conn.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
        conn.execute("SELECT 1")


def test_is_dml_follows_sqlite3() -> None:
    assert is_dml("  -- c\n insert into t values (1)") and is_dml("REPLACE INTO t VALUES (1)")
    assert not is_dml("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x")  # sqlite3 looks at the first word
    assert not is_dml("SELECT 1") and not is_dml("CREATE TABLE t(x)")


@pytest.mark.parametrize("backend_id", LOCAL)
def test_async_twin_is_aiosqlite_shaped(backend_id: str, open_facade: Callable[..., Sqlite3Connection]) -> None:
    async def main() -> list[Any]:
        async with AioConnection(lambda: open_facade(backend_id)) as db:
            await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
            cur = await db.executemany("INSERT INTO t(v) VALUES (?)", [("a",), ("b",), ("c",)])
            assert cur.rowcount == 3 and db.in_transaction
            await db.commit()
            row_id = await db.execute_insert("INSERT INTO t(v) VALUES (?)", ("d",))
            db.row_factory = sqlite3.Row
            async with db.execute("SELECT id, v FROM t ORDER BY id") as cursor:
                assert [d[0] for d in cursor.description] == ["id", "v"]
                rows = [dict(r) async for r in cursor]
            fetched = await db.execute_fetchall("SELECT v FROM t WHERE id > ?", (2,))
            await db.rollback()
            return [row_id and tuple(row_id), rows, [r["v"] for r in fetched], await db.execute_fetchall("SELECT 1")]

    row_id, rows, fetched, _ = asyncio.run(main())
    assert row_id == (4,)
    assert rows == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}, {"id": 4, "v": "d"}]
    assert fetched == ["c", "d"]


def test_dbapi_and_adbapi_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sqlite3

        def test_sync(dbapi, traceparity_backend):
            cur = dbapi.cursor()
            cur.execute("CREATE TABLE t(x)")
            cur.execute("INSERT INTO t VALUES (?)", (1,))
            assert dbapi.in_transaction
            dbapi.commit()
            assert dbapi.execute("SELECT x FROM t").fetchall() == [(1,)]
            assert traceparity_backend in repr(dbapi)

        async def test_async(adbapi):
            await adbapi.execute("CREATE TABLE t(x)")
            await adbapi.execute("INSERT INTO t VALUES (2)")
            await adbapi.commit()
            async with adbapi.execute("SELECT x FROM t") as cur:
                assert await cur.fetchall() == [(2,)]
        """
    )
    result = pytester.runpytest("-v", "--backends=sqlalchemy-sqlite,libsql-local", "-o", "asyncio_mode=auto")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test_sync?libsql-local? PASSED*", "*test_async?sqlalchemy-sqlite? PASSED*"])
