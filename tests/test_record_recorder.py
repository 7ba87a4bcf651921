"""The in-process recorder: sqlite3 and libsql proxies, the SQLAlchemy listener, redaction."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import libsql
import pytest
import sqlalchemy as sa

from pytest_traceparity.trace.format import TraceReader
from pytest_traceparity.trace.recorder import RedactionRule, Redactor, recording


def events(path: Path) -> list[tuple[Any, ...]]:
    """(conn, op, sql) triples, compact enough to assert whole sequences."""
    return [(e.conn, e.op, e.sql) for e in TraceReader(path)]


def test_sqlite3_records_implicit_transactions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    trace = tmp_path / "t.jsonl"
    original_connect = sqlite3.connect
    with recording(trace):
        conn = sqlite3.connect("app.db")
        assert isinstance(conn, sqlite3.Connection)
        conn.execute("CREATE TABLE t (x)")
        conn.execute("SELECT * FROM t").fetchall()
        conn.commit()  # nothing open: not recorded
        conn.execute("INSERT INTO t VALUES (?)", (1,))
        conn.executemany("INSERT INTO t VALUES (?)", ((i,) for i in range(2, 5)))  # a generator
        conn.commit()
        cur = conn.cursor()
        cur.execute("UPDATE t SET x = x + 1 WHERE x > ?", (2,))
        conn.rollback()
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("INSERT INTO missing VALUES (1)")
        conn.execute("INSERT INTO t VALUES (99)")
        conn.executescript("CREATE TABLE u (y); INSERT INTO u VALUES (1);")  # commits the open tx first
        conn.close()
    assert sqlite3.connect is original_connect  # uninstalled
    assert events(trace) == [
        (1, "open", None),
        (1, "execute", "CREATE TABLE t (x)"),
        (1, "execute", "SELECT * FROM t"),
        (1, "begin", None),
        (1, "execute", "INSERT INTO t VALUES (?)"),
        (1, "executemany", "INSERT INTO t VALUES (?)"),
        (1, "commit", None),
        (1, "begin", None),
        (1, "execute", "UPDATE t SET x = x + 1 WHERE x > ?"),
        (1, "rollback", None),
        (1, "execute", "INSERT INTO missing VALUES (1)"),
        (1, "begin", None),
        (1, "execute", "INSERT INTO t VALUES (99)"),
        (1, "commit", None),
        (1, "executescript", "CREATE TABLE u (y); INSERT INTO u VALUES (1);"),
        (1, "close", None),
    ]
    recorded = list(TraceReader(trace))
    assert recorded[0].target == "app.db" and recorded[0].driver == "sqlite3"
    assert recorded[5].many == [(2,), (3,), (4,)]
    assert recorded[10].error == {
        "kind": "no_such_table",
        "dbapi_class": "OperationalError",
        "exc_type": "sqlite3.OperationalError",
    }
    # the program itself saw normal behaviour: the generator's rows were inserted
    check = sqlite3.connect(tmp_path / "app.db")
    assert check.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,), (3,), (4,), (99,)]
    check.close()


def test_custom_factory_and_databases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class AppConnection(sqlite3.Connection):
        tag = "mine"

    monkeypatch.chdir(tmp_path)
    trace = tmp_path / "t.jsonl"
    with recording(trace):
        a = sqlite3.connect("a.db", factory=AppConnection)
        assert isinstance(a, AppConnection) and a.tag == "mine"
        b = sqlite3.connect(str(tmp_path / "a.db"))  # same file, absolute path: same database
        m1 = sqlite3.connect(":memory:")
        m2 = sqlite3.connect(":memory:")  # private memory databases are distinct
        sub = tmp_path / "data"
        sub.mkdir()
        c = sqlite3.connect(sub / "c.db")
        for conn in (a, b, m1, m2, c):
            conn.close()
    opens = [(e.conn, e.db, e.target) for e in TraceReader(trace) if e.op == "open"]
    assert opens == [
        (1, "db1", "a.db"),
        (2, "db1", "a.db"),
        (3, "db2", ":memory:"),
        (4, "db3", ":memory:"),
        (5, "db4", "data/c.db"),
    ]


def test_libsql_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    trace = tmp_path / "t.jsonl"
    with recording(trace):
        conn = libsql.connect("l.db")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (?)", (2**40,))
        conn.commit()
        cur = conn.cursor()
        cur.execute("SELECT x FROM t")
        assert cur.fetchall() == [(2**40,)]
        conn.close()
    assert events(trace) == [
        (1, "open", None),
        (1, "execute", "CREATE TABLE t (x)"),
        (1, "begin", None),
        (1, "execute", "INSERT INTO t VALUES (?)"),
        (1, "commit", None),
        (1, "execute", "SELECT x FROM t"),
        (1, "close", None),
    ]
    assert next(iter(TraceReader(trace))).driver == "libsql"


def test_sqlalchemy_listener_records_engines_without_the_proxy(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    with recording(trace, sqlite=False, libsql=False, base_dir=str(tmp_path)):
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'sa.db'}")
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
            conn.execute(sa.text("INSERT INTO t (v) VALUES (:v)"), [{"v": "a"}, {"v": "b"}])
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT v FROM t WHERE id = :id"), {"id": 1}).all()
            with pytest.raises(sa.exc.OperationalError):
                conn.execute(sa.text("SELECT nope FROM t"))
        engine.dispose()
    recorded = list(TraceReader(trace))
    assert recorded[0].op == "open" and recorded[0].driver == "sqlalchemy:sqlite" and recorded[0].target == "sa.db"
    ops = [(e.op, e.sql) for e in recorded[1:]]
    assert ("executemany", "INSERT INTO t (v) VALUES (?)") in ops
    insert = ops.index(("executemany", "INSERT INTO t (v) VALUES (?)"))
    assert ops[insert - 1] == ("begin", None) and ops[insert + 1] == ("commit", None)
    assert recorded[1 + insert].many == [("a",), ("b",)]
    failing = [e for e in recorded if e.sql == "SELECT nope FROM t"]
    assert failing and failing[0].error is not None and failing[0].error["kind"] == "no_such_column"


def test_async_engine_is_recorded_once(tmp_path: Path) -> None:
    """aiosqlite opens sqlite3 connections (proxied); the listener must not record them again."""
    from sqlalchemy.ext.asyncio import create_async_engine

    trace = tmp_path / "t.jsonl"

    async def program() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'async.db'}")
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v)"))
            result = await conn.execute(sa.text("INSERT INTO t (v) VALUES (:v) RETURNING id"), {"v": 7})
            assert result.scalar_one() == 1
        await engine.dispose()

    with recording(trace, base_dir=str(tmp_path)):
        asyncio.run(program())
    recorded = list(TraceReader(trace))
    inserts = [e for e in recorded if e.sql and e.sql.startswith("INSERT")]
    assert len(inserts) == 1 and inserts[0].params == (7,)
    assert [e.driver for e in recorded if e.op == "open"] == ["sqlite3"]


def test_redaction_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    trace = tmp_path / "t.jsonl"
    rules = [RedactionRule.parse("sql=INSERT INTO users;params=1"), RedactionRule.parse(r"value=^tok_")]
    with recording(trace, redact=rules):
        conn = sqlite3.connect("r.db")
        conn.execute("CREATE TABLE users (id, email, token)")
        conn.execute("INSERT INTO users VALUES (?, ?, ?)", (1, "a@example.com", "tok_secret1"))
        conn.execute("INSERT INTO users VALUES (?, ?, ?)", (2, "a@example.com", "public"))
        conn.execute("SELECT * FROM users WHERE email = ?", ("a@example.com",))
        conn.commit()
        conn.close()
    text = trace.read_text()
    assert "tok_secret1" not in text
    params = [e.params for e in TraceReader(trace) if e.op == "execute" and isinstance(e.params, tuple) and e.params]
    first, second, select = params
    assert first[0] == 1 and first[1] != "a@example.com" and first[2] != "tok_secret1"
    assert first[1] == second[1]  # equal values stay equal: joins and uniqueness replay the same
    assert second[2] == "public"
    assert select == ("a@example.com",)  # the rule is scoped to INSERT INTO users


def test_redaction_keeps_storage_class() -> None:
    redactor = Redactor([RedactionRule(sql="x")])
    out = redactor.apply("x", [1, 1.5, "s", b"b", None])
    assert [type(v) for v in out] == [int, float, str, bytes, type(None)]
    assert out[0] != 1 and out[2].startswith("redacted:")
    named = redactor.apply("x", {"a": "s"})
    assert isinstance(named, dict) and named["a"] == out[2]


def test_redaction_rule_parse() -> None:
    with pytest.raises(Exception, match=r"unterminated|missing"):
        RedactionRule.parse("value=(")
    with pytest.raises(ValueError, match="expected sql=REGEX"):
        RedactionRule.parse("sql=x;colour=red")
    rule = RedactionRule.parse("sql=UPDATE accounts SET email = :email;params=0,:email")
    assert rule.params == (0, "email") and rule.sql == "UPDATE accounts SET email = :email"
    assert RedactionRule.parse(rule.spec()) == rule
    assert RedactionRule.parse("INSERT INTO secrets") == RedactionRule(sql="INSERT INTO secrets")


def test_remote_url_credentials_never_reach_the_trace(tmp_path: Path) -> None:
    """A libsql URL may carry ``?authToken=`` or user info; the trace keeps only scheme, host and path."""
    from pytest_traceparity.trace.format import TraceWriter
    from pytest_traceparity.trace.recorder import Recorder

    trace = tmp_path / "t.jsonl"
    writer = TraceWriter(trace)
    rec = Recorder(writer, base_dir=str(tmp_path))
    rec.open("libsql", "libsql://user:pw-secret@db.example.turso.io?authToken=tok-secret")
    rec.open("libsql", "http://127.0.0.1:8080/?authToken=tok-secret")
    writer.close()
    text = trace.read_text()
    assert "secret" not in text
    assert "db.example.turso.io" in text and "127.0.0.1:8080" in text
