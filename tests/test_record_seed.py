"""Pre-existing databases: captured with the trace within a size limit, restored before replay."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from pytest_traceparity.trace.format import TraceReader
from pytest_traceparity.trace.recorder import recording
from pytest_traceparity.trace.seed import capture_seed, seed_statements


def _old_db(path: Path, rows: int) -> None:
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, v TEXT)")
        c.executemany("INSERT INTO items(v) VALUES (?)", [("x" * 100,)] * rows)
    c.close()
    os.utime(path, (1, 1))


def test_seed_round_trips_as_sql(tmp_path: Path) -> None:
    _old_db(tmp_path / "a.db", 3)
    seed = capture_seed(str(tmp_path / "a.db"))
    assert seed is not None and seed["bytes"] > 0
    statements = seed_statements(seed)
    assert statements[0].startswith("CREATE TABLE items") and len(statements) == 4
    assert capture_seed(str(tmp_path / "missing.db")) is None


def test_seed_over_the_limit_is_skipped_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _old_db(tmp_path / "big.db", 200)
    monkeypatch.setenv("TRACEPARITY_SEED_LIMIT", "4096")
    trace = tmp_path / "t.jsonl"
    with recording(trace, base_dir=str(tmp_path)):
        c = sqlite3.connect(tmp_path / "big.db")
        c.execute("SELECT count(*) FROM items").fetchall()
        c.close()
    opened = next(e for e in TraceReader(trace) if e.op == "open")
    assert opened.seed and "over the 4096-byte limit (TRACEPARITY_SEED_LIMIT)" in opened.seed["skipped"]
    assert "big.db: the database existed before recording" in capsys.readouterr().err


def test_database_created_during_recording_is_not_a_seed(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    with recording(trace, base_dir=str(tmp_path)):
        c = sqlite3.connect(tmp_path / "new.db")
        c.execute("CREATE TABLE t(x)")
        c.commit()
        c.close()
        again = sqlite3.connect(tmp_path / "new.db")
        again.close()
    assert all(e.seed is None for e in TraceReader(trace) if e.op == "open")
