"""Root-cause rules: matching on observations and context, precedence, severity, staleness, format."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pytest_traceparity.compare import Difference, StepContext, statement_context
from pytest_traceparity.divergences import (
    DivergenceRegistry,
    builtin_entries,
    load_registry,
    parse_entries,
    parse_rules,
    summarize,
)
from pytest_traceparity.divergences.severity import SCALE, aspect_severity
from pytest_traceparity.errors import UsageError

LIBSQL = "libsql-local"


def rule(**kw: object) -> dict[str, object]:
    return {"id": "t.rule", "backend": LIBSQL, "reason": "because", **kw}


def shipped() -> DivergenceRegistry:
    return DivergenceRegistry(builtin_entries())


def ctx(sql: str, params: object = (), op: str = "execute", **kw: object) -> StepContext:
    return dataclasses.replace(statement_context(op, sql, params), **kw)  # type: ignore[arg-type]


def test_no_shipped_rule_lists_every_subject_and_each_states_severity_and_advice() -> None:
    rules = builtin_entries()
    assert len({r.id for r in rules}) == len(rules)
    for r in rules:
        assert "*" not in r.subjects and "*" not in "".join(r.subjects)
        assert r.severity is None or r.severity in SCALE
        assert r.subjects or r.expected or r.actual or r.relation or r.params or r.after_params or r.message, r.id
        assert r.subjects or "Do:" in r.reason, f"{r.id}: say what to do about it"


def test_shipped_rule_matches_by_cause_with_no_subject() -> None:
    diff = Difference(
        "rows.storage_class",
        "x",
        expected="integer",
        actual="real",
        relation="int-outside-i32-as-real",
        context=ctx("SELECT v FROM anything"),
    )
    verdict = shipped().judge(LIBSQL, "trace::never-seen#7", [diff])
    assert verdict.status == "known"
    assert [a.rule_id for a in verdict.attributions] == ["libsql.int-outside-i32-bound-as-real"]
    assert verdict.attributions[0].severity == "data"


@pytest.mark.parametrize(
    "diff",
    [
        # another wrong exception class than the ValueError the rule expects
        Difference(
            "error.dbapi_class",
            "x",
            expected="IntegrityError",
            actual="RuntimeError",
            context=ctx("INSERT INTO t VALUES (1)"),
        ),
        # an int that came back as a REAL of a *different* value: not float rounding of the same int
        Difference(
            "rows.storage_class", "x", expected="integer", actual="real", relation=None, context=ctx("SELECT v FROM t")
        ),
        # rowcount after SELECT that is negative but not -1: the rule expects a leftover count >= 0
        Difference("rowcount.select", "x", expected="-1", actual="-7", context=ctx("SELECT 1")),
        # a binding error without dict parameters is not the dict-params rule
        Difference("error.unexpected", "x", expected="none", actual="binding", context=ctx("SELECT ?", (1,))),
    ],
)
def test_a_different_wrong_value_under_a_rule_is_unknown(diff: Difference) -> None:
    verdict = shipped().judge(LIBSQL, "trace::t#1", [diff])
    assert verdict.status == "diverged"
    assert verdict.attributions[0].rule is None
    assert "unknown" in verdict.message


def test_context_conditions_kind_sql_params_transaction() -> None:
    (r,) = parse_rules(
        [
            rule(
                aspects=["error.unexpected"],
                actual=["binding"],
                kind=["dml"],
                sql=r"^insert\b",
                params=["dict"],
                params_over=1,
                in_transaction=True,
            )
        ],
        "x",
    )
    reg = DivergenceRegistry([r])
    base = Difference("error.unexpected", "m", expected="none", actual="binding")
    good = ctx("INSERT INTO t VALUES (:a, :b)", {"a": 1, "b": 2}, in_transaction=True)
    assert reg.attribute(LIBSQL, "s", base.with_context(good)).rule is r
    for other in (
        dataclasses.replace(good, in_transaction=False),
        ctx("SELECT :a, :b", {"a": 1, "b": 2}),
        ctx("INSERT INTO t VALUES (?, ?)", (1, 2), in_transaction=True),
        ctx("INSERT INTO t VALUES (:a)", {"a": 1}, in_transaction=True),
    ):
        assert reg.attribute(LIBSQL, "s", base.with_context(other)).rule is None


def test_parameter_shapes() -> None:
    shapes = statement_context("execute", "SELECT ?", (2**31, float("nan"), "a\x00b", b"x", 2**64, True)).shapes
    assert shapes == {"int-outside-i32", "int-outside-i64", "float-nonfinite", "text-nul", "blob"}
    assert statement_context("executemany", "INSERT", many=[(1,), (2**40,)]).shapes == {"int-outside-i32"}


def test_precedence_one_rule_per_difference() -> None:
    project = parse_rules(
        [
            rule(id="team.generic", aspects=["rows.*"], relation=["text-spacing"]),
            rule(id="team.case", aspects=["rows.value"], subjects=["conformance::c"]),
        ],
        "pyproject.toml",
        project=True,
    )
    package = parse_rules(
        [rule(id="pkg.specific", aspects=["rows.value"], relation=["text-spacing"], kind=["select"])], "pkg"
    )
    reg = DivergenceRegistry(package + project)
    diff = Difference(
        "rows.value",
        "m",
        expected="a",
        actual="a ",
        relation="text-spacing",
        context=ctx("SELECT sql FROM sqlite_master"),
    )
    # 1. project before package, 2. more conditions, 3. a rule listing subjects, 4. file order
    assert reg.attribute(LIBSQL, "conformance::c", diff).rule_id == "team.case"
    assert reg.attribute(LIBSQL, "conformance::other", diff).rule_id == "team.generic"
    only_package = DivergenceRegistry(
        package + parse_rules([rule(id="pkg.loose", aspects=["rows.value"], relation=["text-spacing"])], "pkg2")
    )
    assert only_package.attribute(LIBSQL, "s", diff).rule_id == "pkg.specific"
    verdict = reg.judge(LIBSQL, "conformance::other", [diff, diff])
    assert [a.rule_id for a in verdict.attributions] == ["team.generic", "team.generic"]


def test_stale_rules_are_reported_by_id_and_exact_subject_rules_stay_strict() -> None:
    rules = parse_rules(
        [
            rule(id="t.hit", aspects=["rowcount.select"], expected=["-1"]),
            rule(id="t.never", aspects=["rows.value"], relation=["text-cut-at-nul"]),
            rule(id="t.other-backend", backend="sqld-http", aspects=["rows.value"], expected=["x"]),
            rule(id="t.case", aspects=["rows.value"], subjects=["conformance::c"]),
        ],
        "x",
    )
    reg = DivergenceRegistry(rules)
    verdict = reg.judge(LIBSQL, "s", [Difference("rowcount.select", "m", expected="-1", actual="0")])
    assert verdict.status == "known" and reg.hits["t.hit"] == 1
    assert [r.id for r in reg.stale()] == ["t.never"]  # sqld-http never ran; t.case is strict instead
    fixed = reg.judge(LIBSQL, "conformance::c", [])
    assert fixed.status == "fixed" and "t.case" in fixed.message


def test_pytest_run_reports_stale_rules(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("""
        [[tool.traceparity.rules]]
        id = "team.never-seen"
        backend = "libsql-local"
        aspects = ["rows.value"]
        expected = ["nothing like this"]
        reason = "a rule nothing in this run matches"
    """)
    pytester.makepyfile("def test_x(db):\n    db.execute('SELECT 1')\n")
    result = pytester.runpytest("--backends=libsql-local", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*stale rules*team.never-seen*"])


def test_severity_scale_defaults_and_project_reranking(tmp_path: Path) -> None:
    assert [
        aspect_severity(a)
        for a in ("rows.value", "error.missing", "error.unexpected", "error.dbapi_class", "rowcount.dml")
    ] == list(SCALE[:5])
    assert aspect_severity("schema", "text-spacing") == "schema-text" and aspect_severity("schema") == "data"
    (tmp_path / "pyproject.toml").write_text(
        '[tool.traceparity.severity]\n"rowcount.dml" = "data"\n"libsql.rowcount-after-select" = "error-class"\n'
    )
    reg = load_registry(tmp_path)
    dml = reg.judge(
        LIBSQL,
        "s",
        [
            Difference(
                "rowcount.dml", "m", expected="1", actual="0", context=ctx("INSERT INTO t VALUES (1) RETURNING id")
            )
        ],
    )
    assert dml.attributions[0].rule_id == "libsql.rowcount-of-returning-is-stale"
    assert dml.attributions[0].severity == "data"
    sel = reg.judge(LIBSQL, "s", [Difference("rowcount.select", "m", expected="-1", actual="0")])
    assert sel.attributions[0].severity == "error-class"


def test_summary_by_severity_and_rule() -> None:
    reg = shipped()
    diffs = [
        Difference("rows.value", "a"),
        Difference("rows.value", "b"),
        Difference(
            "rows.storage_class",
            "c",
            expected="integer",
            actual="real",
            relation="int-outside-i32-as-real",
            context=ctx("SELECT 1"),
        ),
        *[Difference("rowcount.select", str(i), expected="-1", actual="0") for i in range(41)],
    ]
    verdict = reg.judge(LIBSQL, "s", diffs)
    assert summarize(verdict.attributions) == (
        "3 data (2 unknown; known: libsql.int-outside-i32-bound-as-real), "
        "41 metadata (known: libsql.rowcount-after-select)"
    )
    lines = verdict.message.splitlines()
    assert lines[1].startswith("  [data; unknown]") and lines[3].startswith("  [data; libsql.int-outside")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (rule(subjects=["*"], aspects=["rows.value"]), "matches everything"),
        (rule(aspects=["rows.value"]), "must say what it expects to observe"),
        (rule(expected=["1"], severity="catastrophic"), "severity must be one of"),
        (rule(expected=["1"], kind=["query"]), "kind must be among"),
        (rule(expected=["1"], params=["huge"]), "params shapes must be among"),
        (rule(expected=["1"], sql="("), "not a valid regex"),
        (rule(id="Bad Id", expected=["1"]), "stable dotted id"),
    ],
)
def test_rule_format_errors_name_the_rule(item: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_rules([item], "pyproject.toml")
    assert "pyproject.toml" in str(info.value)


def test_old_entry_format_still_loads_and_points_to_the_new_one() -> None:
    (old,) = parse_entries(
        [{"backend": LIBSQL, "subjects": ["*"], "aspects": ["rowcount.*"], "reason": "r"}], "pyproject.toml"
    )
    assert old.id == "pyproject.toml#0" and old.subjects == () and old.legacy
    assert DivergenceRegistry([old]).judge(LIBSQL, "s", [Difference("rowcount.dml", "m")]).status == "known"
    with pytest.raises(UsageError, match="belongs to the rule format"):
        parse_entries([{"backend": LIBSQL, "reason": "r", "id": "x.y"}], "pyproject.toml")


def test_consequence_rule_needs_the_cause_on_the_same_database_and_table() -> None:
    reg = shipped()
    content = Difference("content", "db1: table 't' rows differ")
    prior = frozenset({("dml", frozenset({"int-outside-i32"}), "t")})
    same = StepContext(op="final", kind="final", db="db1", prior=prior, table="t")
    assert reg.attribute(LIBSQL, "s", content.with_context(same)).rule_id == "libsql.int-outside-i32-stored-as-real"
    other_table = dataclasses.replace(same, table="u")
    assert reg.attribute(LIBSQL, "s", content.with_context(other_table)).rule is None
    assert reg.attribute(LIBSQL, "s", content.with_context(dataclasses.replace(same, prior=frozenset()))).rule is None


def test_a_step_without_difference_builds_no_index() -> None:
    reg = shipped()
    for i in range(1000):
        assert reg.judge(LIBSQL, f"trace::t#{i}", []).status == "same"
    assert reg._aspect == {}  # no aspect lookup happened: nothing to explain


def test_pytest_json_report_carries_the_triage_per_test(pytester: pytest.Pytester) -> None:
    import json
    import sqlite3

    import pytest_traceparity.plugin as plugin
    from pytest_traceparity.trace.recorder import recording

    wire = [] if hasattr(plugin, "pytest_collect_file") else ["-p", "pytest_traceparity.pytest_glue.traces"]
    traces = pytester.path / "fixtures" / "traces"
    traces.mkdir(parents=True)
    with recording(traces / "big.jsonl", base_dir=str(pytester.path)):
        conn = sqlite3.connect(pytester.path / "big.db")
        conn.execute("SELECT ? AS big, typeof(?)", (2**40, 2**40)).fetchall()
        conn.close()
    args = [*wire, "-p", "no:cacheprovider", "-p", "no:randomly", "fixtures/traces/big.jsonl"]
    pytester.runpytest(*args, "--update-golden").assert_outcomes(passed=1)
    result = pytester.runpytest(*args, "--backends=libsql-local", "--traceparity-report=report.json")
    result.assert_outcomes(xfailed=1)
    (item,) = [
        i for i in json.loads((pytester.path / "report.json").read_text())["items"] if i["backend"] == "libsql-local"
    ]
    assert "libsql.int-outside-i32-bound-as-real" in item["rules"]
    differences = item["triage"]["differences"]
    bound = next(d for d in differences if d["aspect"] == "rows.storage_class")
    assert (bound["rule"], bound["severity"], bound["expected"], bound["actual"]) == (
        "libsql.int-outside-i32-bound-as-real",
        "data",
        "integer",
        "real",
    )
    assert item["triage"]["root_causes"][0] == {
        "rule": "libsql.int-outside-i32-bound-as-real",
        "severity": "data",
        "count": 1,
        "first_seq": bound["seq"],
    }
