"""Races that used to crash or wedge the stand-in (issue 9).

Namespace delete used to close SQLite connections another request thread was still
stepping (heap corruption, SIGABRT), and a stream that expired while other clients kept
sending requests kept its connection, and so its write lock, forever. The server runs in
this process: a use-after-free here kills the test run, which is the point.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_traceparity.servers.standin import StandinServer
from pytest_traceparity.servers.standin.database import READY_CONNECTIONS, Database
from pytest_traceparity.servers.standin.hrana import pipeline
from pytest_traceparity.servers.standin.streams import StreamManager

SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) SELECT count(*) FROM c"


def post(url: str, body: Any, method: str = "POST") -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def ex(sql: str) -> dict[str, Any]:
    return {"type": "execute", "stmt": {"sql": sql}}


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[StandinServer]:
    with StandinServer(db_dir=tmp_path / "db", stream_expiry=0.3) as srv:
        yield srv


def test_delete_close_expiry_and_requests_race_without_harm(server: StandinServer, tmp_path: Path) -> None:
    """40 rounds of delete vs. in-flight slow query + close vs. expiry vs. new requests."""
    url = server.url
    fds_before = open_fds()
    failures: list[str] = []

    def record(what: str, status: int, body: Any) -> None:
        if status >= 500:
            failures.append(f"{what}: HTTP {status} {body}")

    for n in range(40):
        name = f"race{n}"
        assert post(f"{url}/v1/namespaces/{name}/create", {})[0] == 200
        status, body = post(
            f"{url}/dev/{name}/v3/pipeline",
            {
                "baton": None,
                "requests": [ex("CREATE TABLE t(a)"), ex("BEGIN"), ex("INSERT INTO t VALUES (1)")],
            },
        )
        assert status == 200, body
        baton = body["baton"]
        # A second stream left idle with a write transaction: it expires during the round.
        post(f"{url}/dev/{name}/v3/pipeline", {"baton": None, "requests": [ex("SELECT 1")]})

        def slow(b: str = baton, ns: str = name) -> None:
            record(
                "slow+close",
                *post(f"{url}/dev/{ns}/v3/pipeline", {"baton": b, "requests": [ex(SLOW), {"type": "close"}]}),
            )

        def delete(ns: str = name, delay: float = 0.01 * (n % 5)) -> None:
            time.sleep(delay)  # vary where in the slow query the delete lands
            record("delete", *post(f"{url}/v1/namespaces/{ns}", None, method="DELETE"))

        def newcomer(ns: str = name) -> None:
            for _ in range(3):
                record(
                    "new stream",
                    *post(f"{url}/dev/{ns}/v3/pipeline", {"baton": None, "requests": [ex("SELECT count(*) FROM t")]}),
                )
                record("sync info", *post(f"{url}/dev/{ns}/info", None, method="GET"))

        def cursor(b: str = baton, ns: str = name) -> None:
            record("cursor", *post(f"{url}/dev/{ns}/v3/cursor", {"baton": b, "batch": {"steps": []}}))

        threads = [threading.Thread(target=f) for f in (slow, delete, newcomer, cursor)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(t.is_alive() for t in threads), f"round {n}: a request hung"

    assert failures == []
    # Alive and consistent: only `default` is left, no stream holds a connection, no file
    # of a deleted namespace survived, and writers are not locked out.
    assert post(f"{url}/v1/namespaces", None, method="GET") == (200, {"namespaces": ["default"]})
    deadline = time.monotonic() + 5
    while server.streams.count() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.streams.count() == 0
    leftovers = sorted(p.name for p in (tmp_path / "db" / "dbs").iterdir() if any(p.iterdir()))
    assert leftovers == ["default"]
    status, body = post(
        f"{url}/v3/pipeline",
        {
            "baton": None,
            "requests": [ex("CREATE TABLE alive(a)"), ex("INSERT INTO alive VALUES (1)"), {"type": "close"}],
        },
    )
    assert status == 200 and all(r["type"] == "ok" for r in body["results"]), body
    # no connection (and its -wal/-shm fds) leaked; `default` may now hold the connections
    # it opens ahead for new streams (3 fds each: database, -wal, -shm)
    assert open_fds() <= fds_before + 4 + 3 * READY_CONNECTIONS


def test_expired_stream_noticed_by_a_request_is_closed(tmp_path: Path) -> None:
    """Expiry noticed by acquire() (not the reaper) must close the stream's connection.

    Before, acquire() dropped the list of expired streams: an abandoned BEGIN IMMEDIATE
    kept SQLite's write lock until restart while other clients kept the server busy.
    """
    db = Database("x", tmp_path / "x" / "data")
    manager = StreamManager(expiry=0.05)  # no reaper thread: only requests notice expiry
    holder = pipeline(manager, db, {"baton": None, "requests": [ex("BEGIN IMMEDIATE"), ex("CREATE TABLE t(a)")]}, 3)
    time.sleep(0.1)
    manager.expiry = 60.0  # the holder is past its expiry; the other client's stream is not
    other = pipeline(manager, db, {"baton": None, "requests": [ex("SELECT 1")]}, 3)
    # Another client keeps talking; its first request notices (and must close) the expired holder.
    other = pipeline(manager, db, {"baton": other["baton"], "requests": [ex("SELECT 1")]}, 3)
    assert other["results"][0]["type"] == "ok"
    writer = pipeline(manager, db, {"baton": None, "requests": [ex("CREATE TABLE u(a)"), {"type": "close"}]}, 3)
    assert writer["results"][0]["type"] == "ok", writer["results"][0]
    assert manager.count() == 1  # only `other` is left
    with pytest.raises(Exception, match="expired"):
        pipeline(manager, db, {"baton": holder["baton"], "requests": [ex("SELECT 1")]}, 3)


def test_default_namespace_cannot_be_deleted(server: StandinServer) -> None:
    status, body = post(f"{server.url}/v1/namespaces/default", None, method="DELETE")
    assert status == 400 and "default" in body["error"]
    assert post(f"{server.url}/v1/namespaces", None, method="GET") == (200, {"namespaces": ["default"]})
