"""The ``traceparity`` command: dispatch, help, clear errors."""

from __future__ import annotations

import subprocess
import sys

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
