"""Deterministic recording: the same deterministic program, recorded twice, gives the same bytes.

Random temporary directory names, process timing and pytest-xdist worker start order must
not reach the trace (database labels tmpN/..., canonical merge of the part files).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from pytest_traceparity.trace.format import TraceReader
from pytest_traceparity.trace.launcher import record

PROGRAM = textwrap.dedent(
    """
    import os, sqlite3, subprocess, sys, tempfile

    def own(tag):  # run concurrently: their relative timing must not matter
        d = tempfile.mkdtemp()
        c = sqlite3.connect(os.path.join(d, "own.db"))
        c.execute("CREATE TABLE t(x)")
        c.executemany("INSERT INTO t VALUES (?)", [(tag,)] * 3)
        c.commit()
        c.close()

    def shared(tag):  # run one process after the other: their order is part of the program
        s = sqlite3.connect("shared.db", timeout=30)
        s.execute("CREATE TABLE IF NOT EXISTS s(x)")
        s.execute("INSERT INTO s VALUES (?)", (tag,))
        s.commit()
        s.close()

    if len(sys.argv) > 2:
        shared(sys.argv[1])
    elif len(sys.argv) > 1:
        own(sys.argv[1])
    else:
        own("parent")
        shared("parent")
        children = [subprocess.Popen([sys.executable, __file__, tag]) for tag in ("a", "b")]
        assert all(child.wait() == 0 for child in children)
        subprocess.run([sys.executable, __file__, "c", "shared"], check=True)
        shared("parent again")
    """
)

SUITE = {
    "test_one.py": """
        import sqlite3

        def test_a(tmp_path):
            c = sqlite3.connect(tmp_path / "a.db")
            c.execute("CREATE TABLE t(x)")
            c.execute("INSERT INTO t VALUES (1)")
            c.commit()

        def test_b(tmp_path):
            c = sqlite3.connect(tmp_path / "b.db")
            c.execute("CREATE TABLE u(y)")
            c.commit()
    """,
    "test_two.py": """
        import sqlite3

        def test_c():
            c = sqlite3.connect(":memory:")
            c.execute("SELECT 1").fetchall()

        def test_d(tmp_path):
            c = sqlite3.connect(tmp_path / "d.db")
            c.executescript("CREATE TABLE v(z); INSERT INTO v VALUES (3);")
    """,
}


def _twice(command: list[str], cwd: Path, tmp_path: Path) -> list[bytes]:
    out = []
    for n in range(2):
        for stale in cwd.glob("*.db"):
            stale.unlink()
        trace = tmp_path / f"run{n}.jsonl"
        code, _ = record(command, trace, cwd=cwd)
        assert code == 0
        out.append(trace.read_bytes())
    return out


def test_multi_process_program_records_byte_identical(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "prog.py").write_text(PROGRAM)
    first, second = _twice([sys.executable, "prog.py"], work, tmp_path)
    assert first == second
    events = list(TraceReader(tmp_path / "run0.jsonl"))
    targets = sorted({str(e.target) for e in events if e.op == "open"})
    assert targets == ["shared.db", "tmp1/own.db", "tmp1/own.db~2", "tmp1/own.db~3"]
    shared_conns = [e.conn for e in events if e.op == "open" and e.target == "shared.db"]
    assert len(shared_conns) == 3  # parent, child c, parent again: in the order they happened


@pytest.mark.parametrize("dist", ["load", "loadfile"])
def test_pytest_suite_under_xdist_records_byte_identical(dist: str, tmp_path: Path) -> None:
    work = tmp_path / "suite"
    work.mkdir()
    for name, body in SUITE.items():
        (work / name).write_text(textwrap.dedent(body))
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-n",
        "2",
        "--dist",
        dist,
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-p",
        "no:traceparity",
    ]
    first, second = _twice(command, work, tmp_path)
    assert first == second
    assert b'"op":"executescript"' in first
