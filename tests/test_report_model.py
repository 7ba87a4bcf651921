"""Root causes, readiness, terminal budget, merge and HTML size, on reports built in memory."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from pytest_traceparity.report.causes import analyse
from pytest_traceparity.report.html import render_html
from pytest_traceparity.report.merge import merge
from pytest_traceparity.report.model import ItemRecord, ParityReport, RuleInfo, RunInfo, schema
from pytest_traceparity.report.output import to_json
from pytest_traceparity.report.terminal import render_terminal

LONG_REASON = "client-wide quirk: " + "x" * 600


def diff(
    rule: str | None, severity: str, aspect: str = "rows.storage_class", expected: str = "integer", actual: str = "real"
) -> dict[str, object]:
    return {
        "seq": 1,
        "aspect": aspect,
        "severity": severity,
        "rule": rule,
        "expected": expected,
        "actual": actual,
        "relation": None,
        "sql": "SELECT ?",
    }


def item(nodeid: str, backend: str, *diffs: dict[str, object], outcome: str = "xfailed") -> ItemRecord:
    rules = sorted({str(d["rule"]) for d in diffs if d["rule"]})
    return ItemRecord(
        nodeid, backend, outcome, reason="\n".join(rules), rules=rules, triage={"differences": list(diffs)}
    )


def sample() -> ParityReport:
    report = ParityReport(reference="ref", backends=["ref", "libsql-local"])
    report.rules = {
        "big-int": RuleInfo("big-int", "ints bound as REAL", "data", until="2027-03-31", applicable=True),
        "rowcount": RuleInfo("rowcount", LONG_REASON, "metadata", applicable=True),
        "unused": RuleInfo("unused", "never seen", None, applicable=True, stale=True),
    }
    for n in range(11):
        report.add(
            item(
                f"conformance/test_conformance.py::test_case[c{n}-libsql-local]",
                "libsql-local",
                diff("big-int", "data"),
                diff("rowcount", "metadata", "rowcount.select", "-1", "2"),
            )
        )
    for name in ("a", "b"):
        report.add(item(f"fixtures/traces/{name}.jsonl::{name}[libsql-local]", "libsql-local", diff("big-int", "data")))
    report.add(
        item(
            "t.py::test_new[libsql-local]",
            "libsql-local",
            diff(None, "metadata", "columns", "a", "b"),
            outcome="failed",
        )
    )
    report.add(ItemRecord("t.py::test_ok[ref]", "ref", "passed"))
    return report


def test_verdict_line_counts_causes_by_severity_with_cases_and_traces() -> None:
    analysis = analyse(sample())
    line = next(v for v in analysis.verdicts if v.backend == "libsql-local").line()
    assert line == (
        "libsql-local: 1 data (big-int: 11 cases, 2 traces), 2 metadata (unknown columns: 1 test; "
        "rowcount: 11 cases); 1 unknown"
    )
    assert [c.key for c in analysis.causes] == ["big-int", "unknown:columns:metadata", "rowcount"]
    assert analysis.overall().startswith("1 unknown divergence(s) in 1 test(s)")
    assert "severities present: data, metadata" in analysis.overall()


def test_examples_differ_and_are_capped_at_three() -> None:
    report = sample()
    for n in range(5):
        report.add(item(f"x{n}", "libsql-local", diff("big-int", "data", expected=str(n), actual=f"{n}.0")))
    big = next(c for c in analyse(report).causes if c.key == "big-int")
    assert len(big.examples) == 3
    assert len({(e["expected"], e["actual"]) for e in big.examples}) == 3


def test_terminal_is_short_by_default_and_complete_with_verbose() -> None:
    report = sample()
    report.rules.update({f"r{n}": RuleInfo(f"r{n}", f"reason {n}", "metadata", applicable=True) for n in range(30)})
    for n in range(30):
        report.add(item(f"t{n}[libsql-local]", "libsql-local", diff(f"r{n}", "metadata", "lastrowid.dml")))
    lines = render_terminal(report)
    assert len(lines) - 3 <= 15  # the matrix is header + 2 backends
    assert sum(1 for line in lines if line.startswith("  metadata")) == 5  # 6 shown: 1 data, then unknown first
    full = render_terminal(report, verbose=True)
    assert all(any(f" r{n}:" in line for line in full) for n in range(30))


def test_merge_keeps_both_runs_and_restales_rules() -> None:
    first = sample()
    first.environment = {"python": "3.12"}
    first.runs = [RunInfo({"python": "3.12"}, 3.0, 15, 0, ["ref", "libsql-local"])]
    second = ParityReport(reference="ref", backends=["ref", "sqld-http"])
    second.rules = {"unused": RuleInfo("unused", "never seen", None, applicable=True)}
    second.add(item("t.py::test_x[sqld-http]", "sqld-http", diff("unused", "error-new", "error.unexpected")))
    second.environment = {"python": "3.11"}
    second.runs = [RunInfo({"python": "3.11"}, 2.0, 1, 0, ["sqld-http"])]
    merged = merge([first, second])
    assert merged.backends == ["ref", "libsql-local", "sqld-http"]
    assert not merged.rules["unused"].stale and merged.environment["python"] == "3.12 / 3.11"
    data = to_json(merged)
    jsonschema.Draft202012Validator(schema()).validate(data)
    again = ParityReport.from_json(json.loads(json.dumps(data)))
    assert analyse(again).overall() == analyse(merged).overall()


def test_html_groups_tests_by_cause_and_stays_small(tmp_path: Path) -> None:
    """1000 xfails sharing a 600-character reason: the reason appears once, not once per test."""
    report = ParityReport(reference="ref", backends=["ref", "libsql-local"])
    report.rules = {"rowcount": RuleInfo("rowcount", LONG_REASON, "metadata", applicable=True)}
    for n in range(1000):
        report.add(
            item(
                f"conformance/test_conformance.py::test_case[c{n}-libsql-local]",
                "libsql-local",
                diff("rowcount", "metadata", "rowcount.select", "-1", "2"),
            )
        )
    page = render_html(report)
    assert page.count("x" * 600) == 1 and "<details>" in page
    assert len(page.encode()) < 20_000
    # zero counts are not highlighted
    assert '<td class="n zero">0</td>' in page and 'class="n hit-severe"' not in page
