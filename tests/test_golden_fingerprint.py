"""Schema fingerprint and content digests: SQL-only, so the same on every backend; diffs name objects."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_traceparity.backends.base import BackendContext
from pytest_traceparity.backends.facade import DB
from pytest_traceparity.cli_db import diff_main, fingerprint_main
from pytest_traceparity.fingerprint import diff_content, diff_schemas, digest_rows, snapshot
from pytest_traceparity.registry import standalone_registry
from pytest_traceparity.values import Result, SqlValue

SCHEMA = """
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, score REAL DEFAULT 1.5);
CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
                    body TEXT, CHECK (length(body) < 500));
CREATE INDEX idx_posts_user ON posts (user_id DESC, body COLLATE NOCASE) WHERE body IS NOT NULL;
CREATE VIEW v_posts AS SELECT u.email, p.body FROM posts p JOIN users u ON u.id = p.user_id;
CREATE TRIGGER trg AFTER DELETE ON users BEGIN DELETE FROM posts WHERE user_id = old.id; END;
CREATE VIRTUAL TABLE docs USING fts5(title, body);
INSERT INTO users (email) VALUES ('a@x'), ('b@x');
INSERT INTO posts (user_id, body) VALUES (1, 'hello'), (2, 'world');
INSERT INTO docs VALUES ('t', 'some words');
"""


@pytest.fixture(params=["sqlalchemy-sqlite", "libsql-local"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DB]:
    backend = standalone_registry().get(request.param)
    reason = backend.unavailable_reason()
    if reason:
        pytest.skip(f"{request.param} cannot run here: {reason}")
    database = DB(backend, BackendContext(workdir=tmp_path, name="fp"))
    yield database
    database.close()


def test_fingerprint_is_identical_across_backends(db: DB, tmp_path: Path) -> None:
    db.executescript(SCHEMA)
    got = snapshot(lambda sql: db.execute(sql))
    reference = sqlite3.connect(tmp_path / "ref.db", isolation_level=None)
    reference.executescript(SCHEMA)

    def run(sql: str) -> Result:
        cur = reference.execute(sql)
        return Result(columns=tuple(d[0] for d in cur.description or ()), rows=[tuple(r) for r in cur.fetchall()])

    want = snapshot(run)
    reference.close()
    assert got["schema_sha256"] == want["schema_sha256"]
    assert got["content"] == want["content"]
    schema = got["schema"]
    assert set(schema["tables"]) == {"users", "posts", "sqlite_sequence"}  # FTS shadow tables are left out
    assert set(schema["virtual_tables"]) == {"docs"}
    assert schema["indexes"]["idx_posts_user"]["partial"] is True
    assert schema["indexes"]["idx_posts_user"]["columns"][0] == {"name": "user_id", "desc": True, "coll": "BINARY"}
    assert schema["tables"]["posts"]["foreign_keys"][0]["on_delete"] == "CASCADE"
    assert "sqlite_sequence" in got["content"] and got["content"]["docs"]["rows"] == 1


def test_schema_diff_names_objects() -> None:
    base = {
        "tables": {"t": {"columns": [{"name": "a", "type": "INTEGER", "notnull": False}], "sql": "x"}},
        "indexes": {"i": {"unique": False}},
        "views": {"v": {"sql": "SELECT 1"}},
        "triggers": {},
    }
    other = {
        "tables": {
            "t": {
                "columns": [
                    {"name": "a", "type": "TEXT", "notnull": False},
                    {"name": "b", "type": "", "notnull": False},
                ],
                "sql": "x",
            }
        },
        "indexes": {"i": {"unique": True}},
        "views": {},
        "triggers": {"g": {"sql": "..."}},
    }
    lines = diff_schemas(base, other)
    assert "table 't' differs: column 'a' (type 'INTEGER' != 'TEXT'); column 'b' unexpected" in lines
    assert "index 'i' differs: unique False != True" in lines
    assert "view 'v' is missing" in lines
    assert "trigger 'g' is unexpected" in lines


def test_content_digest_ignores_order_but_not_types() -> None:
    rows: list[tuple[SqlValue, ...]] = [(1, "a", None), (2, "b", b"\x00")]
    assert digest_rows(Result(rows=rows)) == digest_rows(Result(rows=list(reversed(rows))))
    assert digest_rows(Result(rows=[(1,)])) != digest_rows(Result(rows=[(1.0,)]))
    assert digest_rows(Result(rows=[(1,), (1,)])) != digest_rows(Result(rows=[(1,)]))  # multiset, not set
    lines = diff_content(
        {"t": {"rows": 2, "sha256": "a"}, "u": {"rows": 1, "sha256": "b"}},
        {"t": {"rows": 3, "sha256": "c"}, "u": {"rows": 1, "sha256": "d"}},
    )
    assert lines[0] == "table 't' has 3 row(s), expected 2"
    assert lines[1].startswith("table 'u' rows differ in value or type (same count 1")


def _make_db(path: Path, extra: str = "") -> Path:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SCHEMA + extra)
    conn.close()
    return path


def test_cli_fingerprint_and_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _make_db(tmp_path / "a.db")
    b = _make_db(tmp_path / "b.db", "ALTER TABLE users ADD COLUMN nick TEXT; INSERT INTO users (email) VALUES ('c@x');")
    assert fingerprint_main([str(a), "--content"]) == 0
    out = capsys.readouterr().out
    assert out.split()[0] == snapshot_of(a)["schema_sha256"]
    assert "3 tables, 1 indexes, 1 views, 1 triggers, 1 virtual tables" in out
    assert "users: 2 row(s)" in out
    assert diff_main([str(a), str(a)]) == 0
    assert diff_main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "schema: table 'users' differs: column 'nick' unexpected" in out
    assert "content: table 'users' has 3 row(s), expected 2" in out


def snapshot_of(path: Path) -> dict[str, Any]:
    from pytest_traceparity.cli_db import database_snapshot

    return database_snapshot(str(path))


@pytest.mark.parametrize("which", ["missing", "not-sqlite", "mixed"])
def test_cli_bad_input_is_one_clear_line(which: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _make_db(tmp_path / "a.db")
    junk = tmp_path / "junk.txt"
    junk.write_text("hello")
    if which == "missing":
        code, needle = fingerprint_main([str(tmp_path / "nope.db")]), "no such database file"
    elif which == "not-sqlite":
        code, needle = fingerprint_main([str(junk)]), "not an SQLite database"
    else:
        code, needle = diff_main([str(a), str(junk)]), "give two database files, two golden files or two traces"
    err = capsys.readouterr().err
    assert code == 2 and needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
