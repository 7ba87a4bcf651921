"""End to end: real programs recorded with `traceparity record`, replayed to the end on all four backends.

Each program in tests/programs/ is one of the shapes that used to abort a replay or make it
unfaithful (FTS4 orphan, VACUUM then reopen, BOM, commented BEGIN, ATTACH to an absolute
path, UDFs, a pre-existing database, an unfetched RETURNING cursor). For every backend the
replay runs as a separate `traceparity replay --json` process (so fd-level output of the
native client is really checked): stdout must be one JSON document, there is no harness
error (exit 0 or 1, never 2), and nothing appears outside the replay's private directory.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_traceparity.servers import launcher
from pytest_traceparity.trace.format import TraceReader
from pytest_traceparity.trace.launcher import record

PROGRAMS = Path(__file__).parent / "programs"
BACKENDS = ["sqlalchemy-sqlite", "libsql-local", "sqld-http", "embedded-replica"]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _traceparity(args: list[str], cwd: Path, tmpdir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.run(
        [sys.executable, "-m", "pytest_traceparity.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def sqld_args(standin: launcher.SqldEndpoint) -> list[str]:
    return ["--sqld=url", "--sqld-url", standin.url]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[dict[str, Path]]:
    paths = {name: tmp_path / name for name in ("run", "proj", "tmp", "outside")}
    for path in paths.values():
        path.mkdir()
    (paths["proj"] / "traces").mkdir()
    yield paths


def _record(program: str, sandbox: dict[str, Path], *args: str) -> Path:
    trace = sandbox["proj"] / "traces" / f"{program}.jsonl"
    code, merged = record([sys.executable, str(PROGRAMS / f"{program}.py"), *args], trace, cwd=sandbox["run"])
    assert code == 0, f"the program {program} itself failed"
    assert merged.events > 0
    return trace


def _replay_everywhere(trace: Path, sandbox: dict[str, Path], sqld_args: list[str]) -> dict[str, dict[str, Any]]:
    """Golden from the reference, then every backend; returns each backend's JSON report."""
    proj, tmp = sandbox["proj"], sandbox["tmp"]
    rel = str(trace.relative_to(proj))
    made = _traceparity(["replay", rel, "--update-golden", "--json"], proj, tmp)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["golden_status"] == "created"
    reports = {}
    for backend in BACKENDS:
        before = _files(proj)
        done = _traceparity(["replay", rel, "--backend", backend, "--json", *sqld_args], proj, tmp)
        assert done.returncode in (0, 1), f"{backend}: harness error: {done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, done.stderr[-2000:]
        reports[backend] = json.loads(done.stdout)  # only JSON on stdout, whatever the client logs
        assert reports[backend]["steps"] == sum(1 for _ in TraceReader(trace))
        assert _files(proj) == before, f"{backend}: the replay wrote into the project"
    assert not list(tmp.iterdir()), f"replay left files behind in its temp root: {list(tmp.iterdir())}"
    return reports


def test_fts4_orphan_final_state_is_a_difference_not_an_abort(sandbox: dict[str, Path], sqld_args: list[str]) -> None:
    trace = _record("fts4_orphan", sandbox)
    reports = _replay_everywhere(trace, sandbox, sqld_args)
    golden = (sandbox["proj"] / "golden" / "fts4_orphan.golden.jsonl").read_text()
    assert '"docs_fts":{"error"' in golden.replace(" ", "")
    assert reports["sqlalchemy-sqlite"]["status"] == "passed"
    for report in reports.values():  # named in every report, whatever the backend
        assert report["replay"]["unreadable"] == ["database db1 (app.db), table 'docs_fts': unreadable (other)"]


def test_vacuum_then_reopen_on_embedded_replica_runs_to_the_end(sandbox: dict[str, Path], sqld_args: list[str]) -> None:
    trace = _record("vacuum_reopen", sandbox)
    reports = _replay_everywhere(trace, sandbox, sqld_args)
    replica = reports["embedded-replica"]
    if replica["status"] == "failed":  # when the reopen fails, later steps say why they did not run
        text = json.dumps(replica["failures"])
        assert "not run: open failed" in text, text


def test_bom_statement_with_json_on_sqld_http(sandbox: dict[str, Path], sqld_args: list[str]) -> None:
    _replay_everywhere(_record("bom_select", sandbox), sandbox, sqld_args)


def test_commented_begin_is_not_doubled(sandbox: dict[str, Path], sqld_args: list[str]) -> None:
    trace = _record("commented_begin", sandbox)
    ops = [e.op for e in TraceReader(trace)]
    assert "begin" not in ops, "the recorder invented a begin before the program's own BEGIN"
    reports = _replay_everywhere(trace, sandbox, sqld_args)
    assert reports["sqlalchemy-sqlite"]["status"] == "passed"


def test_attach_vacuum_into_and_load_extension_stay_in_the_workdir(
    sandbox: dict[str, Path], sqld_args: list[str]
) -> None:
    outside = sandbox["outside"]
    trace = _record("attach_absolute", sandbox, str(outside / "other.db"), str(outside / "copy.db"))
    for leftover in outside.iterdir():  # the program's own files; the replay must not recreate them
        leftover.unlink()
    _replay_everywhere(trace, sandbox, sqld_args)
    assert not list(outside.iterdir()), "a replay wrote to the absolute path named in the trace"


def test_registered_functions_are_marked_and_excluded(sandbox: dict[str, Path], sqld_args: list[str]) -> None:
    trace = _record("udf", sandbox)
    registered = [(e.kind, e.name, e.arity) for e in TraceReader(trace) if e.op == "register"]
    assert registered == [("function", "twice", 1), ("aggregate", "total2", 1), ("collation", "rev", None)]
    reports = _replay_everywhere(trace, sandbox, sqld_args)
    assert reports["sqlalchemy-sqlite"]["status"] == "passed"
    golden = (sandbox["proj"] / "golden" / "udf.golden.jsonl").read_text()
    assert golden.count('"kind":"excluded"') == 4  # the INSERT ... twice(), twice(), total2(), COLLATE rev
    for report in reports.values():
        assert report["replay"]["excluded_steps"] == 4
        assert any("function twice/1" in reason for reason in report["replay"]["excluded"])


def test_preexisting_database_is_captured_and_restored(sandbox: dict[str, Path], sqld_args: list[str]) -> None:
    with sqlite3.connect(sandbox["run"] / "seeded.db") as c:
        c.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, v)")
        c.executemany("INSERT INTO items(v) VALUES (?)", [(i,) for i in range(5)])
    os.utime(sandbox["run"] / "seeded.db", (1, 1))  # clearly older than the recording
    c.close()
    trace = _record("preexisting", sandbox)
    opens = [e for e in TraceReader(trace) if e.op == "open"]
    assert opens[0].seed and opens[0].seed["encoding"] == "sql-json+zlib+base64"
    reports = _replay_everywhere(trace, sandbox, sqld_args)
    for backend, report in reports.items():
        assert report["status"] in ("passed", "xfail"), (backend, report["failures"])
        assert report["replay"]["seeded"]["db1"].startswith("restored"), backend


def test_unfetched_returning_cursor_reproduces(sandbox: dict[str, Path], sqld_args: list[str]) -> None:
    trace = _record("unfetched_returning", sandbox)
    failed = [e for e in TraceReader(trace) if e.error]
    assert len(failed) == 1 and failed[0].error and failed[0].error.get("in_progress")
    reports = _replay_everywhere(trace, sandbox, sqld_args)
    assert reports["sqlalchemy-sqlite"]["status"] == "passed"
