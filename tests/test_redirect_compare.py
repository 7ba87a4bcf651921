"""``--traceparity-compare``: divergences a test hit although its own assertions passed."""

from __future__ import annotations

import json

import pytest

TWO_BACKENDS = ("--backends=sqlalchemy-sqlite,libsql-local", "--traceparity-redirect", "--traceparity-compare")

BIG_INT = """
import sqlite3


def test_stores_a_big_int(tmp_path):
    conn = sqlite3.connect(tmp_path / "app.db")
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
    conn.execute("INSERT INTO t(v) VALUES (?)", (2**40,))
    conn.commit()
    assert conn.execute("SELECT v FROM t").fetchone()[0] == 2**40  # 1099511627776.0 == 2**40 too


def test_swallows_an_error(tmp_path):
    conn = sqlite3.connect(tmp_path / "app.db")
    try:
        conn.execute("SELECT ?, ?", (1,))
    except Exception:
        pass
"""


def test_passing_test_reports_the_divergence_it_hit(pytester: pytest.Pytester) -> None:
    """Both tests pass on their own assertions; the comparison still reports what libsql did
    differently, attributed to the shipped root-cause rules (no case id involved)."""
    pytester.makepyfile(test_app=BIG_INT)
    result = pytester.runpytest("-v", *TWO_BACKENDS, "--traceparity-report=report.json", "-rx")
    result.assert_outcomes(passed=2, xfailed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_stores_a_big_int?sqlalchemy-sqlite? PASSED*",
            "*test_stores_a_big_int?libsql-local? XFAIL*",
            "*test_swallows_an_error?sqlalchemy-sqlite? PASSED*",
        ]
    )
    report = json.loads((pytester.path / "report.json").read_text())
    xfailed = {i["nodeid"]: i for i in report["items"] if i["outcome"] == "xfailed"}
    assert set(xfailed) == {
        "test_app.py::test_stores_a_big_int[libsql-local]",
        "test_app.py::test_swallows_an_error[libsql-local]",
    }
    big = xfailed["test_app.py::test_stores_a_big_int[libsql-local]"]
    assert "libsql.int-outside-i32-bound-as-real" in big["rules"]
    stored = [d for d in big["triage"]["differences"] if d["aspect"] == "rows.storage_class"]
    assert stored and stored[0]["severity"] == "data" and stored[0]["sql"] == "SELECT v FROM t"
    swallowed = xfailed["test_app.py::test_swallows_an_error[libsql-local]"]
    assert "libsql.parameter-count-not-checked" in swallowed["rules"]
    assert {d["rule"] for d in swallowed["triage"]["differences"]} >= {"libsql.parameter-count-not-checked"}


def test_an_unexplained_divergence_fails_naming_the_statement(pytester: pytest.Pytester) -> None:
    """With libsql as the reference, sqlite3's exact INTEGER is the divergence; no rule
    describes SQLite differing from libsql, so it is unknown and the test fails."""
    pytester.makepyfile(test_app=BIG_INT)
    result = pytester.runpytest("-v", *TWO_BACKENDS, "--reference-backend=libsql-local", "-k", "big_int")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*[[]sqlalchemy-sqlite[]] this test's statements diverge from the reference backend libsql-local*"
            "1 data (1 unknown)*",
            "most severe diverging statement 5 (execute on conn 1, database app.db) at test_app.py:9",
            "  SQL:      SELECT v FROM t",
            "*[[]data; unknown[]] [[]rows.storage_class[]] row 0*column 'v': expected 1099511627776.0 (real), "
            "got 1099511627776 (integer)",
        ]
    )


def test_without_compare_the_same_tests_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=BIG_INT)
    result = pytester.runpytest("--backends=sqlalchemy-sqlite,libsql-local", "--traceparity-redirect")
    result.assert_outcomes(passed=4)


def test_a_known_cause_is_an_xfail_in_the_matrix(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=BIG_INT)
    pytester.makefile(
        ".toml",
        pyproject="""
        [[tool.traceparity.known_divergences]]
        backend = "libsql-local"
        subjects = ["test_app.py::*"]
        aspects = ["rows.storage_class", "error.missing"]
        reason = "libsql 0.1.11 binds ints beyond i32 as REAL and does not check the parameter count"
        """,
    )
    result = pytester.runpytest("-v", *TWO_BACKENDS, "-rx")
    result.assert_outcomes(passed=2, xfailed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_stores_a_big_int?libsql-local? XFAIL*",
            "*traceparity parity matrix*",
            "libsql-local *0 *0 *2 *",
            "readiness per backend*",
            "  libsql-local: 1 data (pyproject.toml#0: 2 tests)*; 0 unknown",
            "*data        pyproject.toml#0: libsql-local 2 tests",
            "      libsql 0.1.11 binds ints beyond i32 as REAL and does not check the parameter count",
        ]
    )


def test_a_failing_test_keeps_its_failure_and_shows_the_comparison(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sqlite3

        def test_typeof(tmp_path):
            conn = sqlite3.connect(tmp_path / "x.db")
            conn.execute("CREATE TABLE t(v)")
            conn.execute("INSERT INTO t VALUES (?)", (2**40,))
            assert conn.execute("SELECT typeof(v) FROM t").fetchone() == ("integer",)
        """
    )
    result = pytester.runpytest(*TWO_BACKENDS)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError*",
            "*traceparity compare*",
            "*[[]rows.value[]] row 0*expected 'integer' (text), got 'real' (text)",
        ]
    )


def test_compare_covers_the_dbapi_fixtures_without_redirect(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        async def test_async(adbapi):
            await adbapi.execute("CREATE TABLE t(v)")
            await adbapi.execute("INSERT INTO t VALUES (?)", (2**53 + 1,))
            await adbapi.commit()
            assert len(await adbapi.execute_fetchall("SELECT v FROM t")) == 1

        def test_sync(dbapi):
            dbapi.execute("CREATE TABLE t(v)")
            assert dbapi.execute("SELECT count(*) FROM t").fetchone() == (0,)
        """
    )
    result = pytester.runpytest(
        "-v", "--backends=sqlalchemy-sqlite,libsql-local", "--traceparity-compare", "-o", "asyncio_mode=auto", "-rx"
    )
    result.assert_outcomes(passed=2, xfailed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_async?libsql-local? XFAIL*",  # 2**53+1 bound as REAL: a data rule, recognized by its cause
            "*test_sync?libsql-local? XFAIL*",  # only rowcount after SELECT (metadata)
        ]
    )
    result.stdout.fnmatch_lines(["*libsql.int-outside-i32-bound-as-real*", "*libsql.rowcount-after-select*"])
