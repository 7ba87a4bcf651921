"""The trace reader's fast paths (msgspec-decoded execute lines, msgspec JSON) must read exactly what the
plain path reads: the same events from a good trace, the same error (file, line, field, message) from a bad one.

Why: a long trace is mostly execute lines, so they are decoded straight into their fields and checked in one
go; every other line, and any line that breaks a rule, goes the plain way. A shortcut that accepted a line
the rules refuse, or named a different problem, would change what users see.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from pytest_traceparity.errors import TraceFormatError
from pytest_traceparity.trace import format as trace_format
from pytest_traceparity.trace.format import TraceReader, TraceWriter


def _good_lines(tmp_path: Path) -> list[str]:
    path = tmp_path / "good.jsonl"
    writer = TraceWriter(path)
    writer.write_event("open", 1, db="db1", target="a.db", driver="sqlite3")
    writer.write_event("open", 2, db="db1", target="a.db", driver="sqlite3")
    writer.write_event("execute", 1, sql="CREATE TABLE t (a, b)", params=[])
    writer.write_event("execute", 1, sql="INSERT INTO t VALUES (?, ?)", params=[{"int": "1"}, {"text": "x"}])
    writer.write_event("execute", 2, sql="SELECT :a", params={"a": {"real": "1.5"}})
    writer.write_event("begin", 1, mode="IMMEDIATE")
    writer.write_event("execute", 1, sql="INSERT INTO t VALUES (?, ?)", params=[{"blob": "AAE="}, {"null": True}])
    writer.write_event("execute", 1, sql="SELECT 1", params=[], rowcount=3)
    writer.write_event("commit", 1)
    writer.write_event("execute", 2, sql="SELECT x", params=[], error={"kind": "other", "dbapi_class": "Error"})
    writer.write_event("close", 2)
    writer.write_event("close", 1)
    writer.close()
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


_MUTATIONS: list[tuple[str, Any]] = [
    ("seq", 99),
    ("seq", "5"),
    ("seq", True),
    ("seq", 5.0),
    ("conn", 0),
    ("conn", 3),
    ("conn", True),
    ("conn", -1),
    ("op", "exec"),
    ("op", 1),
    ("sql", None),
    ("sql", 5),
    ("params", None),
    ("params", {}),
    ("params", [1]),
    ("params", [{"int": "x"}]),
    ("params", [{"real": "nope"}]),
    ("params", [{"blob": "!!"}]),
    ("params", [{"int": 5}]),
    ("params", [{"text": "a", "int": "1"}]),
    ("params", [{"null": False}]),
    ("params", [{"real": "1e999"}]),
    ("rowcount", "1"),
    ("rowcount", True),
    ("rowcount", 1.5),
    ("rowcount", 2**70),
    ("error", []),
    ("error", "x"),
    ("bogus", 1),
    ("mode", "SOMETIMES"),
    ("db", 5),
    ("fresh", "yes"),
    ("target", None),
]


def _read(path: Path, fast: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(trace_format, "_execute_decode", None)
            patch.setattr(trace_format, "_fast_loads", None)
        try:
            return [asdict(e) for e in TraceReader(path)]
        except TraceFormatError as exc:
            return ("error", str(exc), exc.line, exc.field_name)


def test_every_mutated_line_reads_the_same_on_both_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert trace_format._execute_decode is not None, "msgspec is a dependency: the fast path must be in use"
    lines = _good_lines(tmp_path)
    rnd = random.Random(19)
    path = tmp_path / "m.jsonl"
    outcomes = {"events": 0, "errors": 0}
    for case in range(1500):
        mutated = list(lines)
        index = rnd.randrange(1, len(lines) - 1)
        data = json.loads(mutated[index])
        for _ in range(rnd.choice([1, 1, 2])):
            key, value = rnd.choice(_MUTATIONS)
            if rnd.random() < 0.2:
                data.pop(key, None)
            else:
                data[key] = value
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if rnd.random() < 0.1:
            text = text.replace(",", ", ")  # spacing the writer never uses
        mutated[index] = text + ("\n" if rnd.random() < 0.97 or index < len(lines) - 1 else "")
        path.write_text("".join(mutated), encoding="utf-8")
        fast, plain = _read(path, True, monkeypatch), _read(path, False, monkeypatch)
        assert fast == plain, f"case {case}: line {index + 1} = {mutated[index]!r}"
        outcomes["errors" if isinstance(fast, tuple) else "events"] += 1
    assert outcomes["errors"] > 500 and outcomes["events"] > 100  # both kinds really exercised
