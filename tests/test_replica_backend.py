"""The ``embedded-replica`` backend on the stand-in: sync modes, lag, faults, URL/token handling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_traceparity.backends.base import BackendContext
from pytest_traceparity.backends.embedded_replica import (
    EmbeddedReplicaBackend,
    EmbeddedReplicaDatabase,
    probe_primary,
    statement_kind,
)
from pytest_traceparity.errors import BackendUnavailable, DatabaseError
from pytest_traceparity.servers import launcher


class _Services:
    def __init__(self, endpoint: launcher.SqldEndpoint) -> None:
        self.endpoint = endpoint

    def sqld(self) -> launcher.SqldEndpoint:
        return self.endpoint


def _make(tmp_path: Path, standin: launcher.SqldEndpoint, mode: str, **options: Any) -> EmbeddedReplicaDatabase:
    ctx = BackendContext(
        workdir=tmp_path, name="rep", options={"replica_sync": mode, **options}, services=_Services(standin)
    )
    db = EmbeddedReplicaBackend().create_database(ctx)
    assert isinstance(db, EmbeddedReplicaDatabase)
    return db


def test_statement_kinds() -> None:
    assert statement_kind("  -- hi\n select 1") == "read"
    assert statement_kind("/* x */ WITH a AS (SELECT 1) SELECT * FROM a") == "read"
    assert statement_kind("WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a") == "write"
    assert statement_kind("COMMIT") == "write"
    assert statement_kind("insert into t values (1)") == "write"


@pytest.mark.parametrize(
    ("mode", "fresh_read"),
    [("auto", True), ("before-read", True), ("after-write", False), ("manual", False)],
)
def test_sync_modes_decide_what_a_second_connection_reads(
    tmp_path: Path, standin: launcher.SqldEndpoint, mode: str, fresh_read: bool
) -> None:
    db = _make(tmp_path, standin, mode)
    try:
        writer = db.connect()
        writer.execute("CREATE TABLE t(v TEXT)")
        other = db.connect()  # its own sync position on the same replica file
        other_replica = db.another_replica("b")
        reader = other_replica.connect()
        writer.execute("INSERT INTO t VALUES ('x')")
        assert writer.execute("SELECT v FROM t").rows == [("x",)], "read-your-writes in every mode"
        # ``other`` shares the replica file, so it sees what ``writer`` pulled
        assert other.execute("SELECT v FROM t").rows == [("x",)]
        got = reader.execute("SELECT v FROM t").rows
        assert got == ([("x",)] if fresh_read else []), f"mode {mode}"
        reader.sync()
        assert reader.execute("SELECT v FROM t").rows == [("x",)]
        info = db.info()
        assert info["replica_sync"] == mode and info["lag_frames"] == 0
        assert "stand-in" in info["served_by"]
        other_replica.close()
    finally:
        db.close()


def test_lag_is_reported_in_frames(tmp_path: Path, standin: launcher.SqldEndpoint) -> None:
    db = _make(tmp_path, standin, "manual")
    second = db.another_replica("b")
    try:
        a = db.connect()
        b = second.connect()
        a.execute("CREATE TABLE t(v)")
        a.execute("INSERT INTO t VALUES (1)")
        lag = second.info()
        assert lag["lag_frames"] and lag["lag_frames"] > 0
        assert lag["primary_generation"] == lag["replica_generation"] == 1
        b.sync()
        assert second.info()["lag_frames"] == 0
    finally:
        second.close()
        db.close()


def test_primary_unreachable_mid_test(tmp_path: Path) -> None:
    handle = launcher.start_standin(launcher.SqldConfig(strategy="stand-in", workdir=tmp_path / "srv", env={}))
    db = _make(tmp_path, handle.endpoint, "manual")
    conn = db.connect()
    conn.execute("CREATE TABLE t(v)")
    conn.execute("INSERT INTO t VALUES (1)")
    handle.stop()
    assert conn.execute("SELECT v FROM t").rows == [(1,)], "local reads keep working"
    with pytest.raises(DatabaseError) as info:
        conn.execute("INSERT INTO t VALUES (2)")
    assert info.value.kind == "connection"
    assert db.sync_url in str(info.value) and "unreachable" in str(info.value)
    with pytest.raises(DatabaseError, match="unreachable"):
        conn.sync()


def test_foreign_replica_file_is_named(tmp_path: Path, standin: launcher.SqldEndpoint) -> None:
    db = _make(tmp_path, standin, "manual")
    try:
        import sqlite3

        sqlite3.connect(db.replica_path).execute("CREATE TABLE plain(x)").connection.commit()
        with pytest.raises(DatabaseError) as info:
            db.connect()
        text = str(info.value)
        assert str(db.replica_path) in text and "-info" in text and "Delete" in text
    finally:
        db.close()


def test_corrupt_replica_metadata_is_named(tmp_path: Path, standin: launcher.SqldEndpoint) -> None:
    db = _make(tmp_path, standin, "manual")
    try:
        db.connect().close()
        meta = Path(f"{db.replica_path}-info")
        data = json.loads(meta.read_text())
        data["durable_frame_num"] += 7  # hash no longer matches
        meta.write_text(json.dumps(data))
        with pytest.raises(DatabaseError) as info:
            db.connect()
        assert f"{db.replica_path}-info" in str(info.value) and "corrupt" in str(info.value)
    finally:
        db.close()


def test_garbage_replica_file_is_named(tmp_path: Path, standin: launcher.SqldEndpoint) -> None:
    db = _make(tmp_path, standin, "manual")
    try:
        db.connect().close()
        db.replica_path.write_bytes(b"this is not a database" * 300)
        for suffix in ("-wal", "-shm"):
            Path(f"{db.replica_path}{suffix}").unlink(missing_ok=True)
        with pytest.raises(DatabaseError) as info:
            db.connect().execute("SELECT 1")
        assert str(db.replica_path) in str(info.value) and "not a SQLite database" in str(info.value)
    finally:
        db.close()


def test_offline_push_conflict_is_explained(tmp_path: Path, standin: launcher.SqldEndpoint) -> None:
    one = _make(tmp_path, standin, "manual", replica_offline=True)
    two = one.another_replica("two")
    try:
        a, b = one.connect(), two.connect()
        a.execute("CREATE TABLE t(v)")
        a.sync()
        b.sync()
        a.execute("INSERT INTO t VALUES ('a')")
        b.execute("INSERT INTO t VALUES ('b')")
        a.sync()
        with pytest.raises(DatabaseError) as info:
            b.sync()
        text = str(info.value)
        assert "push conflict" in text and str(two.replica_path) in text and one.sync_url in text
        check = one.another_replica("c", offline=False)
        assert check.connect().execute("SELECT v FROM t").rows == [("a",)], "primary kept its data"
    finally:
        two.close()
        one.close()


def test_oss_sqld_without_sync_endpoints_is_refused_with_the_reason(tmp_path: Path) -> None:
    # Real OSS sqld answers 404 for /info; no sqld binary here, so a static file server that
    # 404s every path stands in for that one fact. The libsql client's own message is checked too.
    port = launcher.free_port()
    (tmp_path / "www").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(tmp_path / "www")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_port(port)
        with pytest.raises(BackendUnavailable) as info:
            probe_primary(url, None)
        text = str(info.value)
        assert "failed to pull db export: 404" in text and "issue #101" in text and "--sqld=stand-in" in text
        import libsql

        with pytest.raises(ValueError, match="failed to pull db export: status=404"):
            libsql.connect(str(tmp_path / "r.db"), sync_url=url, auth_token="")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_port(port: int) -> None:
    import socket
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"http.server on port {port} did not start")


def test_sync_url_and_token_handling_never_shows_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "tok-" + "9" * 20
    proc_env = {**os.environ, "TRACEPARITY_STANDIN_AUTH_TOKEN": token}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "pytest_traceparity.servers.standin",
            "--port",
            "0",
            "--db-dir",
            str(tmp_path / "srv"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=proc_env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        backend = EmbeddedReplicaBackend()
        ctx = BackendContext(workdir=tmp_path / "w", name="x", options={"sync_url": url})
        monkeypatch.setenv("TURSO_AUTH_TOKEN", "wrong-" + token)
        with pytest.raises(BackendUnavailable) as info:
            backend.create_database(ctx)
        assert "401" in str(info.value) and token not in str(info.value)
        monkeypatch.setenv("TURSO_AUTH_TOKEN", token)
        db = backend.create_database(ctx)
        assert token not in repr(db) and token not in json.dumps(db.info(), default=str)
        conn = db.connect()
        conn.execute("CREATE TABLE t(x)")
        assert conn.execute("SELECT count(*) FROM t").rows == [(0,)]
        db.close()
        bad = BackendContext(workdir=tmp_path / "w2", name="y", options={"sync_url": "ftp://x"})
        with pytest.raises(Exception, match="expected libsql://"):
            backend.create_database(bad)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
