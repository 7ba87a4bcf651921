"""The stand-in's sync protocol driven by the REAL libsql client (the ``libsql`` wheel).

The stand-in runs in a child process: the libsql wheel holds the GIL while it waits on
the network, so a server thread in the test process would never get to answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import libsql
import pytest

from pytest_traceparity.servers import launcher


@pytest.fixture
def primary_url(standin: launcher.SqldEndpoint, request: pytest.FixtureRequest) -> str:
    name = "t" + str(abs(hash(request.node.nodeid)) % 10**10)
    return standin.create_database(name)


def _rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(sql).fetchall()]


def _info(path: Path) -> dict[str, int]:
    info: dict[str, int] = json.loads(Path(f"{path}-info").read_text())
    return info


def test_write_through_replica_a_visible_on_b_after_sync(tmp_path: Path, primary_url: str) -> None:
    a = libsql.connect(str(tmp_path / "a.db"), sync_url=primary_url, auth_token="")
    a.sync()
    a.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    a.commit()
    b = libsql.connect(str(tmp_path / "b.db"), sync_url=primary_url, auth_token="")
    b.sync()
    a.execute("INSERT INTO t(v) VALUES ('from a')")
    a.commit()
    assert _rows(a, "SELECT v FROM t") == [("from a",)], "read-your-writes on the writing replica"
    assert _rows(b, "SELECT v FROM t") == [], "B must not see the write before it syncs"
    b.sync()
    assert _rows(b, "SELECT v FROM t") == [("from a",)]
    meta = _info(tmp_path / "b.db")
    assert meta["generation"] == 1 and meta["durable_frame_num"] > 0 and meta["version"] == 0


def test_offline_push_reaches_primary_and_other_replicas(
    tmp_path: Path, primary_url: str, standin: launcher.SqldEndpoint
) -> None:
    w = libsql.connect(str(tmp_path / "w.db"), sync_url=primary_url, auth_token="")
    w.sync()
    w.execute("CREATE TABLE t(v TEXT)")
    w.commit()
    off = libsql.connect(str(tmp_path / "off.db"), sync_url=primary_url, auth_token="", offline=True)
    off.sync()
    off.execute("INSERT INTO t VALUES ('offline write')")
    off.commit()
    assert _rows(off, "SELECT v FROM t") == [("offline write",)]
    off.sync()  # ahead of the primary: this pushes
    # the primary itself (over Hrana) has it
    res = standin.pipeline([{"type": "execute", "stmt": {"sql": "SELECT v FROM t"}}], primary_url)
    assert [r[0]["value"] for r in res[0]["result"]["rows"]] == ["offline write"]
    w.sync()
    assert _rows(w, "SELECT v FROM t") == [("offline write",)]


def test_offline_transaction_larger_than_one_push_batch(tmp_path: Path, primary_url: str) -> None:
    off = libsql.connect(str(tmp_path / "off.db"), sync_url=primary_url, auth_token="", offline=True)
    off.sync()
    blob = os.urandom(700_000)  # ~175 pages: more than the client's 128-frame push batch
    off.execute("CREATE TABLE b(x BLOB)")
    off.execute("INSERT INTO b VALUES (?)", (blob,))
    off.commit()
    off.sync()
    reader = libsql.connect(str(tmp_path / "r.db"), sync_url=primary_url, auth_token="")
    reader.sync()
    assert _rows(reader, "SELECT x FROM b") == [(blob,)]


def test_offline_push_conflict_is_an_error_and_keeps_primary_data(tmp_path: Path, primary_url: str) -> None:
    setup = libsql.connect(str(tmp_path / "s.db"), sync_url=primary_url, auth_token="")
    setup.sync()
    setup.execute("CREATE TABLE t(v TEXT)")
    setup.commit()
    one = libsql.connect(str(tmp_path / "one.db"), sync_url=primary_url, auth_token="", offline=True)
    two = libsql.connect(str(tmp_path / "two.db"), sync_url=primary_url, auth_token="", offline=True)
    one.sync()
    two.sync()
    one.execute("INSERT INTO t VALUES ('one')")
    one.commit()
    two.execute("INSERT INTO t VALUES ('two')")
    two.commit()
    one.sync()
    with pytest.raises(ValueError, match="conflict"):
        two.sync()
    setup.sync()
    assert _rows(setup, "SELECT v FROM t") == [("one",)]


def test_checkpoint_starts_a_generation_replicas_follow(
    tmp_path: Path, primary_url: str, standin: launcher.SqldEndpoint
) -> None:
    a = libsql.connect(str(tmp_path / "a.db"), sync_url=primary_url, auth_token="")
    a.sync()
    a.execute("CREATE TABLE t(v TEXT)")
    a.execute("INSERT INTO t VALUES ('gen1')")
    a.commit()
    b = libsql.connect(str(tmp_path / "b.db"), sync_url=primary_url, auth_token="")
    b.sync()
    name = primary_url.rsplit("/", 1)[-1]
    req = urllib.request.Request(f"{standin.admin_url}/v1/namespaces/{name}/checkpoint", method="POST", data=b"")
    assert json.loads(urllib.request.urlopen(req, timeout=10).read()) == {"generation": 2}
    a.execute("INSERT INTO t VALUES ('gen2')")
    a.commit()
    b.sync()
    assert _rows(b, "SELECT v FROM t ORDER BY v") == [("gen1",), ("gen2",)]
    assert _info(tmp_path / "b.db")["generation"] == 2
    fresh = libsql.connect(str(tmp_path / "fresh.db"), sync_url=primary_url, auth_token="")
    fresh.sync()
    assert _rows(fresh, "SELECT v FROM t ORDER BY v") == [("gen1",), ("gen2",)]
    assert _info(tmp_path / "fresh.db")["generation"] == 2


def _spawn_standin(db_dir: Path, token: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    return launcher.spawn_standin(db_dir, db_dir.parent / f"{db_dir.name}.log", token)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    launcher.terminate(proc)


def test_primary_restart_starts_a_generation_replicas_follow(tmp_path: Path) -> None:
    proc, url = _spawn_standin(tmp_path / "srv")
    try:
        a = libsql.connect(str(tmp_path / "a.db"), sync_url=url, auth_token="")
        a.sync()
        a.execute("CREATE TABLE t(v TEXT)")
        a.execute("INSERT INTO t VALUES ('before restart')")
        a.commit()
        b = libsql.connect(str(tmp_path / "b.db"), sync_url=url, auth_token="")
        b.sync()
    finally:
        _stop(proc)
    proc, url2 = _spawn_standin(tmp_path / "srv")
    try:
        # same database, new port: replicas are reopened with the new URL
        a = libsql.connect(str(tmp_path / "a.db"), sync_url=url2, auth_token="")
        a.execute("INSERT INTO t VALUES ('after restart')")
        a.commit()
        b = libsql.connect(str(tmp_path / "b.db"), sync_url=url2, auth_token="")
        b.sync()
        assert _rows(b, "SELECT v FROM t ORDER BY v") == [("after restart",), ("before restart",)]
        assert _info(tmp_path / "b.db")["generation"] == 2
    finally:
        _stop(proc)


def test_auth_token_is_required_and_never_echoed(tmp_path: Path) -> None:
    token = "s3cret-token-value"
    proc, url = _spawn_standin(tmp_path / "srv", token=token)
    try:
        with pytest.raises(ValueError) as info:
            libsql.connect(str(tmp_path / "bad.db"), sync_url=url, auth_token="wrong").sync()
        assert "401" in str(info.value) and token not in str(info.value)
        good = libsql.connect(str(tmp_path / "good.db"), sync_url=url, auth_token=token)
        good.sync()
        good.execute("CREATE TABLE t(x)")
        good.commit()
        assert _rows(good, "SELECT count(*) FROM t") == [(0,)]
    finally:
        _stop(proc)


WORKER = """
import sys, libsql
path, url, name = sys.argv[1], sys.argv[2], sys.argv[3]
conn = libsql.connect(path, sync_url=url, auth_token="")
conn.sync()
for i in range(15):
    conn.execute("INSERT INTO t(who, n) VALUES (?, ?)", (name, i))
    conn.commit()
    conn.sync()
    mine = conn.execute("SELECT count(*) FROM t WHERE who = ?", (name,)).fetchone()[0]
    assert mine == i + 1, (name, i, mine)
print("done", name)
"""


def test_concurrent_replicas_in_separate_processes(tmp_path: Path, primary_url: str) -> None:
    setup = libsql.connect(str(tmp_path / "setup.db"), sync_url=primary_url, auth_token="")
    setup.sync()
    setup.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, who TEXT, n INTEGER)")
    setup.commit()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / f"w{i}.db"), primary_url, f"w{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
    setup.sync()
    assert _rows(setup, "SELECT who, count(*), min(n), max(n) FROM t GROUP BY who ORDER BY who") == [
        ("w0", 15, 0, 14),
        ("w1", 15, 0, 14),
        ("w2", 15, 0, 14),
    ]
    assert _rows(setup, "PRAGMA integrity_check") == [("ok",)]
