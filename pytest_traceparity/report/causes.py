"""Root causes and readiness: what a team reads before moving to a backend.

Each difference a test saw (its ``triage``) belongs to one root cause: the rule that
explained it, or, unexplained, its aspect (an *unknown* cause). Tests that xfailed by a
``known_divergence`` marker without differences are a cause of their own (by reason).
A backend's verdict counts its causes per severity, most severe first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..divergences.severity import RANK, SCALE
from .model import ItemRecord, ParityReport

MAX_EXAMPLES = 3
_RULE_PREFIX = re.compile(r"^([a-z0-9][a-z0-9_.-]*[a-z0-9]): ")
_MARKER_PREFIX = re.compile(r"^known divergence on [^:]+: ")
_CONFORMANCE = re.compile(r"test_conformance\.py::test_case\[(.*)\]$")


def test_kind(nodeid: str) -> str:
    """``trace`` for recorded traces, ``case`` for conformance cases, ``test`` otherwise."""
    if ".jsonl::" in nodeid:
        return "trace"
    return "case" if "test_conformance.py::test_case[" in nodeid else "test"


def short_test(nodeid: str, backend: str) -> str:
    """The test without its backend parameter; conformance cases by their case id."""
    if nodeid.endswith(f"[{backend}]"):
        nodeid = nodeid[: -len(backend) - 2]
    elif nodeid.endswith(f"-{backend}]"):
        nodeid = nodeid[: -len(backend) - 2] + "]"
    match = _CONFORMANCE.search(nodeid)
    if match:
        return f"case {match.group(1)}"
    if ".jsonl::" in nodeid:
        return f"trace {nodeid.split('::', 1)[0]}"
    return nodeid


def count_phrase(kinds: dict[str, int]) -> str:
    """``11 cases, 2 traces``."""
    return ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in kinds.items() if n) or "0 tests"


@dataclass
class Cause:
    key: str  # rule id, "unknown:<aspect>" or "marker:<reason>"
    severity: str
    reason: str
    rule: str | None = None
    aspect: str | None = None
    known: bool = True
    until: str | None = None
    origin: str = ""
    differences: int = 0
    tests: dict[str, dict[str, str]] = field(default_factory=dict)  # backend -> nodeid -> kind
    examples: list[dict[str, Any]] = field(default_factory=list)
    minimized: str | None = None

    @property
    def label(self) -> str:
        if self.rule:
            return self.rule
        if self.aspect:
            return f"unknown {self.aspect}"
        return "known_divergence marker"

    @property
    def sort_key(self) -> tuple[int, bool, int, str]:
        return (RANK[self.severity], self.known, -self.test_count, self.key)

    @property
    def test_count(self) -> int:
        return sum(len(t) for t in self.tests.values())

    def kinds(self, backend: str | None = None) -> dict[str, int]:
        found: dict[str, int] = {"case": 0, "trace": 0, "test": 0}
        for b, tests in self.tests.items():
            if backend is None or b == backend:
                for kind in tests.values():
                    found[kind] += 1
        return found

    def grouped_tests(self) -> dict[str, list[str]]:
        """Test (without backend) -> the backends it showed this cause on; read once, not per row."""
        grouped: dict[str, list[str]] = {}
        for backend, tests in self.tests.items():
            for nodeid in tests:
                grouped.setdefault(short_test(nodeid, backend), []).append(backend)
        return dict(sorted(grouped.items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.key,
            "rule": self.rule,
            "aspect": self.aspect,
            "known": self.known,
            "severity": self.severity,
            "reason": self.reason,
            "until": self.until,
            "origin": self.origin,
            "differences": self.differences,
            "backends": {
                b: {"tests": len(t), "cases": self.kinds(b)["case"], "traces": self.kinds(b)["trace"]}
                for b, t in self.tests.items()
            },
            "examples": self.examples,
            "minimized": self.minimized,
        }


@dataclass
class BackendVerdict:
    backend: str
    reference: bool
    causes: list[Cause]
    outcomes: dict[str, int]
    failures: int  # failed/error/xpassed tests no difference explains
    unknown: int

    def by_severity(self) -> dict[str, list[Cause]]:
        table: dict[str, list[Cause]] = {}
        for cause in self.causes:
            table.setdefault(cause.severity, []).append(cause)
        return {s: table[s] for s in SCALE if s in table}

    @property
    def status(self) -> str:
        if self.reference:
            return "reference"
        if self.unknown or self.failures:
            return "not ready"
        if not self.causes:
            return "parity"
        return "known divergences"

    def line(self, detail: int = 2) -> str:
        """``libsql-local: 1 data (rule: 11 cases, 2 traces), 3 metadata; 0 unknown``."""
        parts = []
        for index, (severity, causes) in enumerate(self.by_severity().items()):
            text = f"{len(causes)} {severity}"
            if index == 0 or any(not c.known for c in causes):  # the worst one, and anything unknown
                shown = [f"{c.label}: {count_phrase(c.kinds(self.backend))}" for c in causes[:detail]]
                more = f"; +{len(causes) - detail} more" if len(causes) > detail else ""
                text += f" ({'; '.join(shown)}{more})"
            parts.append(text)
        head = ", ".join(parts) if parts else "no differences"
        tail = f"; {self.unknown} unknown"
        if self.failures:
            tail += f"; {self.failures} failing without a recorded difference"
        if self.reference:
            return f"{self.backend}: reference backend (the truth others are compared to)"
        return f"{self.backend}: {head}{tail}"

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "status": self.status,
            "line": self.line(),
            "severities": {s: [c.key for c in cs] for s, cs in self.by_severity().items()},
            "unknown": self.unknown,
            "failures": self.failures,
            "outcomes": self.outcomes,
        }


@dataclass
class Analysis:
    causes: list[Cause]
    verdicts: list[BackendVerdict]
    failures: dict[str, list[ItemRecord]]  # first line of the reason -> tests (no recorded difference)

    @property
    def unknown(self) -> list[Cause]:
        return [c for c in self.causes if not c.known]

    def severities(self) -> list[str]:
        present = {c.severity for c in self.causes}
        return [s for s in SCALE if s in present]

    def overall(self) -> str:
        unknown = self.unknown
        if unknown:
            tests = sum(c.test_count for c in unknown)
            head = f"{len(unknown)} unknown divergence(s) in {tests} test(s) (no rule explains them)"
        else:
            head = "no unknown divergences"
        known = [c for c in self.causes if c.known]
        if known:
            head += f"; {len(known)} known root cause(s), severities present: {', '.join(self.severities())}"
        elif not unknown:
            head += "; no differences recorded"
        failing = sum(len(t) for t in self.failures.values())
        if failing:
            head += f"; {failing} test(s) failed without a recorded difference"
        return head

    def overall_json(self) -> dict[str, Any]:
        return {
            "line": self.overall(),
            "unknown": len(self.unknown),
            "root_causes": len(self.causes),
            "severities": self.severities(),
            "failures": sum(len(t) for t in self.failures.values()),
        }


def _rule_cause(report: ParityReport, rule_id: str, severity: str) -> Cause:
    info = report.rules.get(rule_id)
    if info is None:
        return Cause(rule_id, severity, "(rule not described in this report)", rule=rule_id)
    return Cause(rule_id, severity, info.reason, rule=rule_id, until=info.until, origin=info.origin)


def _example(diff: dict[str, Any], item: ItemRecord) -> dict[str, Any]:
    return {
        "backend": item.backend,
        "test": item.nodeid,
        "seq": diff.get("seq"),
        "aspect": diff.get("aspect"),
        "sql": diff.get("sql"),
        "expected": diff.get("expected"),
        "actual": diff.get("actual"),
        "relation": diff.get("relation"),
    }


def _add_example(cause: Cause, example: dict[str, Any]) -> None:
    """Up to three, different in what they show (not the same value pair three times)."""
    if len(cause.examples) >= MAX_EXAMPLES:
        return
    seen = {(e["aspect"], e["expected"], e["actual"]) for e in cause.examples}
    if (example["aspect"], example["expected"], example["actual"]) not in seen:
        cause.examples.append(example)


def analyse(report: ParityReport) -> Analysis:
    causes: dict[str, Cause] = {}
    failures: dict[str, list[ItemRecord]] = {}
    for item in report.items:
        differences = item.triage.get("differences") or []
        for diff in differences:
            rule = diff.get("rule")
            severity = diff.get("severity") if diff.get("severity") in RANK else "data"
            key = rule or f"unknown:{diff.get('aspect')}:{severity}"
            cause = causes.get(key)
            if cause is None:
                if rule:
                    cause = _rule_cause(report, rule, severity)
                else:
                    cause = Cause(
                        key,
                        severity,
                        "no rule explains this difference: fix the backend or the "
                        "client, or describe its cause as a rule",
                        aspect=diff.get("aspect"),
                        known=False,
                    )
                causes[key] = cause
            cause.differences += 1
            cause.tests.setdefault(item.backend, {})[item.nodeid] = test_kind(item.nodeid)
            _add_example(cause, _example(diff, item))
            if cause.minimized is None and item.triage.get("minimized"):
                cause.minimized = str(item.triage["minimized"])
        if differences:
            continue
        if item.outcome == "xfailed" and item.reason:
            first = item.reason.splitlines()[0].strip()
            match = _RULE_PREFIX.match(first)
            if match and match.group(1) in report.rules:
                info = report.rules[match.group(1)]
                key = info.id
                cause = causes.get(key) or _rule_cause(report, key, info.severity or "data")
            else:
                text = _MARKER_PREFIX.sub("", first)
                key = f"marker:{text}"
                cause = causes.get(key) or Cause(
                    key,
                    "data",
                    text + " (a known_divergence marker states no severity; ranked as data, the worst case)",
                )
            causes[key] = cause
            cause.tests.setdefault(item.backend, {})[item.nodeid] = test_kind(item.nodeid)
        elif item.outcome in ("failed", "error", "xpassed"):
            first = (item.reason.strip().splitlines() or [item.outcome])[0][:300]
            failures.setdefault(first, []).append(item)
    ordered = sorted(causes.values(), key=lambda c: c.sort_key)
    counts = report.counts()
    verdicts = []
    for backend, outcomes in counts.items():
        mine = [c for c in ordered if backend in c.tests]
        failing = sum(1 for tests in failures.values() for t in tests if t.backend == backend)
        verdicts.append(
            BackendVerdict(
                backend, backend == report.reference, mine, dict(outcomes), failing, sum(1 for c in mine if not c.known)
            )
        )
    return Analysis(ordered, verdicts, failures)
