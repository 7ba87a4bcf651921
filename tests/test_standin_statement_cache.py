"""Inside a transaction a stream reuses its prepared statements; nothing of that may show.

sqld prepares each statement it runs. The stand-in keeps up to 16 prepared statements per
stream connection while a transaction is open (ffi.Connection.prepare_cached), so a kept
statement must answer like a freshly prepared one: after this stream's own DDL in the
transaction, after it ends and another stream changes the schema, with new bindings and
after errors. Raw Hrana over urllib, server in-process (see test_standin_protocol).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_standin_protocol import Client, ok

from pytest_traceparity.servers.standin import StandinServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StandinServer]:
    with StandinServer(db_dir=tmp_path / "db") as srv:
        yield srv


def describe(client: Client, sql: str) -> dict[str, Any]:
    [result] = client.send({"type": "describe", "sql": sql})
    return ok(result)["result"]  # type: ignore[no-any-return]


def cols(client: Client, sql: str) -> list[str]:
    return [c["name"] for c in ok(client.execute(sql))["result"]["cols"]]


def test_a_schema_change_inside_the_transaction_is_seen_by_kept_statements(server: StandinServer) -> None:
    client = Client(server.url)
    ok(client.execute("CREATE TABLE t(a INTEGER)"))
    ok(client.execute("BEGIN"))
    sql = "SELECT * FROM t"
    assert cols(client, sql) == ["a"]
    assert [c["name"] for c in describe(client, sql)["cols"]] == ["a"]
    assert cols(client, sql) == ["a"]  # kept now
    ok(client.execute("ALTER TABLE t ADD COLUMN b TEXT"))
    assert [(c["name"], c["decltype"]) for c in describe(client, sql)["cols"]] == [("a", "INTEGER"), ("b", "TEXT")]
    assert cols(client, sql) == ["a", "b"]
    ok(client.execute("SAVEPOINT s"))
    ok(client.execute("ALTER TABLE t ADD COLUMN c"))
    assert cols(client, sql) == ["a", "b", "c"]
    ok(client.execute("ROLLBACK TO s"))
    assert cols(client, sql) == ["a", "b"]
    ok(client.execute("COMMIT"))


def test_kept_statements_end_with_their_transaction(server: StandinServer) -> None:
    setup = Client(server.url)
    ok(setup.execute("CREATE TABLE t(a INTEGER)"))
    reader = Client(server.url)
    sql = "SELECT * FROM t"
    ok(reader.execute("BEGIN"))
    assert cols(reader, sql) == ["a"]
    assert [c["name"] for c in describe(reader, sql)["cols"]] == ["a"]
    ok(reader.execute("COMMIT"))
    ok(setup.execute("ALTER TABLE t ADD COLUMN b TEXT"))
    ok(reader.execute("BEGIN"))
    assert cols(reader, "SELECT count(*) FROM t") == ["count(*)"]  # the new snapshot
    assert [c["name"] for c in describe(reader, sql)["cols"]] == ["a", "b"]
    assert cols(reader, sql) == ["a", "b"]
    ok(reader.execute("ROLLBACK"))


def test_kept_statements_start_without_bindings_and_survive_errors(server: StandinServer) -> None:
    client = Client(server.url)
    ok(client.execute("CREATE TABLE u(a UNIQUE)"))
    ok(client.execute("BEGIN"))
    insert = "INSERT INTO u VALUES (?)"
    ok(client.execute(insert, 1))
    dup = client.execute(insert, 1)
    assert dup["type"] == "error" and dup["error"]["code"] == "SQLITE_CONSTRAINT"
    ok(client.execute(insert, 2))
    # an explain statement binds nothing: a kept one must not carry the last values
    select = "SELECT ?1, ?2"
    assert [v["type"] for v in ok(client.execute(select, 5, 6))["result"]["rows"][0]] == ["integer", "integer"]
    assert ok(client.execute("EXPLAIN " + select))["result"]["rows"]
    rows = ok(client.execute("SELECT a FROM u ORDER BY a"))["result"]["rows"]
    assert [r[0]["value"] for r in rows] == ["1", "2"]
    # DROP TABLE is not blocked by statements kept (reset) on this connection
    ok(client.execute("DROP TABLE u"))
    gone = client.execute(insert, 3)
    assert gone["type"] == "error" and "no such table" in gone["error"]["message"]
    ok(client.execute("COMMIT"))
