"""The real ``libsql`` client (remote mode) against the stand-in.

The stand-in runs in a child process: libsql 0.1.11 keeps the GIL while it waits for
the server, so a server thread in the same interpreter would never get to answer.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import libsql
import pytest

from pytest_traceparity.servers.launcher import SqldConfig, SqldHandle, start_sqld


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqldHandle]:
    handle = start_sqld(SqldConfig(strategy="stand-in", workdir=tmp_path_factory.mktemp("srv")))
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def url(standin: SqldHandle, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "c" + str(abs(hash(request.node.nodeid)) % 10**10)
    yield standin.endpoint.create_database(name)
    standin.endpoint.drop_database(name)


def test_label_says_stand_in(standin: SqldHandle) -> None:
    assert standin.endpoint.label == "stand-in 0.1 (traceparity) [write-lock handover 0.2 s; sqld: 5 s]"
    assert standin.endpoint.strategy == "stand-in"


def test_round_trip_blob_real_unicode_int(url: str) -> None:
    conn = libsql.connect(url)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, i INTEGER, r REAL, s TEXT, b BLOB)")
    row = (-(2**31), 3.141592653589793, "naïve ☃ 𝄞 \u200b", bytes(range(256)))
    cur = conn.execute("INSERT INTO t(i, r, s, b) VALUES (?, ?, ?, ?)", row)
    assert cur.lastrowid == 1 and cur.rowcount == 1
    conn.commit()
    got = conn.execute("SELECT i, r, s, b, typeof(i), typeof(r) FROM t").fetchall()
    assert got == [(*row, "integer", "real")]
    assert conn.execute("SELECT ? + 0.2", (0.1,)).fetchall() == [(0.1 + 0.2,)]  # exact repr survives


def test_large_int_is_sent_as_real(url: str) -> None:
    """libsql 0.1.11 binds ints outside i32 as REAL on the remote path too (as it does locally)."""
    conn = libsql.connect(url)
    conn.execute("CREATE TABLE t(untyped, typed INTEGER)")
    conn.execute("INSERT INTO t VALUES (?, ?)", (2**40, 2**40))
    conn.commit()
    assert conn.execute("SELECT typeof(untyped), typeof(typed), typed FROM t").fetchall() == [
        ("real", "integer", 2**40)
    ]


def test_transactions_commit_and_rollback(url: str) -> None:
    conn = libsql.connect(url)
    conn.execute("CREATE TABLE t(x)")
    conn.commit()
    conn.execute("INSERT INTO t VALUES (1)")
    conn.execute("INSERT INTO t VALUES (2)")
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM t").fetchall() == [(0,)]
    conn.execute("INSERT INTO t VALUES (3)")
    other = libsql.connect(url)
    assert other.execute("SELECT count(*) FROM t").fetchall() == [(0,)]  # not committed yet
    conn.commit()
    assert other.execute("SELECT x FROM t").fetchall() == [(3,)]


def test_errors_come_back_with_sqld_codes(url: str) -> None:
    conn = libsql.connect(url)
    conn.execute("CREATE TABLE t(x UNIQUE)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    with pytest.raises(ValueError, match="SQLITE_CONSTRAINT") as unique:
        conn.execute("INSERT INTO t VALUES (1)")
    assert "UNIQUE constraint failed: t.x" in str(unique.value)
    with pytest.raises(ValueError, match="no such table: nope"):
        conn.execute("SELECT * FROM nope")


def test_executescript_and_executemany(url: str) -> None:
    conn = libsql.connect(url)
    conn.executescript("CREATE TABLE a(x); CREATE TABLE b(y); INSERT INTO a VALUES (1);")
    conn.executemany("INSERT INTO b VALUES (?)", [(1,), (2,), (3,)])
    conn.commit()
    assert conn.execute("SELECT (SELECT count(*) FROM a), (SELECT sum(y) FROM b)").fetchall() == [(1, 6)]


def test_namespaces_isolate_databases(standin: SqldHandle) -> None:
    ep = standin.endpoint
    first, second = ep.create_database("iso-a"), ep.create_database("iso-b")
    try:
        a = libsql.connect(first)
        a.execute("CREATE TABLE only_a(x)")
        a.commit()
        b = libsql.connect(second)
        assert b.execute("SELECT name FROM sqlite_schema").fetchall() == []
    finally:
        ep.drop_database("iso-a")
        ep.drop_database("iso-b")


def test_cli_serve_prints_url_and_answers(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "pytest_traceparity.servers.standin", "--port", "0", "--db-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        conn = libsql.connect(line.split()[-1])
        conn.execute("CREATE TABLE t(b BLOB)")
        conn.execute("INSERT INTO t VALUES (?)", (b"\x00\x01",))
        conn.commit()
        assert conn.execute("SELECT b FROM t").fetchall() == [(b"\x00\x01",)]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0  # SIGTERM is a clean shutdown
    assert (tmp_path / "dbs" / "default" / "data").exists()
