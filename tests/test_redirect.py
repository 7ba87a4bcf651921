"""Redirect mode: a team's unchanged sqlite3 / aiosqlite / SQLAlchemy tests, run on every backend."""

from __future__ import annotations

import pytest

# The four built-in backends (all also takes the optional Turso / SQLAlchemy-over-libsql ones when
# installed; the expected counts below are those of the built-ins).
ALL = (
    "--backends=sqlalchemy-sqlite,libsql-local,sqld-http,embedded-replica",
    "--sqld=stand-in",
    "--traceparity-redirect",
)

SQLITE3_MODULE = """
import sqlite3

DB = "app.db"


def save(conn, name, size):
    cur = conn.execute("INSERT INTO files(name, size) VALUES (?, ?)", (name, size))
    conn.commit()
    return cur.lastrowid


def test_repository(tmp_path):
    conn = sqlite3.connect(tmp_path / DB)
    conn.row_factory = sqlite3.Row
    conn.execute("CREATE TABLE files(id INTEGER PRIMARY KEY, name TEXT UNIQUE, size INTEGER)")
    assert save(conn, "a.txt", 10) == 1
    assert save(conn, "b.txt", 20) == 2
    row = conn.execute("SELECT * FROM files WHERE name = ?", ("b.txt",)).fetchone()
    assert (row["id"], row["size"]) == (2, 20)
    other = sqlite3.connect(str(tmp_path / DB))  # the same file: the same backend database
    assert other.execute("SELECT count(*) FROM files").fetchone()[0] == 2
    assert sqlite3.connect(":memory:").execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    conn.close()
    other.close()


def test_big_ints_stay_integers(tmp_path):
    conn = sqlite3.connect(tmp_path / DB)
    conn.execute("CREATE TABLE t(v)")
    with conn:
        conn.execute("INSERT INTO t VALUES (?)", (2**40,))
    assert conn.execute("SELECT typeof(v) FROM t").fetchone() == ("integer",)
"""


def test_unchanged_sqlite3_module_runs_on_every_backend(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_repo=SQLITE3_MODULE)
    result = pytester.runpytest("-v", *ALL)
    result.assert_outcomes(passed=5, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*test_repository?sqlalchemy-sqlite? PASSED*",
            "*test_repository?libsql-local? PASSED*",
            "*test_repository?sqld-http? PASSED*",
            "*test_repository?embedded-replica? PASSED*",
            "*test_big_ints_stay_integers?sqlalchemy-sqlite? PASSED*",
        ]
    )
    # libsql 0.1.11 binds ints beyond i32 as REAL: the test's own assertion shows it reached libsql
    for backend in ("libsql-local", "sqld-http", "embedded-replica"):
        result.stdout.fnmatch_lines([f"*test_big_ints_stay_integers[[]{backend}[]] FAILED*"])
    # counted in the failure sections only: the short summary repeats the message when $CI is set
    raised = [line for line in result.outlines if line.startswith("E ") and "assert ('real',) == ('integer',)" in line]
    assert len(raised) == 3, raised


AIOSQLITE_MODULE = """
import asyncio
import aiosqlite


async def store(path):
    async with aiosqlite.connect(path) as db:
        db.row_factory = aiosqlite.Row
        await db.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)")
        await db.executemany("INSERT INTO notes(body) VALUES (?)", [("x",), ("y",)])
        await db.commit()
        async with db.execute("SELECT id, body FROM notes ORDER BY id") as cursor:
            return [dict(row) async for row in cursor]


def test_notes(tmp_path):
    assert asyncio.run(store(tmp_path / "notes.db")) == [{"id": 1, "body": "x"}, {"id": 2, "body": "y"}]


def test_rollback(tmp_path):
    async def main():
        db = await aiosqlite.connect(tmp_path / "r.db")
        await db.execute("CREATE TABLE t(x)")
        await db.execute("INSERT INTO t VALUES (1)")
        assert db.in_transaction
        await db.rollback()
        rows = await db.execute_fetchall("SELECT * FROM t")
        await db.close()
        return rows
    assert asyncio.run(main()) == []
"""


def test_unchanged_aiosqlite_module_runs_on_every_backend(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_notes=AIOSQLITE_MODULE)
    result = pytester.runpytest("-v", *ALL)
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*test_notes?embedded-replica? PASSED*", "*test_rollback?sqld-http? PASSED*"])


SQLALCHEMY_MODULE = """
import asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine


def test_sync_engine(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'sync.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)"))
        conn.execute(sa.text("INSERT INTO t(v) VALUES (:v)"), [{"v": 1}, {"v": 2}])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT sum(v) FROM t")).scalar() == 3
    engine.dispose()


def test_async_engine(tmp_path):
    async def main():
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'async.db'}")
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"))
            await conn.execute(sa.text("INSERT INTO t(v) VALUES (:v)"), [{"v": "a"}, {"v": "b"}])
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT v FROM t ORDER BY id"))).all()
        await engine.dispose()
        return [r.v for r in rows]
    assert asyncio.run(main()) == ["a", "b"]
"""


def test_unchanged_sqlalchemy_module_runs_on_every_backend(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_engines=SQLALCHEMY_MODULE)
    result = pytester.runpytest("-v", *ALL)
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*test_sync_engine?libsql-local? PASSED*", "*test_async_engine?sqld-http? PASSED*"])


def test_what_cannot_be_redirected_fails_clearly(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sqlite3
        import subprocess
        import sys

        import pytest

        def test_subprocess(tmp_path):
            path = tmp_path / "child.db"
            code = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('CREATE TABLE t(x)'); c.commit()"
            subprocess.run([sys.executable, "-c", code, str(path)], check=True)

        class Mine(sqlite3.Connection):
            pass

        def test_factory(tmp_path):
            sqlite3.connect(tmp_path / "f.db", factory=Mine)

        @pytest.mark.traceparity_no_redirect
        def test_opted_out(tmp_path):
            conn = sqlite3.connect(tmp_path / "real.db")
            assert type(conn) is sqlite3.Connection
        """
    )
    result = pytester.runpytest("-v", "--backends=sqlalchemy-sqlite,libsql-local", "--traceparity-redirect")
    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines(
        [
            "*test_opted_out PASSED*",
            "*[[]libsql-local[]] real SQLite wrote database file(s) during this test, outside the redirect:*",
            "*child.db",
            "*Those statements ran on SQLite, not on 'libsql-local'*subprocess*traceparity_no_redirect*",
            "*factory=Mine*cannot be redirected to 'libsql-local'*",
        ]
    )
    assert "test_subprocess[sqlalchemy-sqlite] PASSED" not in result.stdout.str()


def test_existing_database_file_is_copied_to_the_backend(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sqlite3

        import pytest

        @pytest.fixture
        def seeded(tmp_path):
            path = tmp_path / "seed.db"
            real = sqlite3.Connection(str(path))  # the C class itself: a file made outside the redirect
            real.execute("CREATE TABLE t(x)")
            real.execute("INSERT INTO t VALUES (42)")
            real.commit()
            real.close()
            return path

        def test_reads_seed(seeded):
            conn = sqlite3.connect(seeded)
            assert conn.execute("SELECT x FROM t").fetchall() == [(42,)]
            conn.execute("INSERT INTO t VALUES (43)")
            conn.commit()
        """
    )
    result = pytester.runpytest("-v", "--backends=sqlalchemy-sqlite,libsql-local", "--traceparity-redirect")
    result.assert_outcomes(passed=2)


def test_module_level_engine_follows_each_test_to_its_backend(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sqlalchemy as sa

        engine = sa.create_engine("sqlite:///shared.db")  # pooled connections outlive each test

        def check(value):
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE IF NOT EXISTS t(v)"))
                conn.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": value})
                assert conn.execute(sa.text("SELECT count(*), typeof(max(v)) FROM t")).one() == (1, "integer")

        def test_first():
            check(2**40)

        def test_second():
            check(2**41)
        """
    )
    result = pytester.runpytest("-v", "--backends=sqlalchemy-sqlite,libsql-local", "--traceparity-redirect")
    result.assert_outcomes(passed=2, failed=2)  # a fresh database per test; libsql's REAL shows each time
    result.stdout.fnmatch_lines(
        [
            "*test_first?sqlalchemy-sqlite? PASSED*",
            "*test_first?libsql-local? FAILED*",
            "*test_second?sqlalchemy-sqlite? PASSED*",
            "*test_second?libsql-local? FAILED*",
        ]
    )
    assert result.stdout.str().count("(1, 'real')") >= 2
    assert (pytester.path / "shared.db").stat().st_size == 0  # nothing ran on the real file


def test_connect_imported_by_name_in_conftest_and_module_is_routed(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from sqlite3 import connect as conftest_connect

        import pytest

        @pytest.fixture
        def conn(tmp_path):
            c = conftest_connect(tmp_path / "c.db")
            yield c
            c.close()
        """
    )
    pytester.makepyfile(
        """
        from sqlite3 import connect

        def test_module_bound(tmp_path, traceparity_backend):
            assert traceparity_backend in repr(connect(tmp_path / "m.db"))

        def test_conftest_bound(conn, traceparity_backend):
            assert traceparity_backend in repr(conn)
        """
    )
    result = pytester.runpytest("--backends=sqlalchemy-sqlite,libsql-local", "--traceparity-redirect")
    result.assert_outcomes(passed=4)
