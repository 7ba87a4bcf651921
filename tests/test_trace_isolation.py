"""Isolation: file targets named by a trace land in the replay's private directory."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from replay_contexts import contexts

from pytest_traceparity.registry import standalone_registry
from pytest_traceparity.trace.format import TraceReader
from pytest_traceparity.trace.isolation import PathMapper, isolate
from pytest_traceparity.trace.recorder import recording
from pytest_traceparity.trace.replayer import Replayer


def _mapper(tmp_path: Path) -> PathMapper:
    return PathMapper(lambda: tmp_path / "private")


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("ATTACH DATABASE '/etc/x.db' AS o", ()),
        ("attach '/etc/x.db' as o", ()),
        ("-- c\nATTACH ? AS o", ("/etc/x.db",)),
        ("ATTACH :p AS o", {"p": "/etc/x.db"}),
        ("VACUUM INTO '/etc/x.db'", ()),
        ("VACUUM main INTO ?", ("/etc/x.db",)),
        ("SELECT load_extension('/etc/x.db')", ()),
    ],
)
def test_targets_are_mapped(sql: str, params: object, tmp_path: Path) -> None:
    new_sql, new_params = isolate(sql, params, _mapper(tmp_path))
    text = new_sql + repr(new_params)
    assert "/etc/x.db" not in text
    assert str(tmp_path / "private" / "f1-x.db") in text


def test_same_target_same_mapping_and_memory_kept(tmp_path: Path) -> None:
    mapper = _mapper(tmp_path)
    assert mapper("a/b.db") == mapper("a/b.db") != mapper("c/b.db")
    assert mapper(":memory:") == ":memory:" and mapper("") == ""
    assert mapper("file:x?mode=memory&cache=shared") == "file:x?mode=memory&cache=shared"
    sql, _ = isolate("SELECT 'ATTACH' AS word, 1 AS into_", (), mapper)
    assert sql == "SELECT 'ATTACH' AS word, 1 AS into_"


@pytest.mark.parametrize("backend_id", ["sqlalchemy-sqlite", "libsql-local"])
def test_replay_of_attach_writes_nothing_outside(backend_id: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    trace = tmp_path / "t.jsonl"
    with recording(trace, base_dir=str(tmp_path)):
        c = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
        c.execute(f"ATTACH DATABASE '{outside / 'o.db'}' AS o")
        c.execute("CREATE TABLE o.t(x)")
        c.execute("INSERT INTO o.t VALUES (1)")
        c.execute(f"VACUUM INTO '{outside / 'copy.db'}'")
        c.close()
    for f in outside.iterdir():
        f.unlink()
    private = tmp_path / "replay"
    make = contexts(private)
    backend = standalone_registry().get(backend_id)
    with Replayer(backend, make, "t", trace=trace) as replayer:
        outcomes = [replayer.step(e) for e in TraceReader(trace)]
        replayer.final_state()
    assert not any(o.failed for o in outcomes), [o.summary() for o in outcomes]
    assert not list(outside.iterdir())
    assert sorted(p.name for p in private.rglob("*.db*") if "files" not in str(p)) != []
    assert any(p.name.endswith("o.db") for p in private.rglob("*"))
