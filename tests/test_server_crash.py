"""A server that dies mid-run: every later test says which server, how it died, where its log is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest


def test_crashed_standin_is_named_not_a_traceback(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        import os, signal, time

        def test_kills_the_server(db, traceparity):
            db.execute("CREATE TABLE t(a)")
            print("stand-in says hello", flush=True)
            os.kill(traceparity.services.sqld_pid, signal.SIGKILL)
            time.sleep(0.5)

        def test_after_the_crash(db):
            db.execute("SELECT 1")

        def test_later_still(db):
            db.execute("SELECT 1")
        """
    )
    kept_dir = tmp_path / "kept"
    monkeypatch.setenv("TRACEPARITY_LOG_DIR", str(kept_dir))
    result = pytester.runpytest_subprocess("--backends=sqld-http", "--sqld=stand-in")
    result.assert_outcomes(passed=1, errors=3)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*stand-in 0.1 (traceparity)* at http://127.0.0.1:* stopped answering*"
            "the stand-in process (pid *) was killed by signal 9; its log is kept at *",
        ]
    )
    # The log outlives the run (its temp dir is gone) and is named; the crash is described
    # in full once, later tests refer to it in one line.
    kept = sorted(kept_dir.glob("*.log"))
    assert len(kept) == 1, kept
    assert out.count(f"its log is kept at {kept[0]}") >= 2
    assert len(re.findall(r"was killed by signal 9 earlier in this run", out)) >= 1
    assert "Traceback" not in out
    assert "urllib.error" not in out
