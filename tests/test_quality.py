"""The package stays ruff-clean and type-checks (it ships py.typed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean() -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_clean() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "pytest_traceparity", "--ignore-missing-imports"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_core_imports_without_pytest() -> None:
    """The core (registry, replay, verify, launcher, CLI) must work where pytest is not imported."""
    modules = ["registry", "state", "trace.replayer", "trace.recorder", "golden", "golden.verify",
               "servers.launcher", "conformance", "cli", "cli_trace", "cli_db"]
    code = "import sys\n" + "".join(f"import pytest_traceparity.{m}\n" for m in modules) + (
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest', 'syrupy')))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"importing the core pulled in: {done.stdout.strip()}"
