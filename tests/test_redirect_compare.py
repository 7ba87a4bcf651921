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
    pytester.makepyfile(test_app=BIG_INT)
    result = pytester.runpytest("-v", *TWO_BACKENDS, "--traceparity-report=report.json")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "*test_stores_a_big_int?sqlalchemy-sqlite? PASSED*",
        "*test_swallows_an_error?sqlalchemy-sqlite? PASSED*",
        "*[[]libsql-local[]] this test's statements diverge from the reference backend sqlalchemy-sqlite*",
        "first diverging statement 5 (execute on conn 1, database app.db) at test_app.py:9",
        "  SQL:      SELECT v FROM t",
        "*[[]rows.storage_class[]] row 0*column 'v': expected 1099511627776 (integer), got 1099511627776.0 (real)",
    ])
    # the error the reference raised and libsql did not (a missing parameter binds NULL there)
    result.stdout.fnmatch_lines(["*SQL:      SELECT ?, ?", "*[[]error.missing[]] expected error binding*"])
    report = json.loads((pytester.path / "report.json").read_text())
    failed = {i["nodeid"]: i["reason"] for i in report["items"] if i["outcome"] == "failed"}
    assert set(failed) == {"test_app.py::test_stores_a_big_int[libsql-local]",
                           "test_app.py::test_swallows_an_error[libsql-local]"}
    assert "rows.storage_class" in failed["test_app.py::test_stores_a_big_int[libsql-local]"]


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
    result.stdout.fnmatch_lines([
        "*test_stores_a_big_int?libsql-local? XFAIL*",
        "*traceparity parity matrix*",
        "libsql-local *0 *0 *2 *",
        "known divergences hit (xfail):",
        "  libsql-local: 2x libsql 0.1.11 binds ints beyond i32 as REAL and does not check the parameter count",
    ])


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
    result.stdout.fnmatch_lines([
        "*AssertionError*",
        "*traceparity compare*",
        "*[[]rows.value[]] row 0*expected 'integer' (text), got 'real' (text)",
    ])


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
    result = pytester.runpytest("-v", "--backends=sqlalchemy-sqlite,libsql-local", "--traceparity-compare",
                                "-o", "asyncio_mode=auto", "-rx")
    result.assert_outcomes(passed=2, failed=1, xfailed=1)
    result.stdout.fnmatch_lines([
        "*test_async?libsql-local? FAILED*",
        "*test_sync?libsql-local? XFAIL*",  # only a client-wide known rule (rowcount after SELECT)
        "*at test_compare_covers_the_dbapi_fixtures_without_redirect.py:5",
        "*expected 9007199254740993 (integer), got 9007199254740992.0 (real)",
    ])
