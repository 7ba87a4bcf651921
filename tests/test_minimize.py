"""Minimal reproductions: delta debugging keeps the difference and a valid trace."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from replay_contexts import contexts

from pytest_traceparity.cli_trace import minimize_main, replay_main
from pytest_traceparity.divergences import DivergenceRegistry, builtin_entries
from pytest_traceparity.golden.minimizer import load_events, minimize, repair, run_pair
from pytest_traceparity.registry import standalone_registry
from pytest_traceparity.trace.format import Event, TraceReader, TraceWriter, encode_event_params, validate
from pytest_traceparity.trace.recorder import recording

REFERENCE, LIBSQL = "sqlalchemy-sqlite", "libsql-local"


@pytest.fixture(autouse=True)
def _needs_libsql() -> None:
    reason = standalone_registry().get(LIBSQL).unavailable_reason()
    if reason:
        pytest.skip(f"libsql-local cannot run here: {reason}")


def seeded_trace(path: Path, noise: int = 60) -> Path:
    """Two databases, three connections, transactions; one SELECT binds 2**40 (the seeded divergence)."""
    writer = TraceWriter(path)
    w = writer.write_event
    w("open", 1, db="db1", target="a.db", driver="sqlite3")
    w("open", 2, db="db1", target="a.db", driver="sqlite3")
    w("open", 3, db="db2", target="b.db", driver="sqlite3")
    w("execute", 1, sql="CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", params=[])
    w("execute", 3, sql="CREATE TABLE o (x)", params=[])
    for i in range(noise):
        w("begin", 1, mode="DEFERRED")
        w("execute", 1, sql="INSERT INTO t (v) VALUES (?)", params=encode_event_params("execute", (f"v{i}",)))
        w("commit", 1)
        w("execute", 2, sql="SELECT count(*) FROM t", params=[])
        w("execute", 3, sql="INSERT INTO o VALUES (?)", params=encode_event_params("execute", (i,)))
        if i == noise // 2:
            w(
                "execute",
                2,
                sql="SELECT ? AS big, typeof(?) AS t",
                params=encode_event_params("execute", (2**40, 2**40)),
            )
    for conn in (1, 2, 3):
        w("close", conn)
    writer.close()
    return path


def test_seeded_divergence_shrinks_to_a_valid_trace_with_the_same_rule(tmp_path: Path) -> None:
    trace = seeded_trace(tmp_path / "seeded.jsonl")
    registry = standalone_registry()
    rules = DivergenceRegistry(builtin_entries())
    events = load_events(trace)
    result = minimize(events, registry.get(REFERENCE), registry.get(LIBSQL), contexts(tmp_path / "m"), rules)
    assert result.target.rule == "libsql.int-outside-i32-bound-as-real"
    assert len(result.events) <= 4 < len(events)
    assert [e.op for e in result.events] == ["open", "execute"]  # later events cannot matter: cut
    out = tmp_path / "min.jsonl"
    from pytest_traceparity.golden.minimizer import write_trace

    write_trace(result.events, out)
    assert validate(out) == len(result.events)  # still a valid trace
    again = run_pair(load_events(out), registry.get(REFERENCE), registry.get(LIBSQL), contexts(tmp_path / "r"), rules)
    assert "libsql.int-outside-i32-bound-as-real" in {a.rule_id for _, a in again}


def test_unknown_difference_keeps_aspect_and_statement_kind(tmp_path: Path) -> None:
    trace = seeded_trace(tmp_path / "seeded.jsonl", noise=10)
    registry = standalone_registry()
    result = minimize(
        load_events(trace),
        registry.get(REFERENCE),
        registry.get(LIBSQL),
        contexts(tmp_path / "m"),
        DivergenceRegistry([]),
    )
    assert (result.target.rule, result.target.aspect, result.target.kind) == (None, "rows.storage_class", "select")
    assert any(e.sql and "big" in e.sql for e in result.events) and len(result.events) <= 4


def ev(seq: int, conn: int, op: str, **kw: object) -> Event:
    return Event(seq=seq, conn=conn, op=op, **kw)  # type: ignore[arg-type]


def test_repair_keeps_opens_of_used_connections_and_balances_transactions() -> None:
    everything = [
        ev(1, 1, "open", db="db1"),
        ev(2, 2, "open", db="db1"),
        ev(3, 1, "begin", mode="DEFERRED"),
        ev(4, 1, "execute", sql="INSERT INTO t VALUES (1)"),
        ev(5, 1, "commit"),
        ev(6, 2, "execute", sql="SELECT 1"),
        ev(7, 1, "begin", mode="DEFERRED"),
        ev(8, 1, "execute", sql="SELECT 2"),
        ev(9, 1, "close"),
        ev(10, 2, "close"),
    ]
    kept = repair([everything[3], everything[4], everything[6], everything[7]], everything)
    # conn 2 unused: no open/close; commit without its begin dropped; begin without commit dropped
    assert [e.seq for e in kept] == [1, 4, 8, 9]


def program(root: Path) -> Path:
    trace = root / "traces" / "prog.jsonl"
    trace.parent.mkdir(parents=True)
    with recording(trace, base_dir=str(root)):
        conn = sqlite3.connect(root / "main.db")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        for i in range(8):
            conn.execute("INSERT INTO t (v) VALUES (?)", (f"row{i}",))
        conn.commit()
        conn.execute("SELECT sqlite_version()").fetchall()  # differs by the SQLite each side bundles
        conn.execute("SELECT v FROM t ORDER BY id").fetchall()
        conn.close()
    return trace


def test_minimize_cli_and_replay_minimize_link_the_reproduction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = program(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert replay_main([str(trace), "--update-golden"]) == 0
    capsys.readouterr()
    assert (
        replay_main([str(trace), "--backend", LIBSQL, "--json", "--minimize", "--minimize-output", "min/prog.jsonl"])
        == 1
    )
    data = json.loads(capsys.readouterr().out)
    unknown = [d for d in data["differences"] if d["rule"] is None]
    assert unknown and unknown[0]["aspect"] == "rows.value" and unknown[0]["minimized"] == "min/prog.jsonl"
    assert data["minimized"]["events"] <= 3 and data["minimized"]["rule"] is None
    kept = [e.sql for e in TraceReader(tmp_path / "min" / "prog.jsonl") if e.sql]
    assert kept == ["SELECT sqlite_version()"]
    assert minimize_main([str(trace), "--backend", LIBSQL, "-o", "again.jsonl", "--seq", str(unknown[0]["seq"])]) == 0
    assert "unknown [rows.value] on a select statement: 2 of" in capsys.readouterr().out
    assert minimize_main([str(trace), "--backend", LIBSQL, "-o", "x.jsonl", "--rule", "no.such-rule"]) == 2
    assert "no difference in this trace is attributed to rule 'no.such-rule'" in capsys.readouterr().err
