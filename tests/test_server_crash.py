"""A server that dies mid-run: every later test says which server, how it died, where its log is."""

from __future__ import annotations

import pytest


def test_crashed_standin_is_named_not_a_traceback(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os, signal, time

        def test_kills_the_server(db, traceparity):
            db.execute("CREATE TABLE t(a)")
            os.kill(traceparity.services.sqld_pid, signal.SIGKILL)
            time.sleep(0.5)

        def test_after_the_crash(db):
            db.execute("SELECT 1")
        """
    )
    result = pytester.runpytest_subprocess("--backends=sqld-http", "--sqld=stand-in")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*stand-in 0.1 (traceparity) at http://127.0.0.1:* stopped answering*"
            "the stand-in process (pid *) was killed by signal 9*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert "urllib.error" not in result.stdout.str()
