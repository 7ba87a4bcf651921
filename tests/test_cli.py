"""The ``traceparity`` command: dispatch, help, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "pytest_traceparity.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_command() -> None:
    done = run("--help")
    assert done.returncode == 0
    for name in ("record", "replay", "diff", "fingerprint", "serve", "report", "backends", "conformance"):
        assert f"  {name}" in done.stdout


def test_unknown_command() -> None:
    done = run("frobnicate")
    assert done.returncode == 2
    assert "unknown command 'frobnicate'" in done.stderr and "Traceback" not in done.stderr


def test_backends_lists_builtins() -> None:
    done = run("backends")
    assert done.returncode == 0
    assert "sqlalchemy-sqlite" in done.stdout and "libsql-local" in done.stdout


def test_report_that_is_not_a_report_is_one_line(tmp_path: Path) -> None:
    listing = tmp_path / "list.json"
    listing.write_text("[]")
    for target in (listing, tmp_path):
        done = run("report", str(target))
        assert done.returncode == 2
        assert str(target) in done.stderr and "--traceparity-report=PATH.json" in done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_serve_with_an_unusable_db_dir_names_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = run("serve", "--db-dir", str(blocker / "db"))
    assert done.returncode == 2
    assert f"--db-dir {blocker / 'db'}" in done.stderr and "writable directory" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_directory_where_a_file_belongs_is_named(tmp_path: Path) -> None:
    for argv, needle in (
        (("replay", str(tmp_path)), f"{tmp_path}: is a directory, not a trace file"),
        (("fingerprint", str(tmp_path)), f"{tmp_path}: is a directory; give an SQLite database file"),
        (("diff", str(tmp_path), str(tmp_path)), f"{tmp_path}: is a directory; give two database files"),
    ):
        done = run(*argv)
        assert done.returncode == 2, done.stderr
        assert needle in done.stderr and "Traceback" not in done.stderr
