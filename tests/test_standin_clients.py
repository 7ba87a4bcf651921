"""The stand-in's sqld behaviours, driven by both real clients (issue 9).

``libsql`` (PyPI) and ``@libsql/client`` (npm, through tests/clients/libsql_client_driver.mjs)
talk to a stand-in process, as they would to sqld. The npm package is installed by this
module's session fixture into the pytest cache (``npm install``, pinned); a machine with
node and npm but no registry access fails here with the npm output, on purpose.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libsql
import pytest

from pytest_traceparity import http
from pytest_traceparity.servers import launcher

TS_CLIENT = "@libsql/client@0.15.9"
DRIVER = Path(__file__).parent / "clients" / "libsql_client_driver.mjs"
TXN_TIMEOUT = "0.5"
MAX_RESPONSE = "20000"
BIG_SELECT = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000) SELECT x, 'pad' FROM c"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A stand-in process (the libsql client holds the GIL while it waits: not in-process)."""
    work = tmp_path_factory.mktemp("clients")
    log = work / "standin.log"
    proc = launcher.spawn(
        [
            sys.executable,
            "-u",
            "-m",
            "pytest_traceparity.servers.standin",
            "--port",
            "0",
            "--db-dir",
            str(work / "db"),
            "--txn-timeout",
            TXN_TIMEOUT,
            "--max-response-size",
            MAX_RESPONSE,
        ],
        log,
        stdout_pipe=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    assert line.startswith("listening on "), f"stand-in did not start: {line!r}; log {log}"
    try:
        yield line.split()[-1]
    finally:
        launcher.terminate(proc)


def namespace(url: str) -> str:
    """A fresh namespace; returns its path-routed URL."""
    name = "c" + uuid.uuid4().hex[:12]
    status, body = http.request("POST", f"{url}/v1/namespaces/{name}/create", body={})
    assert status == 200, body
    return f"{url}/dev/{name}"


@pytest.fixture(scope="session")
def ts_client(pytestconfig: pytest.Config) -> Callable[[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Runs ops through @libsql/client; installs it once into the pytest cache."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not on PATH: the @libsql/client half of these tests needs them")
    cache = pytestconfig.cache
    home = Path(cache.mkdir("traceparity-npm")) if cache is not None else Path.home() / ".cache" / "traceparity-npm"
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:  # xdist workers install one at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        name, version = TS_CLIENT.rsplit("@", 1)
        installed = home / "node_modules" / name / "package.json"
        if not installed.exists() or json.loads(installed.read_text())["version"] != version:
            (home / "package.json").write_text(json.dumps({"private": True, "type": "module"}))
            proc = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--no-save", "--loglevel=error", TS_CLIENT],
                cwd=home,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if proc.returncode != 0:
                pytest.fail(
                    f"npm install {TS_CLIENT} into {home} failed (exit {proc.returncode}); these tests need "
                    f"the npm registry. npm said:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}",
                    pytrace=False,
                )
        shutil.copyfile(DRIVER, home / DRIVER.name)

    def run(url: str, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # The TS client resolves "v3/pipeline" relative to the URL: a path needs its slash.
        url = url if url.endswith("/") else url + "/"
        proc = subprocess.run(
            [node, str(home / DRIVER.name)],
            input=json.dumps({"url": url, "ops": ops}),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, f"node driver failed: {proc.stderr[-2000:]}"
        return list(json.loads(proc.stdout))

    return run


def libsql_connect(url: str) -> Any:
    return libsql.connect(url, isolation_level=None)


# ------------------------------------------------------------------ @libsql/client (npm)


def test_ts_lock_handover_times_out_the_holder(server: str, ts_client: Any) -> None:
    """libsql-server/src/connection/libsql.rs: a waiting writer takes the lock after TXN_TIMEOUT."""
    url = namespace(server)
    out = ts_client(
        url,
        [
            {"kind": "execute", "sql": "CREATE TABLE t(v)"},
            {"kind": "begin"},
            {"kind": "txExecute", "sql": "INSERT INTO t VALUES (1)"},
            {"client": "b", "kind": "execute", "sql": "INSERT INTO t VALUES (2)"},
            {"kind": "commit"},
            {"client": "b", "kind": "execute", "sql": "SELECT v FROM t"},
        ],
    )
    assert [o["ok"] for o in out] == [True, True, True, True, False, True], out
    assert "TRANSACTION_TIMEOUT" in (out[4]["code"] or "") + out[4]["message"]
    assert out[5]["rows"] == [[2]]


def test_ts_attach_is_refused(server: str, ts_client: Any) -> None:
    """libsql-server/src/query_analysis.rs: ATTACH of a file is an unsupported statement."""
    url = namespace(server)
    out = ts_client(
        url, [{"kind": "execute", "sql": "ATTACH 'x.db' AS y"}, {"kind": "execute", "sql": 'ATTACH "x.db" AS y'}]
    )
    assert not out[0]["ok"] and "unsupported statement" in out[0]["message"]
    assert not out[1]["ok"] and "doesn't allow attach" in out[1]["message"]


def test_ts_response_too_large_sequence_and_column_names(server: str, ts_client: Any) -> None:
    url = namespace(server)
    out = ts_client(
        url,
        [
            {"kind": "execute", "sql": BIG_SELECT},
            {"kind": "executeMultiple", "sql": "CREATE TABLE t(a); INSERT INTO t VALUES (1); INSERT INTO t VALUES ("},
            {"kind": "execute", "sql": "SELECT name FROM sqlite_schema"},
            {"kind": "execute", "sql": "SELECT count(*), 1+1"},
            {
                "kind": "batch",
                "sqls": [
                    "CREATE TABLE u(a UNIQUE)",
                    "INSERT INTO u VALUES (1)",
                    "INSERT INTO u VALUES (1)",
                    "INSERT INTO u VALUES (2)",
                ],
            },
            {"kind": "execute", "sql": "SELECT name FROM sqlite_schema"},
        ],
    )
    assert not out[0]["ok"] and "RESPONSE_TOO_LARGE" in (out[0]["code"] or "") + out[0]["message"]
    assert not out[1]["ok"] and out[2]["rows"] == []  # the sequence ran nothing
    assert out[3]["columns"] == ["count(*)", "1+1"]
    assert not out[4]["ok"] and out[5]["rows"] == []  # the write batch rolled back as a whole


# ------------------------------------------------------------------ libsql (PyPI)


def test_py_lock_handover_times_out_the_holder(server: str) -> None:
    url = namespace(server)
    holder, waiter = libsql_connect(url), libsql_connect(url)
    holder.execute("CREATE TABLE t(v)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    waiter.execute("INSERT INTO t VALUES (2)")  # not "database is locked": takes the lock over
    with pytest.raises(ValueError, match="TRANSACTION_TIMEOUT"):
        holder.execute("COMMIT")
    assert waiter.execute("SELECT v FROM t").fetchall() == [(2,)]


def test_py_attach_refused_cursor_unlimited_and_names(server: str) -> None:
    url = namespace(server)
    conn = libsql_connect(url)
    with pytest.raises(ValueError, match="unsupported statement"):
        conn.execute("ATTACH 'x.db' AS y")
    # libsql 0.1.11 reads rows through /v3/cursor, which sqld streams without a size limit
    # (hrana/cursor.rs has no RESPONSE_TOO_LARGE); the TS client's pipeline execute hits it.
    assert len(conn.execute(BIG_SELECT).fetchall()) == 2000
    # (sequence parsing is driven by the TS client's executeMultiple above: libsql 0.1.11's
    # executescript() sends the statements one by one, not as a Hrana sequence.)
    cur = conn.execute("SELECT count(*), 1+1")
    assert [d[0] for d in cur.description] == ["count(*)", "1+1"]


def test_py_refused_attach_drops_the_stream_and_the_next_request_gets_plain_text(server: str) -> None:
    """query_analysis.rs + connection/program.rs (check_program_auth): ATTACH of a namespace
    that does not allow it fails the whole request (401), which drops the stream, like a
    protocol error; the client's next request on that baton gets sqld's plain-text 400
    (hrana/http/mod.rs, protocol_error_response), which libsql shows verbatim."""
    conn = libsql_connect(namespace(server))
    conn.execute("SELECT 1")
    with pytest.raises(ValueError, match="doesn't allow attach"):
        conn.execute('ATTACH "x.db" AS y')
    with pytest.raises(ValueError, match="status=400 Bad Request, body=Received an invalid baton"):
        conn.execute("SELECT 1")


def test_driver_is_ours_and_small() -> None:
    assert DRIVER.exists() and DRIVER.stat().st_size < 8000
    assert "node_modules" not in os.listdir(DRIVER.parent)
