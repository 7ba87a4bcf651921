"""How a conformance failure reads: the case, its file, each diverging step, most severe first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..compare import Difference, Outcome
from ..divergences import Verdict, summarize
from ..divergences.severity import RANK
from .case import Case, StepDifference


def flatten(step_diffs: Sequence[StepDifference]) -> list[Difference]:
    """Differences with the step named in the message; aspect, observations and context unchanged."""
    return [replace(d, message=f"{sd.step.label}: {d.message}") for sd in step_diffs for d in sd.differences]


def render(
    case: Case,
    backend: str,
    against: str,
    step_diffs: Sequence[StepDifference],
    *,
    title: str | None = None,
    verdict: Verdict | None = None,
) -> str:
    """A failure report: the case, its file, then each diverging step (most severe first) with
    its SQL, each difference's severity and rule (or "unknown"), expected and actual."""
    attributions = verdict.attributions if verdict is not None else []
    lines = [title or f"conformance case {case.id} on {backend} differs from the reference {against}"]
    if attributions:
        lines[0] += f": {summarize(attributions)}"
    lines.append(f"  case file: {case.source}")
    lines.append(f"  what it checks: {case.description}")
    labels: dict[int, list[tuple[int, int, str]]] = {}
    flat = [(sd, d) for sd in step_diffs for d in sd.differences]
    for (sd, d), a in zip(flat, attributions):
        rank = (RANK[a.severity], 0 if a.rule is None else 1)
        labels.setdefault(id(sd), []).append(
            (*rank, f"    [{a.severity}; {a.rule_id or 'unknown'}] [{d.aspect}] {d.message}")
        )
    order = sorted(step_diffs, key=lambda sd: min(labels.get(id(sd), [(len(RANK), 1, "")]))[:2])
    for sd in order:
        lines.append(f"  {sd.step.describe()}")
        if id(sd) in labels:
            lines.extend(text for *_, text in sorted(labels[id(sd)], key=lambda x: x[:2]))
        else:
            lines.extend(f"    [{d.aspect}] {d.message}" for d in sd.differences)
        if sd.expected.result is not None or sd.expected.failed:
            lines.append(f"    expected ({against}): {sd.expected.summary()}")
        lines.append(f"    actual   ({backend}): {_summary(sd.actual)}")
    return "\n".join(lines)


def _summary(outcome: Outcome) -> str:
    if outcome.error is not None:
        return f"{outcome.summary()}: {outcome.error.exc_type}: {outcome.error.message}"
    return outcome.summary()
