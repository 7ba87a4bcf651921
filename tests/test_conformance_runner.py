"""The conformance engine: case loading/validation and runs on the real local backends."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from pytest_traceparity.backends.base import BackendContext
from pytest_traceparity.backends.facade import DB
from pytest_traceparity.compare import Outcome
from pytest_traceparity.conformance import (
    Case,
    CaseError,
    ConformanceRunner,
    check_expectations,
    compare_runs,
    default_cases_dir,
    expect_diffs,
    load_case_file,
    load_cases,
    parse_expect,
    parse_value,
    run_case,
)
from pytest_traceparity.divergences import DivergenceRegistry, Rule, parse_entries
from pytest_traceparity.errors import DatabaseError
from pytest_traceparity.registry import standalone_registry
from pytest_traceparity.values import Result

REFERENCE = "sqlalchemy-sqlite"
LIBSQL = "libsql-local"


def write_cases(tmp_path: Path, text: str, name: str = "cases.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


SQLALCHEMY_20 = pytest.mark.skipif(
    tuple(int(p) for p in __import__("sqlalchemy").__version__.split(".")[:2]) < (2, 1),
    reason="the expected verdicts assume SQLAlchemy 2.1's lastrowid (sqlite3's value after a SELECT); "
    "SQLAlchemy 2.0, the newest on Python 3.10, reports -1 there (a registered, version-conditioned divergence)",
)


def make_runner(tmp_path: Path, entries: list[Rule] | None = None) -> ConformanceRunner:
    counter = itertools.count()

    def new_context(name: str) -> BackendContext:
        return BackendContext(workdir=tmp_path / f"db{next(counter)}", name="db")

    return ConformanceRunner(standalone_registry(), REFERENCE, DivergenceRegistry(entries or []), new_context)


# -- loading and validation -------------------------------------------------------------------


def test_shipped_suite_loads_with_unique_readable_ids() -> None:
    cases = load_cases()
    assert len(cases) >= 150
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    assert "bind.int.i64_max" in ids
    assert all(Path(c.source).parent == default_cases_dir() for c in cases)


def test_typed_values_decode_exactly() -> None:
    assert parse_value({"null": True}) is None
    assert parse_value({"int": "9223372036854775808"}) == 2**63
    assert parse_value({"hex": "00ff"}) == b"\x00\xff"
    assert parse_value({"repeat": {"hex": "ab"}, "times": 3}) == b"\xab\xab\xab"
    assert parse_value({"repeat": "xy", "times": 2}) == "xyxy"
    assert math.copysign(1.0, parse_value(-0.0)) == -1.0
    assert parse_value(True) is True
    with pytest.raises(ValueError, match="unknown typed value key"):
        parse_value({"bogus": 1})


def test_params_as_table_are_named_and_executemany_is_a_list_of_sets(tmp_path: Path) -> None:
    path = write_cases(
        tmp_path,
        """
[[case]]
id = "x.named"
description = "d"
[[case.step]]
sql = "SELECT :a"
params = { a = {null = true} }
[[case.step]]
op = "executemany"
sql = "SELECT ?"
params = [[1], [{hex = "01"}]]
""",
    )
    (case,) = load_case_file(path)
    assert case.steps[0].params == {"a": None}
    assert case.steps[1].params == [(1,), (b"\x01",)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('id = "x.bad"\n[[case.step]]\nsql = "SELECT 1"', "'description' is required"),
        ('id = "x.bad"\ndescription = "d"', "needs at least one"),
        ('id = "x.bad"\ndescription = "d"\n[[case.step]]\nop = "explode"', "op 'explode' is not one of"),
        ('id = "x.bad"\ndescription = "d"\n[[case.step]]\nsql = "SELECT ?"\nparams = [[1]]', "params"),
        ('id = "x.bad"\ndescription = "d"\n[[case.step]]\nsql = "SELECT 1"\nconn = 2', "multi_connection"),
        ('id = "x.bad"\ndescription = "d"\n[[case.step]]\nsql = "SELECT 1"\nextra = 1', "unknown key"),
        ('id = "x.bad"\ndescription = "d"\n[[case.step]]\nop = "commit"\nsql = "COMMIT"', "takes no 'sql'"),
        (
            'id = "x.bad"\ndescription = "d"\n[[case.step]]\nsql = "SELECT 1"\nexpect = { rows = 1 }',
            "expect.rows",
        ),
        (
            'id = "x.bad"\ndescription = "d"\n[[case.step]]\nsql = "SELECT 1"\nexpect = { error = "unique" }',
            "expect.error 'unique' is not a canonical error kind (one of: constraint.unique,",
        ),
        (
            'id = "x.bad"\ndescription = "d"\n[[case.step]]\nsql = "SELECT 1"\n'
            'expect = { error = "syntax", rows = [] }',
            "cannot ask for an error and a result at once",
        ),
    ],
)
def test_malformed_case_names_file_and_case_id(tmp_path: Path, body: str, message: str) -> None:
    path = write_cases(tmp_path, "[[case]]\n" + body + "\n")
    with pytest.raises(CaseError) as info:
        load_case_file(path)
    text = str(info.value)
    assert str(path) in text
    assert "'x.bad'" in text
    assert message in text


def test_bad_id_and_bad_toml_name_the_file(tmp_path: Path) -> None:
    path = write_cases(tmp_path, '[[case]]\nid = "NoDots"\ndescription = "d"\n')
    with pytest.raises(CaseError, match=r"cases\.toml: case #0: 'id' must be a dotted"):
        load_case_file(path)
    broken = write_cases(tmp_path, "[[case]\n", name="broken.toml")
    with pytest.raises(CaseError, match=r"broken\.toml: not valid TOML"):
        load_case_file(broken)


def test_duplicate_ids_across_files_are_refused(tmp_path: Path) -> None:
    text = '[[case]]\nid = "x.same"\ndescription = "d"\n[[case.step]]\nsql = "SELECT 1"\n'
    write_cases(tmp_path, text, "a.toml")
    write_cases(tmp_path, text, "b.toml")
    with pytest.raises(CaseError, match=r"b\.toml: case id 'x\.same' is already defined in .*a\.toml"):
        load_cases(tmp_path)


# -- running on real backends -----------------------------------------------------------------

CASES = """
[[case]]
id = "t.same"
description = "identical on both local backends"
setup = "CREATE TABLE t(id INTEGER PRIMARY KEY, v);"
[[case.step]]
sql = "INSERT INTO t(v) VALUES (?), (?)"
params = ["a", {hex = "00"}]
expect = { rowcount = 2, lastrowid = 2 }
[[case.step]]
sql = "INSERT INTO t(v) VALUES (1)"
[[case.step]]
sql = "INSERT INTO t(v) VALUES (2)"

[[case]]
id = "t.bigint"
description = "a bound i64 keeps its storage class"
[[case.step]]
sql = "SELECT ?, typeof(?)"
params = [9223372036854775807, 9223372036854775807]
expect = { rows = [[9223372036854775807, "integer"]] }

[[case]]
id = "t.wrong_expect"
description = "an expect the reference contradicts"
[[case.step]]
sql = "SELECT 1"
expect = { rows = [[2]] }

[[case]]
id = "t.two_connections"
description = "a second connection sees committed rows only"
requires = ["multi_connection"]
setup = "CREATE TABLE t(v);"
[[case.step]]
op = "begin"
[[case.step]]
sql = "INSERT INTO t VALUES (1)"
[[case.step]]
conn = 2
sql = "SELECT count(*) FROM t"
expect = { rows = [[0]] }
[[case.step]]
op = "commit"
[[case.step]]
conn = 2
sql = "SELECT count(*) FROM t"
expect = { rows = [[1]] }

[[case]]
id = "t.needs_sync"
description = "requires a capability the local backends lack"
requires = ["sync"]
[[case.step]]
sql = "SELECT 1"
"""


@pytest.fixture
def cases(tmp_path: Path) -> dict[str, Case]:
    return {c.id: c for c in load_cases(write_cases(tmp_path, CASES))}


def test_run_case_records_every_step_and_errors_as_outcomes(tmp_path: Path) -> None:
    path = write_cases(
        tmp_path,
        '[[case]]\nid = "t.err"\ndescription = "d"\nsetup = "CREATE TABLE t(v UNIQUE);"\n'
        '[[case.step]]\nsql = "INSERT INTO t VALUES (1)"\n'
        '[[case.step]]\nsql = "INSERT INTO t VALUES (1)"\n'
        '[[case.step]]\nsql = "SELECT count(*) FROM t"\n',
    )
    (case,) = load_cases(path)
    backend = standalone_registry().get(REFERENCE)
    with DB(backend, BackendContext(workdir=tmp_path / "db", name="db")) as db:
        run = run_case(case, db)
    assert [s.step.label for s in run.steps] == ["setup", "step 1", "step 2", "step 3"]
    assert run.steps[2].outcome.error is not None
    assert run.steps[2].outcome.error.kind == "constraint.unique"
    assert run.steps[3].outcome.result is not None
    assert run.steps[3].outcome.result.rows == [(1,)]


@SQLALCHEMY_20
def test_same_case_passes_on_both_local_backends(tmp_path: Path, cases: dict[str, Case]) -> None:
    runner = make_runner(
        tmp_path,
        parse_entries(
            [
                {
                    "backend": LIBSQL,
                    "subjects": ["*"],
                    "aspects": ["rowcount.select", "rowcount.other"],
                    "reason": "libsql rowcount for non-DML",
                }
            ],
            "test",
        ),
    )
    assert runner.check(cases["t.same"], REFERENCE).status == "same"
    assert runner.check(cases["t.same"], LIBSQL).status == "same"
    # Both connections see the same rows on both backends; only the registered rowcount of
    # the second connection's SELECTs differs (libsql says 0, sqlite3 -1).
    two = runner.check(cases["t.two_connections"], LIBSQL)
    assert two.status == "known", two.message
    assert [(sd.step.index, [d.aspect for d in sd.differences]) for sd in two.step_differences] == [
        (3, ["rowcount.select"]),
        (5, ["rowcount.select"]),
    ]


def test_reference_run_is_computed_once_and_cached(tmp_path: Path, cases: dict[str, Case]) -> None:
    runner = make_runner(tmp_path)
    first = runner.reference_run(cases["t.same"])
    runner.check(cases["t.same"], LIBSQL)
    assert runner.reference_run(cases["t.same"]) is first


def test_libsql_i64_binding_divergence_is_reported_with_step_and_sql(tmp_path: Path, cases: dict[str, Case]) -> None:
    runner = make_runner(tmp_path)
    verdict = runner.check(cases["t.bigint"], LIBSQL)
    assert verdict.status == "diverged"
    assert "t.bigint" in verdict.message and LIBSQL in verdict.message
    assert "step 1 (execute): SELECT ?, typeof(?)" in verdict.message
    assert "[rows.storage_class]" in verdict.message
    assert "9223372036854775807 (integer)" in verdict.message
    aspects = {d.aspect for sd in verdict.step_differences for d in sd.differences}
    assert "rows.storage_class" in aspects


@SQLALCHEMY_20
def test_registry_turns_divergence_into_known_and_strict_entry_detects_fix(
    tmp_path: Path, cases: dict[str, Case]
) -> None:
    entries = parse_entries(
        [
            {
                "backend": LIBSQL,
                "subjects": ["conformance::t.bigint"],
                "aspects": ["rows.storage_class", "rowcount.select"],
                "reason": "ints bound as REAL",
            },
            {
                "backend": LIBSQL,
                "subjects": ["conformance::t.same"],
                "aspects": ["rows.value"],
                "reason": "stale entry",
            },
        ],
        "test",
    )
    runner = make_runner(tmp_path, entries)
    known = runner.check(cases["t.bigint"], LIBSQL)
    assert known.status == "known"
    assert known.reason == "test#0: ints bound as REAL"
    fixed = runner.check(cases["t.same"], LIBSQL)
    assert fixed.status == "fixed"
    assert "no longer shows what rule test#1 describes" in fixed.message


def test_aspect_limited_entry_does_not_hide_other_differences(tmp_path: Path, cases: dict[str, Case]) -> None:
    entries = parse_entries(
        [
            {
                "backend": LIBSQL,
                "subjects": ["conformance::t.bigint"],
                "aspects": ["rowcount.*"],
                "reason": "rowcount only",
            }
        ],
        "test",
    )
    verdict = make_runner(tmp_path, entries).check(cases["t.bigint"], LIBSQL)
    assert verdict.status == "diverged"
    assert "[data; unknown] [rows.storage_class]" in verdict.message
    assert "[metadata; test#0] [rowcount.select]" in verdict.message


def test_expect_is_checked_on_the_reference(tmp_path: Path, cases: dict[str, Case]) -> None:
    runner = make_runner(tmp_path)
    verdict = runner.check(cases["t.wrong_expect"], REFERENCE)
    assert verdict.status == "diverged"
    assert "contradicts the case's 'expect'" in verdict.message
    assert "[expect.rows]" in verdict.message
    assert check_expectations(runner.reference_run(cases["t.bigint"])) == []


def test_missing_capability_skips_with_the_reason(tmp_path: Path, cases: dict[str, Case]) -> None:
    verdict = make_runner(tmp_path).check(cases["t.needs_sync"], LIBSQL)
    assert verdict.status == "skip"
    assert "requires sync" in verdict.message and LIBSQL in verdict.message


def test_compare_runs_is_empty_for_two_reference_runs(tmp_path: Path, cases: dict[str, Case]) -> None:
    runner = make_runner(tmp_path)
    case = cases["t.two_connections"]
    assert compare_runs(runner.run_on(case, REFERENCE), runner.run_on(case, REFERENCE)) == []


def test_entry_matching_the_reference_by_glob_does_not_fail_its_items(tmp_path: Path, cases: dict[str, Case]) -> None:
    entries = parse_entries(
        [
            {"backend": "*", "subjects": ["conformance::t.same"], "aspects": ["rows.value"], "reason": "any"},
            {
                "backend": REFERENCE,
                "subjects": ["conformance::t.bigint"],
                "aspects": ["expect.rows"],
                "reason": "stale expect entry",
            },
        ],
        "test",
    )
    runner = make_runner(tmp_path, entries)
    assert runner.check(cases["t.same"], REFERENCE).status == "same"
    assert runner.check(cases["t.bigint"], REFERENCE).status == "fixed"


def test_each_expect_key_reports_its_own_miss() -> None:
    """The expectation table: every key checks one fact and names it in the aspect and message."""
    ok = Outcome(result=Result(columns=("a",), rows=[(1,)], rowcount=-1, lastrowid=7))
    want = parse_expect({"columns": ["b"], "rows": [[2]], "rowcount": 1, "lastrowid": 7})
    diffs = expect_diffs(want, ok)
    assert [(d.aspect, d.message) for d in diffs] == [
        ("expect.columns", "columns ['b'] expected, got ['a']"),
        ("expect.rows", "row 0: expected [(2 (integer))], got [(1 (integer))]"),
        ("expect.rowcount", "rowcount 1 expected, got -1"),
    ]
    failed = Outcome(
        error=DatabaseError(
            "UNIQUE constraint failed: t.x",
            kind="constraint.unique",
            backend="b",
            exc_type="IntegrityError",
            dbapi_class="IntegrityError",
        )
    )
    assert expect_diffs(parse_expect({"error": "constraint.unique", "dbapi_class": "IntegrityError"}), failed) == []
    (miss,) = expect_diffs(parse_expect({"error": "syntax"}), failed)
    assert (miss.aspect, miss.message) == ("expect.error", "expected error kind 'syntax', got 'constraint.unique'")
    (lost,) = expect_diffs(parse_expect({"dbapi_class": "IntegrityError"}), ok)
    assert lost.aspect == "expect.error" and lost.message.startswith("expected error IntegrityError, got ")
    (unexpected,) = expect_diffs(parse_expect({"rows": [[1]]}), failed)
    assert unexpected.message == "unexpected error constraint.unique: UNIQUE constraint failed: t.x"
