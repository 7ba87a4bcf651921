"""Downstream teams run the installed conformance suite with their own cases and backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CASE = """
[[case]]
id = "downstream.two"
description = "a downstream team's own case"
[[case.step]]
sql = "SELECT 1 + 1 AS two"
expect = { rows = [[2]] }
"""


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_traceparity.cli", "conformance", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )


def test_installed_suite_runs_extra_cases_from_another_directory(tmp_path: Path) -> None:
    (tmp_path / "cases.toml").write_text(CASE)
    done = run(
        tmp_path,
        "--backends=sqlalchemy-sqlite",
        f"--conformance-cases={tmp_path / 'cases.toml'}",
        "-k",
        "downstream",
        "-v",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test_case[downstream.two-sqlalchemy-sqlite] PASSED" in done.stdout


def test_broken_extra_case_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[[case]]\nid = 'x'\n")
    done = run(tmp_path, f"--conformance-cases={tmp_path / 'bad.toml'}", "-k", "downstream")
    assert done.returncode != 0
    assert "bad.toml" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
