"""The report's data: what ran where, what served it, how it ended, and the rules it judged by.

Everything the renderings show is derived from this model (see :mod:`.causes`), and the model
round-trips through JSON (``schema.json`` describes it; :mod:`.output` writes it), so HTML and Markdown can be rendered
from the JSON of one or several runs (:mod:`.merge`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

FORMAT = "traceparity-report"
VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass
class ItemRecord:
    nodeid: str
    backend: str
    outcome: str
    served_by: str = ""
    reason: str = ""
    duration: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)  # ids of the rules that explained a difference
    triage: dict[str, Any] = field(default_factory=dict)  # differences + root_causes, as `replay --json`


@dataclass
class RuleInfo:
    """What a report needs to know about a rule: enough to explain a root cause without the TOML."""

    id: str
    reason: str
    severity: str | None = None
    until: str | None = None
    origin: str = ""
    backends: list[str] = field(default_factory=list)
    applicable: bool = False  # its backend ran, it is active and not strict: it could have been hit
    stale: bool = False  # applicable and hit nothing
    project: bool = False  # from the project's pyproject.toml, not shipped with the package

    @classmethod
    def from_rule(cls, rule: Any, ran: list[str], hit: set[str]) -> RuleInfo:
        applicable = not rule.strict and rule.active() and any(rule.applies_backend(b) for b in ran)
        return cls(
            id=rule.id,
            reason=rule.reason,
            severity=rule.severity,
            until=rule.until.isoformat() if rule.until else None,
            origin=str(rule.origin),
            backends=list(rule.backends),
            applicable=applicable,
            stale=applicable and rule.id not in hit,
            project=bool(rule.project),
        )


@dataclass
class RunInfo:
    """One pytest session: its versions, how long it took, and whether it ran everything collected."""

    environment: dict[str, str] = field(default_factory=dict)
    duration: float = 0.0
    collected: int = 0
    deselected: int = 0
    backends: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)  # -k / -m / --lf / --deselect given

    @property
    def partial(self) -> bool:
        """Selected by -k, -m, --lf... or most tests deselected: unused rules may simply not have run."""
        return bool(self.filters) or (self.deselected > 0 and self.deselected * 2 >= self.collected + self.deselected)


@dataclass
class ParityReport:
    reference: str = ""
    backends: list[str] = field(default_factory=list)
    items: list[ItemRecord] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    rules: dict[str, RuleInfo] = field(default_factory=dict)
    runs: list[RunInfo] = field(default_factory=list)

    def add(self, record: ItemRecord) -> None:
        self.items.append(record)

    def counts(self) -> dict[str, Counter[str]]:
        table: dict[str, Counter[str]] = {b: Counter() for b in self.backends}
        for item in self.items:
            table.setdefault(item.backend, Counter())[item.outcome] += 1
        return table

    def served_by(self) -> dict[str, list[str]]:
        labels: dict[str, dict[str, None]] = {}
        for item in self.items:
            if item.served_by:
                labels.setdefault(item.backend, {})[item.served_by] = None
        return {backend: list(found) for backend, found in labels.items()}

    def note_rules(self, rules: Any) -> None:
        """Record the rules of this run, with which could have applied and which stayed unused."""
        hit = {rule for item in self.items for rule in item.rules}
        ran = [b for b, c in self.counts().items() if b and sum(c.values())]
        self.rules = {r.id: RuleInfo.from_rule(r, ran, hit) for r in rules}

    def stale_rules(self) -> list[str]:
        """Ids of non-strict rules that could apply to a backend that ran, and explained nothing."""
        return [r.id for r in self.rules.values() if r.stale]

    @property
    def partial(self) -> bool:
        return any(run.partial for run in self.runs)

    def partial_reason(self) -> str:
        """``selected tests with -k x`` / ``deselected most tests``: why unused rules prove nothing."""
        filters = [f for run in self.runs for f in run.filters]
        if filters:
            return f"selected tests with {' '.join(dict.fromkeys(filters))}"
        return "deselected most tests" if self.partial else ""

    def max_lag(self) -> dict[str, int]:
        """Largest replication lag (frames behind the primary) seen per backend."""
        lags: dict[str, int] = {}
        for item in self.items:
            lag = item.info.get("lag_frames")
            if isinstance(lag, int):
                lags[item.backend] = max(lags.get(item.backend, 0), lag)
        return lags

    def timings(self) -> dict[str, float]:
        """Seconds spent in tests per backend (summed over workers, so it can exceed the wall time)."""
        spent: dict[str, float] = {}
        for item in self.items:
            spent[item.backend] = spent.get(item.backend, 0.0) + item.duration
        return {b: round(s, 3) for b, s in spent.items()}

    def failures(self) -> list[ItemRecord]:
        return [i for i in self.items if i.outcome in ("failed", "error", "xpassed")]

    @property
    def ok(self) -> bool:
        return not self.failures()

    @classmethod
    def from_json(cls, data: dict[str, Any], origin: str = "report") -> ParityReport:
        """Read a report; derived sections (verdict, root causes) are recomputed, not trusted."""
        if data.get("format") != FORMAT:
            raise ValueError(f"{origin}: not a traceparity report (format={data.get('format')!r})")
        if data.get("version") not in READABLE_VERSIONS:
            raise ValueError(
                f"{origin}: report version {data.get('version')!r} is not supported "
                f"(want one of {', '.join(map(str, READABLE_VERSIONS))})"
            )
        rules = [RuleInfo(**r) for r in data.get("rules", [])]
        return cls(
            reference=data.get("reference", ""),
            backends=list(data.get("backends", [])),
            environment=dict(data.get("environment", {})),
            items=[ItemRecord(**item) for item in data.get("items", [])],
            rules={r.id: r for r in rules},
            runs=[RunInfo(**r) for r in data.get("runs", [])],
        )


def schema() -> dict[str, Any]:
    """The JSON Schema of :meth:`ParityReport.to_json` (shipped as ``report/schema.json``)."""
    from importlib import resources

    text = resources.files("pytest_traceparity.report").joinpath("schema.json").read_text(encoding="utf-8")
    return dict(json.loads(text))
