"""fixtures/baseline.sqlite3 is the migration check: the committed traces replayed on a backend
leave exactly the reference's schema and rows, as ``traceparity diff`` sees it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_traceparity.registry import standalone_registry
from pytest_traceparity.trace.baseline import replay_into_one_database

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "fixtures" / "baseline.sqlite3"
TRACES = sorted((ROOT / "fixtures" / "traces").glob("*.jsonl"))


def diff(a: Path, b: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_traceparity.cli", "diff", str(a), str(b)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("backend_id", ["sqlalchemy-sqlite", "libsql-local"])
def test_each_local_backend_ends_where_the_baseline_is(tmp_path: Path, backend_id: str) -> None:
    assert len(TRACES) == 3, TRACES
    other = tmp_path / f"{backend_id}.db"
    replay_into_one_database(TRACES, standalone_registry().get(backend_id), other)
    done = diff(BASELINE, other)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"traceparity diff: {BASELINE} and {other} match"


def test_a_lost_row_and_a_missing_index_are_named(tmp_path: Path) -> None:
    other = tmp_path / "migrated.db"
    replay_into_one_database(TRACES, standalone_registry().get("libsql-local"), other)
    with sqlite3.connect(other) as conn:
        table, index = conn.execute(
            "SELECT tbl_name, name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL ORDER BY name LIMIT 1"
        ).fetchone()
        conn.execute(f'DROP INDEX "{index}"')
        conn.execute(f'DELETE FROM "{table}" WHERE rowid = (SELECT max(rowid) FROM "{table}")')
    conn.close()
    done = diff(BASELINE, other)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("schema: ") and index in line for line in lines), done.stdout
    assert any(line.startswith("content: ") and table in line for line in lines), done.stdout
