"""The core stays importable without pytest.

Lint, format, type and import-layer checks are configuration (pyproject.toml) run as steps of
``.ci/run`` and the workflow, not tests: a new ruff release must not fail ``pytest tests``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_core_imports_without_pytest() -> None:
    """The core (registry, replay, verify, launcher, CLI) must work where pytest is not imported."""
    modules = [
        "registry",
        "state",
        "services",
        "trace.replayer",
        "trace.recorder",
        "golden",
        "golden.verify",
        "golden.minimizer",
        "servers.launcher",
        "conformance",
        "cli",
        "cli_trace",
        "cli_db",
    ]
    code = (
        "import sys\n"
        + "".join(f"import pytest_traceparity.{m}\n" for m in modules)
        + ("print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest', 'syrupy')))")
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"importing the core pulled in: {done.stdout.strip()}"
