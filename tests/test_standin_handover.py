"""``--txn-handover``: a waiting writer takes the lock early; a holder nobody waits for keeps its time."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from pytest_traceparity.servers.standin import StandinServer

TXN_TIMEOUT, HANDOVER = 3.0, 0.2


class Stream:
    """One Hrana stream over /v3/pipeline (plain HTTP: the server runs in this process)."""

    def __init__(self, url: str) -> None:
        self.url, self.baton = url, None

    def execute(self, sql: str) -> dict[str, Any]:
        body = {"baton": self.baton, "requests": [{"type": "execute", "stmt": {"sql": sql}}]}
        request = urllib.request.Request(
            f"{self.url}/v3/pipeline", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            data = json.loads(response.read())
        self.baton = data["baton"]
        return dict(data["results"][0])


def rows(result: dict[str, Any]) -> list[list[Any]]:
    assert result["type"] == "ok", result
    return [[v.get("value") for v in row] for row in result["response"]["result"]["rows"]]


def test_waiter_takes_over_after_the_handover_not_the_timeout(tmp_path: Path) -> None:
    with StandinServer(db_dir=tmp_path / "db", txn_timeout=TXN_TIMEOUT, txn_handover=HANDOVER) as server:
        holder, waiter = Stream(server.url), Stream(server.url)
        holder.execute("CREATE TABLE t(v)")
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO t VALUES (1)")
        started = time.monotonic()
        assert waiter.execute("INSERT INTO t VALUES (2)")["type"] == "ok"
        waited = time.monotonic() - started
        assert HANDOVER * 0.5 <= waited < TXN_TIMEOUT * 0.8, waited
        assert holder.execute("COMMIT")["error"]["code"] == "TRANSACTION_TIMEOUT"
        assert rows(holder.execute("SELECT v FROM t")) == [["2"]]


def test_holder_without_a_waiter_keeps_the_full_timeout(tmp_path: Path) -> None:
    with StandinServer(db_dir=tmp_path / "db", txn_timeout=TXN_TIMEOUT, txn_handover=HANDOVER) as server:
        holder = Stream(server.url)
        holder.execute("CREATE TABLE t(v)")
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO t VALUES (1)")
        time.sleep(HANDOVER * 3)  # past the handover, well inside the timeout
        assert holder.execute("COMMIT")["type"] == "ok"
        assert rows(holder.execute("SELECT v FROM t")) == [["1"]]
