"""scripts/thirdparty_suites.py: the third-party workload runner reports what a replay really showed.

It is how we test on programs we did not write (issues 8 and 10), so its summary must count
unknown divergences and harness errors correctly: run it end to end on a small real program.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("thirdparty_suites", ROOT / "scripts" / "thirdparty_suites.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_report_found_behind_client_log_lines() -> None:
    """The libsql client can log to stdout before ``--json`` output (issue 10, D3): count it, still parse."""
    mod = _script()
    noisy = '\x1b[31m2026-01-01T00:00:00Z ERROR sqlite3Parser: syntax error\x1b[0m\n{\n  "status": "passed"\n}\n'
    report, noise = mod.parse_report(noisy)
    assert report == {"status": "passed"}
    assert noise == ["2026-01-01T00:00:00Z ERROR sqlite3Parser: syntax error"]
    assert any("stdout not pure JSON" in e for e in mod.harness_errors(0, noisy, "", noise))


def test_program_recorded_and_replayed_and_attributed(tmp_path: Path) -> None:
    """A double-quoted string literal: fine on SQLite, an error on libsql. The runner must show it
    attributed to its root-cause rule (libsql.double-quoted-string-literal-refused), with no
    unknown step and no harness error."""
    mod = _script()
    program = tmp_path / "dqs.py"
    program.write_text(
        '"""DQS."""\nimport sqlite3\n\nc = sqlite3.connect("t.db")\nc.execute("CREATE TABLE kv (k)")\n'
        "c.execute('SELECT name FROM sqlite_master WHERE type=\"table\"').fetchall()\nc.close()\n"
    )
    work = tmp_path / "work"
    assert (
        mod.main(["--work", str(work), "--backends", "sqlalchemy-sqlite,libsql-local", "--program", str(program)]) == 0
    )
    result = json.loads((work / "repro" / "results" / "dqs.json").read_text())
    reference, libsql = result["replays"]["sqlalchemy-sqlite"], result["replays"]["libsql-local"]
    assert (reference["status"], reference["harness_errors"]) == ("passed", [])
    assert libsql["status"] == "xfail" and libsql["harness_errors"] == []
    assert (libsql["unknown_steps"], libsql["unknown_causes"]) == (0, {})
    assert libsql["known_by_rule"]["libsql.double-quoted-string-literal-refused"] == 1
    worst = libsql["root_causes"][0]
    assert (worst["rule"], worst["severity"], worst["first_seq"]) == (
        "libsql.double-quoted-string-literal-refused",
        "error-new",
        3,
    )
    assert "## dqs" in (work / "repro" / "SUMMARY.md").read_text()
