"""The report's data: what ran where, what served it, and how it ended."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_STEP_SUFFIX = re.compile(r"\s*\[seq [^\]]*\]$")  # trace items name the steps a reason covered
OUTCOMES = ("passed", "failed", "xfailed", "xpassed", "skipped", "error")
FORMAT = "traceparity-report"
VERSION = 1


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
class ParityReport:
    reference: str = ""
    backends: list[str] = field(default_factory=list)
    items: list[ItemRecord] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)

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

    def known_divergences(self) -> dict[str, Counter[str]]:
        """xfail reasons per backend, with how often each was hit."""
        table: dict[str, Counter[str]] = {}
        for item in self.items:
            if item.outcome == "xfailed" and item.reason:
                for line in item.reason.splitlines():
                    reason = _STEP_SUFFIX.sub("", line.strip())
                    if reason:
                        table.setdefault(item.backend, Counter())[reason] += 1
        return table

    def rule_hits(self) -> dict[str, Counter[str]]:
        """Per backend: how many tests each rule id explained a difference in."""
        table: dict[str, Counter[str]] = {}
        for item in self.items:
            for rule in item.rules:
                table.setdefault(item.backend, Counter())[rule] += 1
        return table

    def stale_rules(self, rules: Any) -> list[str]:
        """Ids of non-strict rules that could apply to a backend that ran, and explained nothing."""
        hit = {rule for item in self.items for rule in item.rules}
        ran = [b for b in self.counts() if b]
        return [r.id for r in rules if r.id not in hit and not r.strict and r.active()
                and any(r.applies_backend(b) for b in ran)]

    def max_lag(self) -> dict[str, int]:
        """Largest replication lag (frames behind the primary) seen per backend."""
        lags: dict[str, int] = {}
        for item in self.items:
            lag = item.info.get("lag_frames")
            if isinstance(lag, int):
                lags[item.backend] = max(lags.get(item.backend, 0), lag)
        return lags

    def xfail_breakdown(self, blanket_reasons: set[str]) -> dict[str, tuple[int, int]]:
        """Per backend: (xfails explained by client-wide rules only, xfails with case-specific ones).

        Client-wide rules (glob subjects, e.g. "rowcount after SELECT is a leftover") say the
        rows, types and errors still matched; case-specific ones are the differences to read.
        """
        table: dict[str, tuple[int, int]] = {}
        for item in self.items:
            if item.outcome != "xfailed":
                continue
            reasons = {_STEP_SUFFIX.sub("", line.strip()) for line in item.reason.splitlines() if line.strip()}
            wide, specific = table.get(item.backend, (0, 0))
            if reasons and reasons <= blanket_reasons:
                wide += 1
            else:
                specific += 1
            table[item.backend] = (wide, specific)
        return table

    def failures(self) -> list[ItemRecord]:
        return [i for i in self.items if i.outcome in ("failed", "error", "xpassed")]

    @property
    def ok(self) -> bool:
        return not self.failures()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "reference": self.reference,
            "backends": self.backends,
            "environment": self.environment,
            "summary": {b: dict(c) for b, c in self.counts().items()},
            "served_by": self.served_by(),
            "max_lag_frames": self.max_lag(),
            "items": [asdict(i) for i in self.items],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], origin: str = "report") -> ParityReport:
        if data.get("format") != FORMAT:
            raise ValueError(f"{origin}: not a traceparity report (format={data.get('format')!r})")
        if data.get("version") != VERSION:
            raise ValueError(f"{origin}: report version {data.get('version')!r} is not supported (want {VERSION})")
        return cls(
            reference=data.get("reference", ""),
            backends=list(data.get("backends", [])),
            environment=dict(data.get("environment", {})),
            items=[ItemRecord(**item) for item in data.get("items", [])],
        )

    def write(self, path: Path) -> None:
        """Write ``.json`` or ``.html`` (by suffix) atomically."""
        from .render import render_html

        if path.suffix.lower() == ".html":
            text = render_html(self)
        elif path.suffix.lower() == ".json":
            text = json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n"
        else:
            raise ValueError(f"--traceparity-report={path}: use a .json or .html file name")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
