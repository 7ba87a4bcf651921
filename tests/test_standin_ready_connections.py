"""Connections opened ahead for new streams behave exactly like connections opened on demand.

sqld opens a fresh SQLite connection for every Hrana stream (libsql-server/src/hrana/http/
stream.rs, ``acquire``); the stand-in opens a few ahead, off the request path. A connection
opened ahead must not carry anything from before its stream started: not the schema (SQLite
resolves REINDEX and PRAGMA names against the schema it read last), not ``changes()`` or
``last_insert_rowid()``. Raw Hrana over urllib, server in-process (see test_standin_protocol).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_standin_protocol import Client, ok

from pytest_traceparity.servers.standin import StandinServer
from pytest_traceparity.servers.standin.database import READY_CONNECTIONS, Database


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StandinServer]:
    with StandinServer(db_dir=tmp_path / "db") as srv:
        yield srv


def wait_ready(db: Database) -> None:
    deadline = time.monotonic() + 10
    while len(db._ready) < READY_CONNECTIONS and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(db._ready) == READY_CONNECTIONS, "the namespace never opened its connections ahead"


def one_shot(base: str, *sqls: str) -> list[dict[str, Any]]:
    """A new stream running ``sqls``, then closed."""
    client = Client(base)
    results = client.send(*({"type": "execute", "stmt": {"sql": s}} for s in sqls), {"type": "close"})
    return [ok(r) for r in results[:-1]]


def rows(response: dict[str, Any]) -> list[list[Any]]:
    return [[v.get("value") for v in row] for row in response["result"]["rows"]]


def test_connections_opened_ahead_see_schema_created_after_they_opened(server: StandinServer) -> None:
    server.create_namespace("fresh")
    base = server.url_for("fresh")
    one_shot(base, "SELECT 1")  # the first stream makes the namespace open connections ahead
    wait_ready(server.namespaces.get("fresh"))
    one_shot(
        base,
        "CREATE TABLE t(a COLLATE NOCASE)",
        "CREATE INDEX t_a ON t(a)",
        "CREATE TABLE p(id INTEGER PRIMARY KEY)",
        "CREATE TABLE child(p REFERENCES p(id))",
        "PRAGMA foreign_keys=OFF",
        "INSERT INTO child VALUES (1)",
    )
    # each of these runs on a connection that was opened before the tables existed
    assert one_shot(base, "REINDEX t")[0]["type"] == "execute"
    assert rows(one_shot(base, "PRAGMA foreign_key_check")[0]) == [["child", "1", "p", "0"]]
    assert rows(one_shot(base, "SELECT name FROM pragma_index_list('t')")[0]) == [["t_a"]]


def test_connections_opened_ahead_start_with_fresh_counters(server: StandinServer) -> None:
    base = server.url
    one_shot(base, "CREATE TABLE n(a)")
    wait_ready(server.namespaces.get("default"))
    one_shot(base, "INSERT INTO n VALUES (1)", "INSERT INTO n VALUES (2)")
    [changes] = one_shot(base, "SELECT changes(), last_insert_rowid(), total_changes()")
    assert rows(changes) == [["0", "0", "0"]]


def test_deleting_a_namespace_closes_its_connections_opened_ahead(server: StandinServer) -> None:
    server.create_namespace("gone")
    one_shot(server.url_for("gone"), "SELECT 1")
    db = server.namespaces.get("gone")
    wait_ready(db)
    ready = list(db._ready)
    server.delete_namespace("gone")
    assert db._ready == [] and all(conn.closed for conn in ready)


def fresh_data_version(path: Path) -> str:
    """``PRAGMA data_version`` of a connection opened now (the value counts the changes by
    other connections it has seen, so it tells a connection opened long ago apart)."""
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA data_version").fetchone()[0])
    finally:
        conn.close()


def test_a_new_stream_shows_the_data_version_of_a_connection_opened_now(server: StandinServer) -> None:
    base = server.url
    writer = Client(base)  # a stream of its own: its commits are another connection's
    ok(writer.send({"type": "execute", "stmt": {"sql": "CREATE TABLE n(a)"}})[0])
    db = server.namespaces.get("default")
    wait_ready(db)
    expected = fresh_data_version(db.path)
    for n in range(20):
        # a stream ends (a warm connection may be readied for the next), then another
        # connection commits before the next stream starts
        one_shot(base, "SELECT 1")
        if n % 2:
            ok(writer.send({"type": "execute", "stmt": {"sql": f"INSERT INTO n VALUES ({n})"}})[0])
        [version] = one_shot(base, "PRAGMA data_version")
        assert rows(version) == [[expected]], f"round {n}"
