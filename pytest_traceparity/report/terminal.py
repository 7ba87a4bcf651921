"""The terminal summary: the outcome matrix, then about 15 lines of readiness (``-v``: everything)."""

from __future__ import annotations

from .causes import Analysis, Cause, analyse, count_phrase
from .model import ParityReport

COLUMNS = ("passed", "failed", "xfailed", "skipped", "error", "xpassed")
TOP_CAUSES = 6
TOP_STALE = 3


def matrix(report: ParityReport) -> list[str]:
    counts = report.counts()
    if not counts:
        return []
    width = max(len(b) for b in counts) + 2
    lines = [f"{'backend':<{width}}" + "".join(f"{c:>9}" for c in COLUMNS) + "   served by"]
    served = report.served_by()
    for backend, counter in counts.items():
        mark = " (reference)" if backend == report.reference else ""
        label = "; ".join(served.get(backend, [])) or "-"
        lines.append(f"{backend:<{width}}" + "".join(f"{counter.get(c, 0):>9}" for c in COLUMNS) + f"   {label}{mark}")
    return lines


def cause_line(cause: Cause) -> str:
    where = "; ".join(f"{b} {count_phrase(cause.kinds(b))}" for b in cause.tests)
    return f"  {cause.severity:<11} {cause.label}: {where}"


def stale_lines(report: ParityReport, verbose: bool) -> list[str]:
    """One line: the project's unused rules first (it can fix those), shipped ones as a count."""
    stale = [r for r in report.rules.values() if r.stale]
    if not stale:
        return []
    if report.partial:
        return [f"stale rules: not judged, this run {report.partial_reason()} ({len(stale)} rule(s) unused)"]
    ordered = [r.id for r in stale if r.project] + [r.id for r in stale if not r.project]
    own = sum(1 for r in stale if r.project)
    shown = ordered if verbose else ordered[: min(TOP_STALE, own)]
    more = f", +{len(ordered) - len(shown)} more (-v lists them)" if len(ordered) > len(shown) else ""
    more = more if shown else " (-v lists them)"
    return [
        f"stale rules: {len(stale)} ({own} of the project's) could apply to a backend that ran and explained "
        f"nothing (remove or fix them if the run covered their workload){': ' if shown else ''}"
        f"{', '.join(shown)}{more}"
    ]


def render_terminal(report: ParityReport, verbose: bool = False, analysis: Analysis | None = None) -> list[str]:
    lines = matrix(report)
    if not lines:
        return []
    analysis = analysis or analyse(report)
    lines.append("readiness per backend (root causes by severity, most severe first; unknown = no rule explains it):")
    lines += [f"  {v.line()}" for v in analysis.verdicts if not v.reference]
    lines.append(f"overall: {analysis.overall()}")
    causes = analysis.causes
    if causes:
        shown = causes if verbose else causes[:TOP_CAUSES]
        more = "" if len(shown) == len(causes) else f"; top {len(shown)}, -v lists all"
        lines.append(f"root causes ({len(causes)}, unknown first within a severity{more}):")
        for cause in shown:
            lines.append(cause_line(cause))
            if verbose:
                lines.append(f"      {cause.reason}")
    for backend, lag in report.max_lag().items():
        lines.append(f"{backend}: replication lag at test end, max {lag} frame(s) behind the primary")
    lines += stale_lines(report, verbose)
    return lines
