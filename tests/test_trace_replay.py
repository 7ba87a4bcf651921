"""Replay: multi-connection, in recorded order, one fresh database per recorded database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from replay_contexts import contexts

from pytest_traceparity.cli_db import diff_main
from pytest_traceparity.cli_trace import replay_main
from pytest_traceparity.compare import Outcome
from pytest_traceparity.registry import standalone_registry
from pytest_traceparity.trace.format import Event, TraceHeader, TraceReader, TraceWriter
from pytest_traceparity.trace.recorder import recording
from pytest_traceparity.trace.replayer import Replayer

LOCAL = ["sqlalchemy-sqlite", "libsql-local"]


def program_trace(root: Path) -> Path:
    """Two connections to one file, one to another file, a rollback, a read during an open write."""
    trace = root / "traces" / "prog.jsonl"
    trace.parent.mkdir(parents=True)
    with recording(trace, base_dir=str(root)):
        w = sqlite3.connect(root / "main.db")
        r = sqlite3.connect(root / "main.db")
        other = sqlite3.connect(root / "other.db")
        w.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        w.execute("INSERT INTO t (v) VALUES (?)", ("committed",))
        w.commit()
        w.execute("INSERT INTO t (v) VALUES (?)", ("pending",))
        r.execute("SELECT v FROM t").fetchall()  # the reader does not see the open write
        w.commit()
        r.execute("SELECT v FROM t ORDER BY id").fetchall()
        w.execute("INSERT INTO t (v) VALUES (?)", ("rolled back",))
        w.rollback()
        other.execute("CREATE TABLE o (x)")
        other.execute("INSERT INTO o VALUES (?)", (b"\x01\x02",))
        other.commit()
        for conn in (w, r, other):
            conn.close()
    return trace


@pytest.mark.parametrize("backend_id", LOCAL)
def test_replay_keeps_connections_databases_and_transactions(backend_id: str, tmp_path: Path) -> None:
    backend = standalone_registry().get(backend_id)
    if backend.unavailable_reason():
        pytest.skip(f"{backend_id} cannot run here: {backend.unavailable_reason()}")
    trace = program_trace(tmp_path)
    outcomes: list[tuple[Event, Outcome]] = []
    with Replayer(backend, contexts(tmp_path / "replay"), "prog") as replayer:
        for step in replayer.run(TraceReader(trace)):
            outcomes.append((step.event, step.outcome))
        final = replayer.final_state()
    assert all(not o.failed for _, o in outcomes), [(e.seq, o.summary()) for e, o in outcomes if o.failed]
    reads = [o.result.rows for e, o in outcomes if e.sql and e.sql.startswith("SELECT")]  # type: ignore[union-attr]
    assert reads == [[("committed",)], [("committed",), ("pending",)]]
    assert set(final) == {"db1", "db2"}
    assert set(final["db1"]["schema"]["tables"]) == {"t"}  # each recorded database is its own fresh one
    assert set(final["db2"]["schema"]["tables"]) == {"o"}
    assert final["db1"]["content"]["t"]["rows"] == 2  # the rolled-back insert is gone


def test_sync_is_a_no_op_without_a_primary(tmp_path: Path) -> None:
    trace = tmp_path / "sync.jsonl"
    writer = TraceWriter(trace, TraceHeader())
    writer.write_event("open", 1, db="db1", target="replica.db", driver="libsql")
    writer.write_event("sync", 1)
    writer.write_event("execute", 1, sql="SELECT 1", params=[])
    writer.close()
    backend = standalone_registry().get("sqlalchemy-sqlite")
    with Replayer(backend, contexts(tmp_path / "r"), "sync") as replayer:
        results = [step.outcome for step in replayer.run(TraceReader(trace))]
    assert [o.failed for o in results] == [False, False, False]
    assert results[2].result is not None and results[2].result.rows == [(1,)]


def test_named_parameters_are_not_papered_over(tmp_path: Path) -> None:
    """A dict-params statement replays as recorded; a client that refuses dicts shows an error outcome."""
    trace = tmp_path / "named.jsonl"
    with recording(trace, base_dir=str(tmp_path)):
        conn = sqlite3.connect(tmp_path / "n.db")
        conn.execute("SELECT :a + :b AS s", {"a": 1, "b": 2}).fetchall()
        conn.close()
    assert next(e for e in TraceReader(trace) if e.op == "execute").params == {"a": 1, "b": 2}
    registry = standalone_registry()
    got = {}
    for backend_id in LOCAL:
        backend = registry.get(backend_id)
        if backend.unavailable_reason():
            continue
        with Replayer(backend, contexts(tmp_path / backend_id), "named") as replayer:
            got[backend_id] = [s.outcome for s in replayer.run(TraceReader(trace))][1]
    assert got["sqlalchemy-sqlite"].result is not None and got["sqlalchemy-sqlite"].result.rows == [(3,)]
    if "libsql-local" in got:  # libsql 0.1.11 refuses dict parameters: an error, as the program would see
        assert got["libsql-local"].failed


def test_cli_replay_update_then_verify_and_diff_goldens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = program_trace(tmp_path)
    golden = tmp_path / "golden" / "prog.golden.jsonl"
    assert replay_main([str(trace), "--update-golden"]) == 0
    assert "created (22 steps, from sqlalchemy-sqlite)" in capsys.readouterr().out
    assert golden.exists()
    assert replay_main([str(trace), "--update-golden"]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert replay_main([str(trace)]) == 0
    assert "22 steps and the final state match" in capsys.readouterr().out

    # An edited golden: the verify fails naming the step, and `diff` shows the same step.
    edited = tmp_path / "golden" / "edited.golden.jsonl"
    lines = golden.read_text().splitlines()
    for index, line in enumerate(lines):
        data = json.loads(line)
        if data.get("sql") == "SELECT v FROM t ORDER BY id":
            data["outcome"]["result"]["rows"][0][0] = {"text": "changed"}
            lines[index] = json.dumps(data, separators=(",", ":"))
            seq = data["seq"]
    edited.write_text("\n".join(lines) + "\n")
    assert replay_main([str(trace), "--golden", str(edited)]) == 1
    out = capsys.readouterr().out
    assert f"most severe diverging step: seq {seq}, conn 2" in out
    assert "expected 'changed' (text), got 'committed' (text)" in out
    assert diff_main([str(golden), str(edited)]) == 1
    out = capsys.readouterr().out
    assert f"first differing step: seq {seq}, conn 2: SELECT v FROM t ORDER BY id" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["missing.jsonl"], "missing.jsonl: no such trace file"),
        (["{trace}", "--backend", "nope"], "unknown backend 'nope'; valid ids: sqlalchemy-sqlite"),
        (["{trace}", "--backend", "libsql-local", "--update-golden"], "writes goldens from the reference backend"),
        (["{trace}", "--golden", "{tmp}/absent.golden.jsonl"], "absent.golden.jsonl: no golden for trace"),
        (["{bad}"], "bad.jsonl:1: field 'version': unknown trace format version 2"),
    ],
)
def test_cli_replay_bad_input_is_one_line(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    trace = tmp_path / "t.jsonl"
    writer = TraceWriter(trace, TraceHeader())
    writer.write_event("open", 1, db="db1", target=":memory:", driver="sqlite3")
    writer.close()
    (tmp_path / "bad.jsonl").write_text('{"format":"traceparity-trace","version":2}\n')
    args = [a.format(trace=trace, tmp=tmp_path, bad=tmp_path / "bad.jsonl") for a in argv]
    assert replay_main(args) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_interrupted_update_keeps_the_old_golden(tmp_path: Path) -> None:
    """Atomic: a replay that breaks halfway leaves the previous golden byte for byte, and no temp file."""
    from pytest_traceparity.golden.verify import update_golden
    from pytest_traceparity.trace.format import TraceFormatError

    trace = program_trace(tmp_path)
    backend = standalone_registry().get("sqlalchemy-sqlite")
    report = update_golden(trace, backend, contexts(tmp_path / "a"))
    assert report.golden_status == "created"
    before = report.golden.read_bytes()
    text = trace.read_text()
    trace.write_text(text[: text.rindex('{"end"')])  # the recording was cut off before its end line
    with pytest.raises(TraceFormatError, match="missing end line"):
        update_golden(trace, backend, contexts(tmp_path / "b"))
    assert report.golden.read_bytes() == before
    assert [p.name for p in report.golden.parent.iterdir()] == [report.golden.name]


def test_cli_diff_traces_names_the_first_differing_call(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = program_trace(tmp_path)
    b = tmp_path / "b.jsonl"
    b.write_text(a.read_text().replace('{"text":"pending"}', '{"text":"PENDING"}'))
    assert diff_main([str(a), str(a)]) == 0
    capsys.readouterr()
    assert diff_main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    seq = next(e.seq for e in TraceReader(a) if e.params == ("pending",))
    assert out.startswith(f"first differing call: seq {seq} ({a}:{seq + 1} / {b}:{seq + 1})")
    assert '"PENDING"' in out


def test_golden_of_another_trace_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = program_trace(tmp_path)
    assert replay_main([str(trace), "--update-golden"]) == 0
    other = tmp_path / "traces" / "other.jsonl"
    other.write_bytes(trace.read_bytes())
    golden = tmp_path / "golden" / "prog.golden.jsonl"
    capsys.readouterr()
    assert replay_main([str(other), "--golden", str(golden)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{golden}:1: this golden belongs to trace 'prog', not 'other'; regenerate it with: pytest {other} "
        "--update-golden" in err
    )


def test_deleted_database_file_replays_afresh(tmp_path: Path) -> None:
    """A program that deletes its database file between connections starts the next one empty."""
    import os

    trace = tmp_path / "traces" / "fresh.jsonl"
    trace.parent.mkdir()
    with recording(trace, base_dir=str(tmp_path)):
        for n in range(2):
            c = sqlite3.connect(tmp_path / "app.db")
            c.execute("CREATE TABLE IF NOT EXISTS t(x)")
            c.execute("INSERT INTO t VALUES (1)")
            c.commit()
            c.execute("DELETE FROM t")
            c.commit()
            c.close()
            if n == 0:
                os.remove(tmp_path / "app.db")
    opens = [e for e in TraceReader(trace) if e.op == "open"]
    assert [e.fresh for e in opens] == [False, True]
    backend = standalone_registry().get("sqlalchemy-sqlite")
    with Replayer(backend, contexts(tmp_path / "replay"), "fresh", trace=trace) as replayer:
        steps = [(e, replayer.step(e)) for e in TraceReader(trace)]
    deletes = [o.result.rowcount for e, o in steps if e.sql == "DELETE FROM t" and o.result is not None]
    assert deletes == [1, 1]
    assert not replayer.departures
