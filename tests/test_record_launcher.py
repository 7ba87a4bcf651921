"""``traceparity record -- CMD``: a child process tree recorded with no change to its code."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from replay_contexts import contexts

from pytest_traceparity.cli_db import database_snapshot
from pytest_traceparity.cli_trace import record_main
from pytest_traceparity.registry import standalone_registry
from pytest_traceparity.trace.format import TraceReader
from pytest_traceparity.trace.launcher import record
from pytest_traceparity.trace.replayer import Replayer

PARENT = textwrap.dedent(
    """
    import sqlite3, subprocess, sys
    conn = sqlite3.connect("shared.db")
    conn.execute("CREATE TABLE IF NOT EXISTS log (who TEXT, n INTEGER)")
    conn.execute("INSERT INTO log VALUES ('parent', 1)")
    conn.commit()
    subprocess.run([sys.executable, "child.py"], check=True)
    conn.execute("INSERT INTO log VALUES ('parent', 3)")
    conn.commit()
    print(conn.execute("SELECT COUNT(*) FROM log").fetchone()[0])
    conn.close()
    """
)
CHILD = textwrap.dedent(
    """
    import sqlite3
    conn = sqlite3.connect("shared.db")
    conn.execute("INSERT INTO log VALUES ('child', 2)")
    conn.commit()
    conn.close()
    other = sqlite3.connect("other.db")
    other.execute("CREATE TABLE t (x)")
    other.close()
    """
)


def test_process_tree_is_merged_in_call_order(tmp_path: Path) -> None:
    (tmp_path / "parent.py").write_text(PARENT)
    (tmp_path / "child.py").write_text(CHILD)
    out = tmp_path / "traces" / "tree.jsonl"
    code, merged = record([sys.executable, "parent.py"], out, cwd=tmp_path)
    assert code == 0
    assert merged.parts == 2 and merged.incomplete == []
    events = list(TraceReader(out))
    inserts = [(e.conn, e.db, e.params) for e in events if e.sql and e.sql.startswith("INSERT")]
    # the child's insert sits between the parent's two, as it happened, on the same database
    assert inserts == [(1, "db1", ()), (2, "db1", ()), (1, "db1", ())]
    assert [e.sql for e in events if e.sql and e.sql.startswith("INSERT")][1] == "INSERT INTO log VALUES ('child', 2)"
    opens = [(e.conn, e.db, e.target) for e in events if e.op == "open"]
    assert opens == [(1, "db1", "shared.db"), (2, "db1", "shared.db"), (3, "db2", "other.db")]
    assert '"t":' not in out.read_text()  # merge stamps are stripped
    assert TraceReader(out).header.source == {"command": [Path(sys.executable).name, "parent.py"]}


def test_replay_reproduces_the_recorded_database(tmp_path: Path) -> None:
    """Fidelity: replaying a recorded real workload on the reference rebuilds the program's database."""
    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "mig.jsonl"
    work = tmp_path / "work"
    work.mkdir()
    code, _ = record([sys.executable, str(root / "fixtures/workloads/migrations.py"), "app.db"], out, cwd=work)
    assert code == 0
    backend = standalone_registry().get("sqlalchemy-sqlite")
    make = contexts(tmp_path / "replay")
    with Replayer(backend, make, "mig") as replayer:
        for _ in replayer.run(TraceReader(out)):
            pass
        final = replayer.final_state()
    assert final["db1"] == database_snapshot(str(work / "app.db"))


def test_cli_record_writes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "app.py").write_text("import sqlite3\nc = sqlite3.connect('a.db')\nc.execute('SELECT 1')\nc.close()\n")
    out = tmp_path / "a.jsonl"
    code = record_main(
        ["-o", str(out), "--cwd", str(tmp_path), "--redact", "value=secret", "--", sys.executable, "app.py"]
    )
    assert code == 0
    assert "wrote 3 event(s) from 1 process(es)" in capsys.readouterr().out
    assert [e.op for e in TraceReader(out)] == ["open", "execute", "close"]


def test_cli_record_passes_the_child_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "fail.py").write_text("import sqlite3, sys\nsqlite3.connect(':memory:')\nsys.exit(3)\n")
    out = tmp_path / "f.jsonl"
    assert record_main(["-o", str(out), "--cwd", str(tmp_path), "--", sys.executable, "fail.py"]) == 3
    assert "command exited with code 3" in capsys.readouterr().out
    assert [e.op for e in TraceReader(out)] == ["open"]  # the connection was never closed: still a valid trace


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["-o", "x.jsonl"], "nothing to record: put the command after '--'"),
        (["-o", "x.jsonl", "--", "definitely-not-a-program-xyz"], "cannot run 'definitely-not-a-program-xyz'"),
        (["-o", "x.jsonl", "--redact", "value=(", "--", "python", "-c", "pass"], "--redact 'value=(': not a valid"),
        (["--", "python"], "the following arguments are required: -o/--output"),
    ],
)
def test_cli_record_bad_input_is_one_line(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        code = record_main(argv)
    except SystemExit as exc:  # argparse exits for usage errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_same_base_name_in_different_directories_stays_apart(tmp_path: Path) -> None:
    """Temporary files are labelled tmpN/base (random directory names never reach the trace); distinct
    files never merge."""
    (tmp_path / "work").mkdir()
    script = textwrap.dedent(
        """
        import sqlite3, subprocess, sys, tempfile, os
        for _ in range(2):
            d = tempfile.mkdtemp()
            c = sqlite3.connect(os.path.join(d, "x.db"))
            c.execute("CREATE TABLE t (x)")
            c.close()
        if len(sys.argv) == 1:
            subprocess.run([sys.executable, __file__, "child"], check=True)
        """
    )
    (tmp_path / "work" / "prog.py").write_text(script)
    out = tmp_path / "x.jsonl"
    code, merged = record([sys.executable, "prog.py"], out, cwd=tmp_path / "work")
    assert code == 0 and merged.parts == 2
    opens = [(e.db, e.target) for e in TraceReader(out) if e.op == "open"]
    assert opens == [("db1", "tmp1/x.db"), ("db2", "tmp2/x.db"), ("db3", "tmp1/x.db~2"), ("db4", "tmp2/x.db~2")]


def test_recording_another_environment_does_not_load_our_plugin_there(tmp_path: Path) -> None:
    """A program in an environment without pytest-traceparity (a third-party suite's own venv) is
    recorded without our distribution becoming visible there: its pytest must not load our plugin
    (which would demand SQLAlchemy and abort the suite) just because it is being recorded."""
    import subprocess
    import venv

    env_dir = tmp_path / "foreign"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    program = tmp_path / "app.py"
    program.write_text(
        textwrap.dedent("""
        import importlib.metadata, sqlite3
        print("pytest11:", sorted(e.name for e in importlib.metadata.entry_points(group="pytest11")))
        sqlite3.connect("a.db").execute("CREATE TABLE t(a)")
    """)
    )
    out = tmp_path / "app.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_traceparity.cli",
            "record",
            "-o",
            str(out),
            "--cwd",
            str(tmp_path),
            "--",
            str(python),
            str(program),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "pytest11: []" in result.stdout
    assert [e.sql for e in TraceReader(out) if e.op == "execute"] == ["CREATE TABLE t(a)"]
