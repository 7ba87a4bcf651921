"""What a replay found: the steps that differ, with the registry's verdicts, and how to say it.

Kept apart from the verify loop (:mod:`.verify`) so that reports can be built, merged and
rendered without replaying anything.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compare import Difference
from ..divergences import Attribution, most_severe_first, reason_lines, step_rank, summarize
from ..divergences.registry import triage
from ..trace.format import Event
from ..values import display
from .store import trace_name, update_command

MAX_LISTED = 10
# Known-divergence steps kept whole; past this, only counts per rule are kept, so replay
# memory stays flat on a long trace where (say) every SELECT differs in a known way.
KEEP_KNOWN = 2000


@dataclass
class StepReport:
    """One step that differed from the golden, with the registry's verdict."""

    seq: int | str
    conn: int | None
    where: str
    sql: str
    params: str
    expected: str
    actual: str
    differences: list[Difference]
    status: str
    message: str = ""
    reasons: list[str] = field(default_factory=list)
    attributions: list[Attribution] = field(default_factory=list)

    @property
    def rank(self) -> tuple[int, int]:
        """:func:`~pytest_traceparity.divergences.step_rank` (the caller keeps seq order within a rank)."""
        return step_rank(self.attributions)

    def describe(self, backend: str) -> str:
        lines = [f"seq {self.seq}" + (f", conn {self.conn}" if self.conn is not None else "") + f" ({self.where})"]
        if self.sql:
            lines.append(f"  SQL:      {self.sql}")
        if self.params:
            lines.append(f"  params:   {self.params}")
        if self.expected or self.actual:
            lines.append(f"  expected: {self.expected}   (golden, from the reference backend)")
            lines.append(f"  actual:   {self.actual}   ({backend})")
        if self.attributions:
            lines.extend(f"  {a.label()}" for a in most_severe_first(self.attributions))
        else:
            lines.extend(f"  {d}" for d in self.differences)
        if self.status in ("fixed", "expired"):
            lines.append(f"  {self.message}")
        return "\n".join(lines)


@dataclass
class ReplayReport:
    trace: Path
    golden: Path
    backend: str
    steps: int = 0
    failures: list[StepReport] = field(default_factory=list)
    known: list[StepReport] = field(default_factory=list)
    # known steps past KEEP_KNOWN: (rule, severity, aspect) -> [count, first seq, one attribution]
    folded: dict[tuple[str | None, str, str], list[Any]] = field(default_factory=dict)
    known_folded: int = 0
    folded_reasons: dict[str, int | str] = field(default_factory=dict)  # reason -> first folded seq
    golden_status: str | None = None  # created / updated / unchanged (update mode)
    departures: list[Any] = field(default_factory=list)  # update mode: trace.faithful.Departure
    replay_notes: Any = None  # trace.replayer.ReplayStats: steps excluded from comparison, seeded databases
    served_by: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return trace_name(self.trace)

    @property
    def status(self) -> str:
        """``passed``, ``failed`` or ``xfail`` (only known divergences were hit)."""
        if self.failures:
            return "failed"
        return "xfail" if self.known else "passed"

    @property
    def known_steps(self) -> int:
        return len(self.known) + self.known_folded

    def fold(self, seq: int | str, reasons: list[str], attributions: list[Attribution]) -> None:
        """Count a known step instead of keeping it (past KEEP_KNOWN)."""
        self.known_folded += 1
        for reason in reasons:
            self.folded_reasons.setdefault(reason, seq)
        for a in attributions:
            key = (a.rule_id, a.severity, a.difference.aspect)
            group = self.folded.get(key)
            if group is None:
                self.folded[key] = [1, seq, a]
            else:
                group[0] += 1

    def attributions(self) -> list[tuple[int | str, Attribution]]:
        """Every difference with its seq, in step order (failures and known steps together)."""
        steps = sorted(self.failures + self.known, key=lambda s: (isinstance(s.seq, str), s.seq))
        return [(s.seq, a) for s in steps for a in s.attributions]

    def _all_attributions(self) -> Iterator[tuple[int | str, Attribution]]:
        """As :meth:`attributions`, plus folded steps (each group's first seq, repeated ``count`` times)."""
        yield from self.attributions()
        for count, seq, attribution in self.folded.values():
            for _ in range(count):
                yield seq, attribution

    def summary(self) -> str:
        return summarize(a for _, a in self._all_attributions())

    def failure_message(self) -> str:
        ranked = sorted(self.failures, key=lambda f: f.rank)  # stable: seq order within a rank
        first, rest = ranked[0], ranked[1:]
        lines = [
            f"trace '{self.name}' diverges on {self.backend} from its golden {self.golden}: {self.summary()}",
            f"most severe diverging step: {first.describe(self.backend)}",
        ]
        if rest:
            listed = ", ".join(str(f.seq) for f in rest[:MAX_LISTED])
            more = " ..." if len(rest) > MAX_LISTED else ""
            lines.append(f"and {len(rest)} more step(s) diverge (most severe first): seq {listed}{more}")
        else:
            lines.append("no other step diverges")
        if self.known:
            lines.append(f"({self.known_steps} step(s) differ in known ways: {self.xfail_reason()})")
        lines.append(f"if the reference behaviour changed on purpose, review and run: {update_command(self.trace)}")
        return "\n".join(lines)

    def xfail_reason(self) -> str:
        reasons: dict[str, list[str]] = {}
        for step in self.known:
            for reason in step.reasons:
                reasons.setdefault(reason, []).append(str(step.seq))
        for reason, seq in self.folded_reasons.items():
            reasons.setdefault(reason, []).append(str(seq))  # folded steps: their first seq, then "..."
        return reason_lines(reasons, cut=self.folded_reasons)

    def triage(self) -> dict[str, Any]:
        """``differences`` (seq, aspect, severity, rule, expected, actual, sql) and ``root_causes``."""
        sql = {s.seq: s.sql for s in self.failures + self.known}
        out = triage(self.attributions(), sql, self._all_attributions())
        if self.known_folded:
            out["differences_not_listed"] = sum(group[0] for group in self.folded.values())
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "trace": str(self.trace),
            "backend": self.backend,
            "status": self.status,
            "steps": self.steps,
            "golden": str(self.golden),
            "golden_status": self.golden_status,
            "summary": self.summary(),
            **self.triage(),
            "failures": [
                {"seq": f.seq, "status": f.status, "message": f.message, "differences": [str(d) for d in f.differences]}
                for f in self.failures
            ],
            "known": [{"seq": k.seq, "rules": [r.split(": ", 1)[0] for r in k.reasons]} for k in self.known],
            **({"known_not_listed": self.known_folded} if self.known_folded else {}),
        }


def _short(text: str, limit: int = 200) -> str:
    if len(text) <= limit and text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text  # printable: its only whitespace is " ", none doubled or at the ends, so split/join keeps it
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@functools.lru_cache(maxsize=4096)
def short_sql(sql: str) -> str:
    """:func:`_short` of a statement's text: a long trace reports the same statement thousands of times."""
    return _short(sql)


def _params_text(event: Event) -> str:
    if event.op == "execute":
        values = event.params
        if isinstance(values, dict):
            return _short("{" + ", ".join(f"{k}: {display(v)}" for k, v in values.items()) + "}")
        return _short("[" + ", ".join(map(display, values)) + "]") if values else ""
    if event.op == "executemany":
        return f"{len(event.many or [])} parameter set(s)"
    return ""


_REASONS: dict[tuple[str, str], str] = {}


def _reason_text(entry: Any) -> str:
    """``id: reason``, one shared string per rule: a long trace repeats it for thousands of steps."""
    key = (entry.id, entry.reason)
    text = _REASONS.get(key)
    if text is None:
        text = _REASONS[key] = f"{entry.id}: {entry.reason}"
    return text
