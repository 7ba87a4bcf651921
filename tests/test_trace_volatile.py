"""Volatile values (timestamps, random(), a user pattern) compare by storage class only."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from pytest_traceparity.cli_trace import replay_main
from pytest_traceparity.trace.recorder import recording
from pytest_traceparity.trace.volatile import Volatility, load_patterns


def _program(root: Path) -> Path:
    trace = root / "traces" / "vol.jsonl"
    trace.parent.mkdir(parents=True)
    with recording(trace, base_dir=str(root)):
        c = sqlite3.connect(root / "app.db", isolation_level=None)
        c.create_function("token", 0, lambda: "fixed")  # registered, so excluded; not volatile
        c.execute("CREATE TABLE log(id INTEGER PRIMARY KEY, at TEXT DEFAULT CURRENT_TIMESTAMP, msg TEXT)")
        c.execute("INSERT INTO log(msg) VALUES ('a')")
        c.execute("CREATE TABLE draws(v INTEGER)")
        c.execute("INSERT INTO draws VALUES (random())")
        c.execute("SELECT random(), datetime('now'), 42").fetchall()
        c.execute("SELECT hex(randomblob(4)) AS mine").fetchall()
        c.execute("SELECT msg FROM log").fetchall()
        c.execute('SELECT * FROM "log"').fetchall()  # the DEFAULT CURRENT_TIMESTAMP column, read back
        c.close()
    return trace


def test_reference_passes_its_own_golden_despite_volatile_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = _program(tmp_path)
    assert replay_main([str(trace), "--update-golden"]) == 0
    golden = (tmp_path / "golden" / "vol.golden.jsonl").read_text()
    assert '"text":""' in golden or '""' in golden  # the volatile text values are placeholders
    time.sleep(1.1)  # CURRENT_TIMESTAMP has one-second resolution: make sure it moved
    for backend in ("sqlalchemy-sqlite", "libsql-local"):
        capsys.readouterr()
        assert replay_main([str(trace), "--backend", backend, "--json"]) == 0, capsys.readouterr().out
        assert json.loads(capsys.readouterr().out)["failures"] == []


def test_user_patterns_come_from_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.traceparity]\nvolatile = ["\\\\bnow_ms\\\\("]\n')
    (tmp_path / "traces").mkdir()
    patterns = load_patterns(tmp_path / "traces")
    assert patterns == ["\\bnow_ms\\("]
    vol = Volatility(patterns)
    assert vol.is_volatile("SELECT now_ms()") and not vol.is_volatile("SELECT 1")
    assert vol.observe("INSERT INTO t(x) VALUES (now_ms())") and "t" in vol.tables
    assert vol.is_volatile("SELECT datetime('now', 'localtime')")
    assert not vol.observe("CREATE TABLE IF NOT EXISTS main.h (id, at TEXT DEFAULT (datetime('now')), n DEFAULT 1)")
    assert vol.columns == {"h": {"at"}}
    assert vol.result_columns("select * from h", ("id", "at", "n")) == [1]
    assert vol.result_columns("select * from t", ("x",)) is None  # written with now_ms() above
    vol.observe("CREATE TABLE _tmp (id, d2 DATETIME DEFAULT (datetime('now', 'localtime')))")
    vol.observe("ALTER TABLE _tmp RENAME TO foo")  # a table rebuild, as migration tools do it
    vol.observe("ALTER TABLE foo ADD COLUMN d3 TEXT DEFAULT CURRENT_DATE")
    assert vol.columns["foo"] == {"d2", "d3"} and "_tmp" not in vol.columns
    vol.observe("CREATE TABLE foo (id, d2)")  # dropped and created again without volatile defaults
    assert "foo" not in vol.columns
    assert vol.result_columns("PRAGMA database_list", ("seq", "name", "file")) is None
    assert not vol.is_volatile("SELECT datetime('2020-01-01')")
