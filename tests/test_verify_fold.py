"""Known-divergence steps past KEEP_KNOWN are counted, not kept: same summary, flat memory."""

from __future__ import annotations

from pathlib import Path

import pytest
from replay_contexts import contexts

from pytest_traceparity.divergences import DivergenceRegistry, builtin_entries
from pytest_traceparity.golden import steps, verify
from pytest_traceparity.registry import standalone_registry
from pytest_traceparity.trace.format import TraceWriter, encode_event_params


def _trace(path: Path, selects: int) -> None:
    writer = TraceWriter(path)
    writer.write_event("open", 1, db="db1", target="app.db", driver="sqlite3")
    writer.write_event("execute", 1, sql="CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", params=[])
    for i in range(selects):
        writer.write_event(
            "execute", 1, sql="INSERT INTO t(v) VALUES (?)", params=encode_event_params("execute", [f"v{i}"])
        )
        writer.write_event(
            "execute",
            1,
            sql="SELECT v FROM t WHERE id = ?",  # rowcount differs on libsql
            params=encode_event_params("execute", [i + 1]),
        )
    writer.write_event("close", 1)
    writer.close()


def test_folded_report_matches_the_full_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trace, golden = tmp_path / "t.jsonl", tmp_path / "t.golden.jsonl"
    _trace(trace, 60)
    make = contexts(tmp_path)
    registry = standalone_registry()
    verify.update_golden(trace, registry.get("sqlalchemy-sqlite"), make, golden=golden)
    rules = DivergenceRegistry(builtin_entries())
    full = verify.verify_trace(trace, registry.get("libsql-local"), make, rules, golden=golden)
    assert full.status == "xfail" and len(full.known) >= 60 and full.known_folded == 0
    monkeypatch.setattr(steps, "KEEP_KNOWN", 10)  # where the judging reads it
    capped = verify.verify_trace(trace, registry.get("libsql-local"), make, rules, golden=golden)
    assert len(capped.known) == 10 and capped.known_steps == len(full.known)
    assert capped.status == "xfail" and capped.summary() == full.summary()
    assert capped.triage()["root_causes"] == full.triage()["root_causes"]
    data = capped.to_json()
    assert data["known_not_listed"] == len(full.known) - 10 and len(data["known"]) == 10
    select_line = [line for line in capped.xfail_reason().splitlines() if "rowcount-after-select" in line]
    assert select_line and select_line[0].endswith(" ...]")
