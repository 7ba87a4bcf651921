"""Raw Hrana-over-HTTP tests of the stand-in (urllib, no client library in between).

The server runs in-process: urllib releases the GIL while it waits, so that is safe here
(the libsql client does not, see test_standin_client.py).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_traceparity.servers.standin import STANDIN_VERSION, StandinServer


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    token: str | None = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, str]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "")


class Client:
    """A tiny Hrana client: one stream, batons carried along."""

    def __init__(self, base: str, version: int = 3, token: str | None = None) -> None:
        self.base, self.version, self.token = base, version, token
        self.baton: str | None = None

    def send(self, *requests: dict[str, Any]) -> list[dict[str, Any]]:
        status, body, ctype = http(
            "POST",
            f"{self.base}/v{self.version}/pipeline",
            {"baton": self.baton, "requests": list(requests)},
            token=self.token,
        )
        assert status == 200, body
        assert ctype.startswith("application/json")
        payload = json.loads(body)
        assert payload["base_url"] is None
        self.baton = payload["baton"]
        results: list[dict[str, Any]] = payload["results"]
        return results

    def execute(self, sql: str, *args: Any, **named: Any) -> dict[str, Any]:
        stmt: dict[str, Any] = {"sql": sql, "args": [value(a) for a in args]}
        if named:
            stmt["named_args"] = [{"name": k, "value": value(v)} for k, v in named.items()]
        [result] = self.send({"type": "execute", "stmt": stmt})
        return result


def value(v: Any) -> dict[str, Any]:
    if v is None:
        return {"type": "null"}
    if isinstance(v, int):
        return {"type": "integer", "value": str(v)}
    if isinstance(v, float):
        return {"type": "float", "value": v}
    if isinstance(v, str):
        return {"type": "text", "value": v}
    return {"type": "blob", "base64": base64.b64encode(v).decode()}


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result["type"] == "ok", result
    response: dict[str, Any] = result["response"]
    return response


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinServer]:
    with StandinServer(db_dir=tmp_path_factory.mktemp("standin"), stream_expiry=0.6) as srv:
        yield srv


@pytest.fixture
def ns(server: StandinServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test; yields the base URL (path-routed)."""
    name = "t" + str(abs(hash(request.node.nodeid)) % 10**10)
    server.create_namespace(name)
    yield server.url_for(name)
    server.delete_namespace(name)


def test_health_version_and_probes(server: StandinServer) -> None:
    assert http("GET", f"{server.url}/health")[:2] == (200, b"")
    status, body, _ = http("GET", f"{server.url}/version")
    assert status == 200 and body.decode().startswith(f"traceparity-standin {STANDIN_VERSION}")
    for probe in ("/v2", "/v3"):
        assert http("GET", server.url + probe)[0] == 200
    assert http("GET", f"{server.url}/v3-protobuf")[0] == 404


def test_values_round_trip_exactly(ns: str) -> None:
    c = Client(ns)
    ok(c.execute("CREATE TABLE t(i INTEGER, r REAL, s TEXT, b BLOB, n)"))
    big = 2**63 - 1
    ins = ok(c.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", big, 0.1, "héllo ☃ \x00x", b"\x00\xff", None))
    assert ins["result"]["affected_row_count"] == 1
    assert ins["result"]["last_insert_rowid"] == "1"
    res = ok(c.execute("SELECT i, r, s, b, n, -9223372036854775808 FROM t"))["result"]
    assert [col["decltype"] for col in res["cols"]] == ["INTEGER", "REAL", "TEXT", "BLOB", None, None]
    assert res["rows"] == [
        [
            {"type": "integer", "value": str(big)},
            {"type": "float", "value": 0.1},
            {"type": "text", "value": "héllo ☃ \x00x"},
            {"type": "blob", "base64": "AP8"},  # sqld writes base64 without padding
            {"type": "null"},
            {"type": "integer", "value": "-9223372036854775808"},
        ]
    ]
    assert res["affected_row_count"] == 0 and res["last_insert_rowid"] is None
    assert {"rows_read", "rows_written", "query_duration_ms", "replication_index"} <= set(res)


def test_padded_and_unpadded_base64_accepted(ns: str) -> None:
    c = Client(ns)
    for encoded in ("AP8=", "AP8"):
        [r] = c.send(
            {"type": "execute", "stmt": {"sql": "SELECT hex(?)", "args": [{"type": "blob", "base64": encoded}]}}
        )
        assert ok(r)["result"]["rows"] == [[{"type": "text", "value": "00FF"}]]


def test_named_and_positional_args(ns: str) -> None:
    c = Client(ns)
    res = ok(c.execute("SELECT :a, @b, $c", a=1, b="x", c=None))["result"]
    assert res["rows"][0] == [value(1), value("x"), value(None)]
    prefixed = ok(
        c.send({"type": "execute", "stmt": {"sql": "SELECT :a", "named_args": [{"name": ":a", "value": value(7)}]}})[0]
    )
    assert prefixed["result"]["rows"] == [[value(7)]]
    numbered = ok(c.execute("SELECT ?2, ?1", "one", "two"))["result"]
    assert numbered["rows"] == [[value("two"), value("one")]]
    too_many = c.execute("SELECT ?", 1, 2)
    assert too_many["type"] == "error" and too_many["error"]["code"] == "ARGS_INVALID"
    missing = c.execute("SELECT ?, ?", 1)
    assert missing["error"]["code"] == "ARGS_INVALID"
    both = c.send(
        {
            "type": "execute",
            "stmt": {"sql": "SELECT ?", "args": [value(1)], "named_args": [{"name": "a", "value": value(1)}]},
        }
    )[0]
    assert both["error"]["code"] == "ARGS_BOTH_POSITIONAL_AND_NAMED"


def test_want_rows_false_and_changes_only_for_iud(ns: str) -> None:
    c = Client(ns)
    ok(c.execute("CREATE TABLE t(x)"))
    ok(c.execute("INSERT INTO t VALUES (1), (2), (3)"))
    [r] = c.send({"type": "execute", "stmt": {"sql": "SELECT x FROM t", "want_rows": False}})
    res = ok(r)["result"]
    assert res["rows"] == [] and [col["name"] for col in res["cols"]] == ["x"]
    assert res["affected_row_count"] == 0  # not the previous INSERT's count
    upd = ok(c.execute("UPDATE t SET x = x + 1 WHERE x > 1"))["result"]
    assert upd["affected_row_count"] == 2 and upd["last_insert_rowid"] is None
    cte = ok(c.execute("WITH v(a) AS (SELECT 9) INSERT INTO t SELECT a FROM v"))["result"]
    assert cte["affected_row_count"] == 1 and cte["last_insert_rowid"] == "4"


def test_transaction_survives_across_requests_and_rolls_back(ns: str) -> None:
    c = Client(ns)
    other = Client(ns)
    ok(c.execute("CREATE TABLE t(x)"))
    ok(c.execute("BEGIN"))
    assert ok(c.send({"type": "get_autocommit"})[0])["is_autocommit"] is False
    ok(c.execute("INSERT INTO t VALUES (1)"))
    # another stream does not see the uncommitted row (WAL snapshot isolation)
    assert ok(other.execute("SELECT count(*) FROM t"))["result"]["rows"] == [[value(0)]]
    assert ok(c.execute("SELECT count(*) FROM t"))["result"]["rows"] == [[value(1)]]
    ok(c.execute("ROLLBACK"))
    assert ok(c.send({"type": "get_autocommit"})[0])["is_autocommit"] is True
    ok(c.execute("BEGIN"))
    ok(c.execute("INSERT INTO t VALUES (2)"))
    ok(c.execute("COMMIT"))
    assert ok(other.execute("SELECT x FROM t"))["result"]["rows"] == [[value(2)]]


def test_baton_rules(ns: str) -> None:
    c = Client(ns)
    ok(c.execute("SELECT 1"))
    old = c.baton
    ok(c.execute("SELECT 2"))
    assert c.baton != old
    status, body, ctype = http("POST", f"{ns}/v3/pipeline", {"baton": old, "requests": []})
    assert status == 400 and ctype == "text/plain"  # like sqld: libsql-server/src/hrana/http/mod.rs
    assert body.decode() == "Received a baton that has already been used"
    status, body, _ = http("POST", f"{ns}/v3/pipeline", {"baton": "not-a-baton", "requests": []})
    assert status == 400 and body.decode() == "Received an invalid baton"
    [closed] = c.send({"type": "close"})
    assert ok(closed) == {"type": "close"} and c.baton is None


def test_requests_after_close_in_same_pipeline_fail_the_request(ns: str) -> None:
    status, body, _ = http(
        "POST",
        f"{ns}/v3/pipeline",
        {"baton": None, "requests": [{"type": "close"}, {"type": "execute", "stmt": {"sql": "SELECT 1"}}]},
    )
    assert status == 400 and body.decode() == "Stream for this baton was closed"


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_stream_expiry_rolls_back_and_reports_expired(tmp_path: Path) -> None:
    clock = FakeClock()
    with StandinServer(db_dir=tmp_path, stream_expiry=10.0) as srv:
        srv.streams.clock = clock
        srv.create_namespace("exp")
        ns = srv.url_for("exp")
        c = Client(ns)
        ok(c.execute("CREATE TABLE t(x)"))
        ok(c.execute("BEGIN"))
        ok(c.execute("INSERT INTO t VALUES (1)"))
        clock.now += 9.9  # not yet: the stream lives on, its transaction still open
        ok(c.execute("INSERT INTO t VALUES (2)"))
        baton = c.baton
        clock.now += 10.0
        status, body, _ = http("POST", f"{ns}/v3/pipeline", {"baton": baton, "requests": []})
        assert status == 400 and json.loads(body)["code"] == "STREAM_EXPIRED"
        fresh = Client(ns)
        assert ok(fresh.execute("SELECT count(*) FROM t"))["result"]["rows"] == [[value(0)]]
        ok(fresh.execute("INSERT INTO t VALUES (5)"))  # the expired stream's write lock is gone


def test_batch_conditions(ns: str) -> None:
    c = Client(ns)
    ok(c.execute("CREATE TABLE t(x UNIQUE)"))

    def stmt(sql: str) -> dict[str, Any]:
        return {"sql": sql}

    steps = [
        {"stmt": stmt("BEGIN")},
        {"condition": {"type": "ok", "step": 0}, "stmt": stmt("INSERT INTO t VALUES (1)")},
        {"condition": {"type": "ok", "step": 1}, "stmt": stmt("INSERT INTO t VALUES (1)")},  # fails
        {"condition": {"type": "error", "step": 2}, "stmt": stmt("SELECT 'saw error'")},
        {"condition": {"type": "not", "cond": {"type": "ok", "step": 2}}, "stmt": stmt("SELECT 'not ok'")},
        {
            "condition": {"type": "and", "conds": [{"type": "ok", "step": 1}, {"type": "ok", "step": 2}]},
            "stmt": stmt("SELECT 'and'"),
        },
        {
            "condition": {"type": "or", "conds": [{"type": "ok", "step": 2}, {"type": "ok", "step": 3}]},
            "stmt": stmt("SELECT 'or'"),
        },
        {"condition": {"type": "is_autocommit"}, "stmt": stmt("SELECT 'autocommit'")},
        {"condition": {"type": "not", "cond": {"type": "is_autocommit"}}, "stmt": stmt("ROLLBACK")},
        {"condition": {"type": "is_autocommit"}, "stmt": stmt("SELECT count(*) FROM t")},
        {"condition": {"type": "and", "conds": []}, "stmt": stmt("SELECT 'empty and'")},
        {"condition": {"type": "or", "conds": []}, "stmt": stmt("SELECT 'empty or'")},
    ]
    [r] = c.send({"type": "batch", "batch": {"steps": steps}})
    result = ok(r)["result"]
    executed = [i for i, res in enumerate(result["step_results"]) if res is not None]
    errored = [i for i, err in enumerate(result["step_errors"]) if err is not None]
    assert executed == [0, 1, 3, 4, 6, 8, 9, 10]
    assert errored == [2]
    assert result["step_errors"][2]["code"] == "SQLITE_CONSTRAINT"
    assert "UNIQUE constraint failed" in result["step_errors"][2]["message"]
    assert result["step_results"][9]["rows"] == [[value(0)]]  # the ROLLBACK undid step 1


def test_batch_condition_on_later_step_is_a_protocol_error(ns: str) -> None:
    status, body, _ = http(
        "POST",
        f"{ns}/v3/pipeline",
        {
            "baton": None,
            "requests": [
                {
                    "type": "batch",
                    "batch": {"steps": [{"condition": {"type": "ok", "step": 0}, "stmt": {"sql": "SELECT 1"}}]},
                }
            ],
        },
    )
    assert status == 400 and body.decode() == "Invalid reference to step in a batch condition"


def test_hrana2_rejects_v3_only_features(ns: str) -> None:
    c = Client(ns, version=2)
    ok(c.execute("SELECT 1"))
    for requests in (
        [{"type": "get_autocommit"}],
        [
            {
                "type": "batch",
                "batch": {"steps": [{"condition": {"type": "is_autocommit"}, "stmt": {"sql": "SELECT 1"}}]},
            }
        ],
    ):
        status, body, _ = http("POST", f"{ns}/v2/pipeline", {"baton": None, "requests": requests})
        assert status == 400 and "only supported in protocol version hrana3" in body.decode()


def test_cursor_streams_entries(ns: str) -> None:
    c = Client(ns)
    ok(c.execute("CREATE TABLE t(x INTEGER UNIQUE)"))
    batch = {
        "steps": [
            {"stmt": {"sql": "INSERT INTO t VALUES (1), (2)"}},
            {"stmt": {"sql": "SELECT x FROM t ORDER BY x"}},
            {"condition": {"type": "error", "step": 1}, "stmt": {"sql": "SELECT 'skipped'"}},
            {"stmt": {"sql": "INSERT INTO t VALUES (1)"}},
            {"stmt": {"sql": "SELECT * FROM missing"}},
        ]
    }
    status, body, ctype = http("POST", f"{ns}/v3/cursor", {"baton": c.baton, "batch": batch})
    assert status == 200 and ctype.startswith("text/plain")
    lines = [json.loads(line) for line in body.decode().splitlines()]
    head, entries = lines[0], lines[1:]
    assert set(head) == {"baton", "base_url"} and head["baton"]
    kinds = [(e["type"], e.get("step")) for e in entries]
    assert kinds == [
        ("step_begin", 0),
        ("step_end", None),
        ("step_begin", 1),
        ("row", None),
        ("row", None),
        ("step_end", None),
        ("step_begin", 3),
        ("step_error", 3),
        ("step_error", 4),
        ("replication_index", None),  # sqld ends a cursor so: libsql-server/src/hrana/cursor.rs, `finish`
    ]
    assert entries[-1] == {"type": "replication_index", "replication_index": None}
    assert entries[1] == {"type": "step_end", "affected_row_count": 2, "last_insert_rowid": 2}
    assert entries[2]["cols"] == [{"name": "x", "decltype": "INTEGER"}]
    assert entries[3]["row"] == [value(1)]
    assert entries[7]["error"]["code"] == "SQLITE_CONSTRAINT"
    assert entries[8]["error"]["message"] == "SQLite error: no such table: missing"
    c.baton = head["baton"]  # the stream lives on after a cursor
    assert ok(c.execute("SELECT count(*) FROM t"))["result"]["rows"] == [[value(2)]]


def test_sequence_describe_and_stored_sql(ns: str) -> None:
    c = Client(ns)
    [seq] = c.send(
        {"type": "sequence", "sql": "CREATE TABLE a(x TEXT); INSERT INTO a VALUES ('1'); -- trailing comment\n"}
    )
    assert ok(seq) == {"type": "sequence"}
    [bad] = c.send(
        {
            "type": "sequence",
            "sql": "INSERT INTO a VALUES ('2'); INSERT INTO nope VALUES (1); INSERT INTO a VALUES ('3')",
        }
    )
    assert bad["type"] == "error" and bad["error"]["code"] == "SQLITE_ERROR"
    assert ok(c.execute("SELECT count(*) FROM a"))["result"]["rows"] == [[value(2)]]
    [desc] = c.send({"type": "describe", "sql": "SELECT x, ?1 + :n AS s FROM a WHERE x = @v"})
    assert ok(desc)["result"] == {
        "params": [{"name": "?1"}, {"name": ":n"}, {"name": "@v"}],
        "cols": [{"name": "x", "decltype": "TEXT"}, {"name": "s", "decltype": None}],
        "is_explain": False,
        "is_readonly": True,
    }
    [exp] = c.send({"type": "describe", "sql": "EXPLAIN DELETE FROM a"})
    assert ok(exp)["result"]["is_explain"] is True
    [w] = c.send({"type": "describe", "sql": "DELETE FROM a"})
    assert ok(w)["result"]["is_readonly"] is False
    results = c.send(
        {"type": "store_sql", "sql_id": 7, "sql": "SELECT x FROM a ORDER BY x"},
        {"type": "execute", "stmt": {"sql_id": 7}},
        {"type": "batch", "batch": {"steps": [{"stmt": {"sql_id": 7}}]}},
        {"type": "describe", "sql_id": 7},
        {"type": "close_sql", "sql_id": 7},
        {"type": "close_sql", "sql_id": 12345},  # closing an unknown id is fine
    )
    assert [r["type"] for r in results] == ["ok"] * 6
    assert ok(results[1])["result"]["rows"] == [[value("1")], [value("2")]]
    status, body, _ = http(
        "POST", f"{ns}/v3/pipeline", {"baton": c.baton, "requests": [{"type": "execute", "stmt": {"sql_id": 7}}]}
    )
    assert status == 400 and body.decode() == "SQL text 7 not found"


def test_statement_count_errors(ns: str) -> None:
    c = Client(ns)
    assert c.execute("SELECT 1; SELECT 2")["error"]["code"] == "SQL_MANY_STATEMENTS"
    assert c.execute("  -- nothing\n")["error"]["code"] == "SQL_NO_STATEMENT"
    assert ok(c.execute("SELECT 1; -- trailing"))["result"]["rows"] == [[value(1)]]
    assert c.execute("SELEC 1")["error"]["code"] == "SQL_PARSE_ERROR"
    status, body, _ = http(
        "POST",
        f"{ns}/v3/pipeline",
        {"baton": None, "requests": [{"type": "execute", "stmt": {"sql": "SELECT 1", "sql_id": 1}}]},
    )
    assert status == 400 and body.decode() == "Either `sql` or `sql_id` are required, but not both"


def test_namespaces_admin_and_routing(server: StandinServer) -> None:
    base = server.url
    assert http("POST", f"{base}/v1/namespaces/alpha/create", {})[0] == 200
    status, body, _ = http("POST", f"{base}/v1/namespaces/alpha/create", {})
    assert status == 400 and "already exists" in json.loads(body)["error"]
    Client(f"{base}/dev/alpha").execute("CREATE TABLE only_in_alpha(x)")
    via_header = Client(base)
    tables = "SELECT name FROM sqlite_schema WHERE name = 'only_in_alpha'"
    assert ok(via_header.execute(tables))["result"]["rows"] == []  # default namespace
    status, body, _ = http(
        "POST",
        f"{base}/v3/pipeline",
        {"baton": None, "requests": [{"type": "execute", "stmt": {"sql": tables}}]},
        headers={"x-namespace": "alpha"},
    )
    assert json.loads(body)["results"][0]["response"]["result"]["rows"] == [[value("only_in_alpha")]]
    status, body, _ = http(
        "POST",
        f"{base}/v3/pipeline",
        {"baton": None, "requests": [{"type": "execute", "stmt": {"sql": tables}}]},
        headers={"Host": f"alpha.localhost:{server.port}"},
    )
    assert json.loads(body)["results"][0]["response"]["result"]["rows"] == [[value("only_in_alpha")]]
    assert http("DELETE", f"{base}/v1/namespaces/alpha")[0] == 200
    status, body, _ = http("POST", f"{base}/dev/alpha/v3/pipeline", {"baton": None, "requests": []})
    assert status == 404 and json.loads(body)["error"] == "Namespace `alpha` doesn't exist"
    assert http("DELETE", f"{base}/v1/namespaces/alpha")[0] == 404
    assert http("POST", f"{base}/v1/namespaces/bad%2Fname/create", {})[0] == 400


def test_namespace_files_are_wal_sqlite(server: StandinServer) -> None:
    db = server.create_namespace("walcheck")
    try:
        Client(server.url_for("walcheck")).execute("CREATE TABLE t(x)")
        assert db.path == Path(server.db_dir) / "dbs" / "walcheck" / "data"
        assert db.path.read_bytes()[:16] == b"SQLite format 3\x00"
        assert db.path.read_bytes()[18:20] == b"\x02\x02"  # WAL read/write versions
    finally:
        server.delete_namespace("walcheck")
    assert not db.path.exists()


def test_auth(tmp_path: Path) -> None:
    with StandinServer(db_dir=tmp_path, auth_token="tok-123") as srv:
        body = {"baton": None, "requests": [{"type": "execute", "stmt": {"sql": "SELECT 1"}}]}
        for token in (None, "wrong"):
            status, raw, ctype = http("POST", f"{srv.url}/v3/pipeline", body, token=token)
            assert status == 401 and ctype.startswith("application/json")
            assert "tok-123" not in raw.decode()
        assert http("POST", f"{srv.url}/v3/pipeline", body, token="tok-123")[0] == 200
        assert http("POST", f"{srv.url}/v1/namespaces/x/create", {})[0] == 401
        assert http("GET", f"{srv.url}/health")[0] == 200  # probes stay open, as in sqld
        assert "tok-123" not in repr(srv)


def test_write_hook_sees_every_write(tmp_path: Path) -> None:
    seen: list[tuple[str, bool]] = []
    with StandinServer(db_dir=tmp_path) as srv:
        db = srv.namespaces.get("default")
        db.write_listeners.append(lambda d, conn: seen.append((d.name, conn.autocommit)))
        c = Client(srv.url)
        c.execute("CREATE TABLE t(x)")
        c.execute("SELECT * FROM t")
        c.execute("BEGIN")
        c.execute("INSERT INTO t VALUES (1)")
        c.execute("COMMIT")
    assert seen == [("default", True), ("default", False), ("default", True)]


def test_extra_routes_can_be_mounted(tmp_path: Path) -> None:
    from pytest_traceparity.servers.standin import Response

    def info(req: Any) -> Response:
        return Response.json({"namespace": req.namespace.name, "path": str(req.namespace.path)})

    with StandinServer(db_dir=tmp_path, extensions=[lambda s: s.add_route("GET", r"/info", info)]) as srv:
        srv.create_namespace("n1")
        status, body, _ = http("GET", f"{srv.url}/dev/n1/info")
        assert status == 200 and json.loads(body)["namespace"] == "n1"
        assert json.loads(http("GET", f"{srv.url}/info")[1])["namespace"] == "default"


def test_foreign_keys_on_like_libsql(ns: str) -> None:
    """libsql is built with SQLITE_DEFAULT_FOREIGN_KEYS=1, so sqld enforces them by default."""
    c = Client(ns)
    assert ok(c.execute("PRAGMA foreign_keys"))["result"]["rows"] == [[value(1)]]
    ok(c.execute("CREATE TABLE p(id INTEGER PRIMARY KEY)"))
    ok(c.execute("CREATE TABLE ch(p REFERENCES p(id))"))
    err = c.execute("INSERT INTO ch VALUES (5)")
    assert err["type"] == "error" and err["error"]["code"] == "SQLITE_CONSTRAINT"
    assert "FOREIGN KEY constraint failed" in err["error"]["message"]


@pytest.mark.parametrize(
    "sql",
    [
        "VACUUM",
        "CREATE TEMP TABLE x(a)",
        "PRAGMA journal_mode=DELETE",
        "PRAGMA wal_checkpoint(TRUNCATE)",
        "ATTACH 'other.db' AS o",
        "PRAGMA no_such_pragma",
    ],
)
def test_statements_sqld_refuses(ns: str, sql: str) -> None:
    err = Client(ns).execute(sql)
    assert err["type"] == "error"
    assert err["error"] == {
        "message": f"SQL string could not be parsed: unsupported statement: {sql}",
        "code": "SQL_PARSE_ERROR",
    }


def test_refused_statement_fails_whole_batch_and_sequence_before_running(ns: str) -> None:
    c = Client(ns)
    ok(c.execute("CREATE TABLE t(x)"))
    [batch] = c.send(
        {
            "type": "batch",
            "batch": {"steps": [{"stmt": {"sql": "INSERT INTO t VALUES (1)"}}, {"stmt": {"sql": "VACUUM"}}]},
        }
    )
    assert batch["type"] == "error" and batch["error"]["code"] == "SQL_PARSE_ERROR"
    [seq] = c.send({"type": "sequence", "sql": "INSERT INTO t VALUES (2); PRAGMA journal_mode=DELETE;"})
    assert seq["type"] == "error" and seq["error"]["code"] == "SQL_PARSE_ERROR"
    assert ok(c.execute("SELECT count(*) FROM t"))["result"]["rows"] == [[value(0)]]
    for allowed in (
        "PRAGMA table_info(t)",
        "PRAGMA foreign_keys=OFF",
        "PRAGMA journal_mode",
        "EXPLAIN QUERY PLAN SELECT * FROM t",
    ):
        assert c.execute(allowed)["type"] == "ok", allowed


def test_refuses_to_listen_beyond_loopback() -> None:
    import subprocess
    import sys

    import pytest

    from pytest_traceparity.servers.standin import StandinServer

    with pytest.raises(ValueError, match="loopback addresses only"):
        StandinServer("0.0.0.0", 0)
    done = subprocess.run(
        [sys.executable, "-m", "pytest_traceparity.servers.standin", "--host", "192.0.2.1", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "loopback addresses only" in done.stderr and "Traceback" not in done.stderr
