"""Outcome comparison aspects and the known-divergence verdicts."""

from __future__ import annotations

import datetime as dt

import pytest

from pytest_traceparity.compare import (
    Difference,
    Outcome,
    compare_outcomes,
    is_ordered_query,
    statement_kind,
)
from pytest_traceparity.divergences import DivergenceRegistry, parse_entries
from pytest_traceparity.errors import UsageError, wrap_error
from pytest_traceparity.values import Result


@pytest.mark.parametrize(
    ("sql", "ordered"),
    [
        ("SELECT a FROM t ORDER BY a", True),
        ("SELECT a FROM t", False),
        ("SELECT a FROM (SELECT a FROM t ORDER BY a)", False),
        ("SELECT row_number() OVER (ORDER BY a) FROM t", False),
        ("SELECT 'order by' FROM t", False),
        ("SELECT a FROM t -- order by a\n", False),
        ("select a from t order  by 1", True),
    ],
)
def test_is_ordered_query(sql: str, ordered: bool) -> None:
    assert is_ordered_query(sql) is ordered


def test_statement_kind() -> None:
    assert statement_kind("  select 1") == "select"
    assert statement_kind("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x") == "dml"
    assert statement_kind("/* c */ UPDATE t SET a=1") == "dml"
    assert statement_kind("CREATE TABLE t(a)") == "other"


def result(rows: list[tuple[object, ...]], **kw: object) -> Outcome:
    return Outcome(result=Result(columns=("a",), rows=rows, **kw))  # type: ignore[arg-type]


def test_unordered_rows_compare_as_multiset() -> None:
    assert compare_outcomes(result([(1,), (2,)]), result([(2,), (1,)]), sql="SELECT a FROM t") == []
    diffs = compare_outcomes(result([(1,), (1,)]), result([(1,), (2,)]), sql="SELECT a FROM t")
    assert [d.aspect for d in diffs] == ["rows.value"]


def test_ordered_rows_compare_in_order() -> None:
    diffs = compare_outcomes(result([(1,), (2,)]), result([(2,), (1,)]), sql="SELECT a FROM t ORDER BY a DESC")
    assert diffs and diffs[0].aspect == "rows.value" and "row 0" in diffs[0].message


def test_storage_class_difference_is_its_own_aspect() -> None:
    diffs = compare_outcomes(result([(1,)]), result([(1.0,)]), sql="SELECT a FROM t")
    assert [d.aspect for d in diffs] == ["rows.storage_class"]
    assert "1 (integer)" in diffs[0].message and "1.0 (real)" in diffs[0].message


def test_rowcount_aspect_names_statement_kind() -> None:
    diffs = compare_outcomes(result([], rowcount=-1), result([], rowcount=3), sql="SELECT a FROM t")
    assert [d.aspect for d in diffs] == ["rowcount.select"]


def test_error_aspects() -> None:
    ref = Outcome(error=wrap_error(__import__("sqlite3").IntegrityError("UNIQUE constraint failed: t.a"), backend="r"))
    same_kind_other_class = Outcome(error=wrap_error(ValueError("UNIQUE constraint failed: t.a"), backend="x"))
    assert [d.aspect for d in compare_outcomes(ref, same_kind_other_class)] == ["error.dbapi_class"]
    assert [d.aspect for d in compare_outcomes(ref, result([]))] == ["error.missing"]
    assert [d.aspect for d in compare_outcomes(result([]), ref)] == ["error.unexpected"]


def test_outcome_json_round_trip() -> None:
    err = Outcome(error=wrap_error(ValueError("no such table: x"), backend="x"))
    back = Outcome.from_json(err.to_json())
    assert compare_outcomes(err, back) == []


def registry(**kw: object) -> DivergenceRegistry:
    """One entry in the old ``known_divergences`` format (still loadable)."""
    raw = {
        "backend": "libsql-*",
        "reason": "because",
        **{k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()},
    }
    return DivergenceRegistry(parse_entries([raw], "pyproject.toml"))


def test_verdict_known_only_for_covered_aspects() -> None:
    reg = registry(aspects=("error.dbapi_class",))
    known = reg.judge("libsql-local", "case", [Difference("error.dbapi_class", "x")])
    assert known.status == "known" and known.reason == "pyproject.toml#0: because"
    mixed = reg.judge("libsql-local", "case", [Difference("error.dbapi_class", "x"), Difference("rows.value", "y")])
    assert mixed.status == "diverged" and "rows.value" in mixed.message
    assert reg.judge("sqld-http", "case", [Difference("rows.value", "y")]).status == "diverged"


def test_strict_entry_fails_when_fixed() -> None:
    reg = registry(subjects=("conformance::a.b",))
    verdict = reg.judge("libsql-local", "conformance::a.b", [])
    assert verdict.status == "fixed" and "no longer shows" in verdict.message
    assert reg.judge("libsql-local", "conformance::other", []).status == "same"


def test_glob_entry_is_not_strict() -> None:
    assert registry(subjects=("conformance::*",)).judge("libsql-local", "conformance::x", []).status == "same"


def test_expired_entry() -> None:
    reg = registry(until=dt.date(2020, 1, 1))
    verdict = reg.judge("libsql-local", "x", [Difference("rows.value", "y")])
    assert verdict.status == "expired" and "expired on 2020-01-01" in verdict.message


def test_bracketed_node_ids_match_literally() -> None:
    reg = registry(subjects=("t.py::test[libsql-local]",))
    assert reg.matching("libsql-local", "t.py::test[libsql-local]")
    assert not reg.matching("libsql-local", "t.py::test[l]")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("nope", "must be an array"),
        ([{"backend": "x"}], "'reason' is required"),
        ([{"reason": "r"}], "'backend' is required"),
        ([{"backend": "x", "reason": "r", "reference_sqlite_below": 3}], "version string"),
        ([{"backend": "x", "reason": "r", "colour": 1}], "unknown key"),
        ([{"backend": "x", "reason": "r", "until": "soon"}], "not a YYYY-MM-DD date"),
        ([{"backend": "x", "reason": "r", "aspects": []}], "non-empty list"),
    ],
)
def test_parse_entries_errors_name_origin(raw: object, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_entries(raw, "pyproject.toml")
    assert "pyproject.toml" in str(info.value)


def test_backend_list_and_sqlite_version_condition() -> None:
    (entry,) = parse_entries([{"backend": ["libsql-local", "sqld-*"], "reason": "r"}], "x")
    reg = DivergenceRegistry([entry])
    assert reg.matching("libsql-local", "s") and reg.matching("sqld-http", "s")
    assert not reg.matching("sqlalchemy-sqlite", "s")
    (old,) = parse_entries([{"backend": "*", "reason": "r", "reference_sqlite_below": "3.0"}], "x")
    assert not DivergenceRegistry([old]).matching("libsql-local", "s")  # every SQLite is newer than 3.0
    (new,) = parse_entries([{"backend": "*", "reason": "r", "reference_sqlite_below": "999.0"}], "x")
    assert DivergenceRegistry([new]).matching("libsql-local", "s")
