"""Stand-in behaviours checked against sqld's source (tursodatabase/libsql, libsql-server/).

Each test names the sqld file that defines what it asserts. Raw Hrana over HTTP here;
tests/test_standin_clients.py drives the same behaviours through the real clients.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_traceparity.servers.standin import StandinServer

TXN_TIMEOUT = 0.5  # sqld: 5 s; configurable so this runs fast


def post(url: str, body: Any) -> tuple[int, Any, str]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw, status, ctype = resp.read(), resp.status, resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        raw, status, ctype = err.read(), err.code, err.headers.get("Content-Type", "")
    try:
        return status, json.loads(raw), ctype
    except ValueError:
        return status, raw.decode(), ctype


class Stream:
    def __init__(self, url: str) -> None:
        self.url, self.baton = url, None

    def send(self, *requests: dict[str, Any]) -> list[dict[str, Any]]:
        status, body, _ = post(f"{self.url}/v3/pipeline", {"baton": self.baton, "requests": list(requests)})
        assert status == 200, body
        self.baton = body["baton"]
        return list(body["results"])

    def execute(self, sql: str) -> dict[str, Any]:
        return self.send({"type": "execute", "stmt": {"sql": sql}})[0]


def rows(result: dict[str, Any]) -> list[list[Any]]:
    assert result["type"] == "ok", result
    return [[v.get("value") for v in row] for row in result["response"]["result"]["rows"]]


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[StandinServer]:
    with StandinServer(db_dir=tmp_path / "db", txn_timeout=TXN_TIMEOUT, max_response_size=20_000) as srv:
        yield srv


def test_waiting_writer_takes_the_lock_and_the_holder_times_out(server: StandinServer) -> None:
    """libsql-server/src/connection/libsql.rs: busy_handler steals after TXN_TIMEOUT."""
    holder, waiter = Stream(server.url), Stream(server.url)
    assert holder.execute("CREATE TABLE t(v)")["type"] == "ok"
    assert holder.execute("BEGIN IMMEDIATE")["type"] == "ok"
    assert holder.execute("INSERT INTO t VALUES (1)")["type"] == "ok"
    started = time.monotonic()
    result = waiter.execute("INSERT INTO t VALUES (2)")
    waited = time.monotonic() - started
    assert result["type"] == "ok", result  # not "database is locked"
    assert TXN_TIMEOUT * 0.5 <= waited < TXN_TIMEOUT + 3
    commit = holder.execute("COMMIT")
    assert commit == {"type": "error", "error": {"message": "Transaction timed out", "code": "TRANSACTION_TIMEOUT"}}
    # the holder was rolled back; its stream lives on in autocommit
    assert rows(holder.execute("SELECT v FROM t ORDER BY v")) == [["2"]]
    assert holder.send({"type": "get_autocommit"})[0]["response"]["is_autocommit"] is True


def test_holder_past_its_time_times_out_without_a_waiter(server: StandinServer) -> None:
    """connection/libsql.rs: a slot past expires_at fails the next program (test txn_timeout_no_stealing)."""
    holder = Stream(server.url)
    holder.execute("CREATE TABLE t(v)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    time.sleep(TXN_TIMEOUT + 0.2)
    [first, second] = holder.send(
        {
            "type": "batch",
            "batch": {"steps": [{"stmt": {"sql": "INSERT INTO t VALUES (2)"}}, {"stmt": {"sql": "SELECT 1"}}]},
        },
        {"type": "execute", "stmt": {"sql": "SELECT count(*) FROM t"}},
    )
    errors = first["response"]["result"]["step_errors"]
    assert [e and e["code"] for e in errors] == ["TRANSACTION_TIMEOUT", "TRANSACTION_TIMEOUT"]
    assert rows(second) == [["0"]]  # a new program runs normally, after the rollback


def test_two_waiters_and_one_holder_never_deadlock(server: StandinServer) -> None:
    Stream(server.url).execute("CREATE TABLE t(v)")
    holder = Stream(server.url)
    holder.execute("BEGIN IMMEDIATE")
    results: list[dict[str, Any]] = []

    def write(v: int) -> None:
        results.append(Stream(server.url).execute(f"INSERT INTO t VALUES ({v})"))

    threads = [threading.Thread(target=write, args=(v,)) for v in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert [r["type"] for r in results] == ["ok", "ok"]


def test_error_condition_on_a_skipped_step_is_true(server: StandinServer) -> None:
    """libsql-server/src/connection/program.rs: a skipped step is recorded as not ok."""
    s = Stream(server.url)
    [result] = s.send(
        {
            "type": "batch",
            "batch": {
                "steps": [
                    {"stmt": {"sql": "SELECT 1"}},
                    {"condition": {"type": "not", "cond": {"type": "ok", "step": 0}}, "stmt": {"sql": "SELECT 2"}},
                    {"condition": {"type": "error", "step": 1}, "stmt": {"sql": "SELECT 'error on skipped'"}},
                    {"condition": {"type": "ok", "step": 1}, "stmt": {"sql": "SELECT 'ok on skipped'"}},
                ]
            },
        }
    )
    steps = result["response"]["result"]["step_results"]
    assert steps[1] is None and steps[3] is None
    assert steps[2]["rows"] == [[{"type": "text", "value": "error on skipped"}]]


def test_sequence_with_a_late_syntax_error_runs_nothing(server: StandinServer) -> None:
    """libsql-server/src/hrana/stmt.rs + query_analysis.rs: the whole text is parsed first."""
    s = Stream(server.url)
    [seq] = s.send({"type": "sequence", "sql": "CREATE TABLE t(v); INSERT INTO t VALUES (1); INSERT INTO t VALUES ("})
    assert seq["type"] == "error" and seq["error"]["code"] == "SQL_PARSE_ERROR"
    missing = s.execute("SELECT * FROM t")
    assert missing["type"] == "error" and "no such table" in missing["error"]["message"]


def test_response_size_limit(server: StandinServer) -> None:
    """libsql-server/src/hrana/result_builder.rs: RESPONSE_TOO_LARGE past --max-response-size."""
    s = Stream(server.url)
    big = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000) SELECT x, 'pad' FROM c"
    result = s.execute(big)
    assert result == {"type": "error", "error": {"message": "Response is too large", "code": "RESPONSE_TOO_LARGE"}}
    assert rows(s.execute("SELECT 1")) == [["1"]]  # the stream lives on
    [batch] = s.send({"type": "batch", "batch": {"steps": [{"stmt": {"sql": "SELECT 1"}}, {"stmt": {"sql": big}}]}})
    assert batch["type"] == "error" and batch["error"]["code"] == "RESPONSE_TOO_LARGE"
    # a cursor streams its rows: no limit there
    status, body, _ = post(f"{server.url}/v3/cursor", {"baton": None, "batch": {"steps": [{"stmt": {"sql": big}}]}})
    assert status == 200
    assert sum(json.loads(line).get("type") == "row" for line in body.splitlines()) == 2000


def test_protocol_errors_are_plain_text(server: StandinServer) -> None:
    """libsql-server/src/hrana/http/mod.rs: protocol_error_response is 400 text/plain."""
    status, body, ctype = post(f"{server.url}/v3/pipeline", {"baton": "garbage", "requests": []})
    assert (status, body, ctype) == (400, "Received an invalid baton", "text/plain")


def test_cursor_ends_with_the_replication_index(server: StandinServer) -> None:
    """libsql-server/src/hrana/cursor.rs: finish() emits a replication_index entry."""
    batch = {"steps": [{"stmt": {"sql": "SELECT 1"}}]}
    status, body, _ = post(f"{server.url}/v3/cursor", {"baton": None, "batch": batch})
    assert status == 200
    last = json.loads(body.splitlines()[-1])
    assert last == {"type": "replication_index", "replication_index": None}


def test_unaliased_column_names_are_sqlite_s(server: StandinServer) -> None:
    """A documented difference: sqld runs re-serialised SQL (query_analysis.rs, Statement::parse
    keeps ``c.to_string()`` except for a lone CREATE TABLE), so a name such as ``count(*)`` can
    come back re-spelled (upstream issues #666, #1329). The stand-in runs the text as sent,
    and names columns as SQLite does (README: "Where the stand-in differs")."""
    s = Stream(server.url)
    s.execute("CREATE TABLE t(a)")
    result = s.execute("SELECT count(*), a+1, max( a ) FROM t")
    names = [c["name"] for c in result["response"]["result"]["cols"]]
    assert names == ["count(*)", "a+1", "max( a )"]
