"""Faithfulness: the reference replay against what the program saw; refusing unexplained goldens."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pytest_traceparity.cli_trace import replay_main
from pytest_traceparity.trace.recorder import recording


def _program(tmp_path: Path) -> Path:
    trace = tmp_path / "traces" / "t.jsonl"
    trace.parent.mkdir()
    with recording(trace, base_dir=str(tmp_path)):
        c = sqlite3.connect(":memory:", isolation_level=None)
        c.execute("CREATE TABLE t(x)")
        c.execute("INSERT INTO t VALUES (1)")
        c.close()
    return trace


def _edit(trace: Path, seq: int, error: dict[str, object] | None) -> None:
    lines = trace.read_text().splitlines()
    data = json.loads(lines[seq])
    data["error"] = error
    lines[seq] = json.dumps(data, separators=(",", ":"))
    trace.write_text("\n".join(lines) + "\n")


def test_faithful_trace_writes_its_golden(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = _program(tmp_path)
    assert replay_main([str(trace), "--update-golden", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["departures"] == []


def test_undocumented_departure_refuses_the_golden(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = _program(tmp_path)
    _edit(trace, 3, {"kind": "constraint.unique", "dbapi_class": "IntegrityError", "exc_type": "x"})
    assert replay_main([str(trace), "--update-golden"]) == 2
    err = capsys.readouterr().err
    assert "1 step(s) of the reference replay depart" in err
    assert "seq 3" in err and "program saw error constraint.unique, replay got success" in err
    assert "--allow-departures" in err
    assert not (tmp_path / "golden" / "t.golden.jsonl").exists()
    assert replay_main([str(trace), "--update-golden", "--allow-departures"]) == 0
    assert (tmp_path / "golden" / "t.golden.jsonl").exists()
    assert "1 undocumented" in capsys.readouterr().err


def test_row_count_the_program_saw_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = _program(tmp_path)
    lines = trace.read_text().splitlines()
    insert = json.loads(lines[3])
    assert insert["rowcount"] == 1  # recorded from the program's cursor
    insert["rowcount"] = 5
    lines[3] = json.dumps(insert, separators=(",", ":"))
    trace.write_text("\n".join(lines) + "\n")
    assert replay_main([str(trace), "--update-golden"]) == 2
    assert "program saw rowcount 5, replay got rowcount 1" in capsys.readouterr().err
