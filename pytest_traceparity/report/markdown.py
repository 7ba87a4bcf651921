"""Markdown for GitHub step summaries: the verdict table and the root causes, no per-test rows."""

from __future__ import annotations

from .causes import Analysis, analyse, count_phrase
from .model import ParityReport

MAX_CAUSES = 40


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: ParityReport, analysis: Analysis | None = None) -> str:
    analysis = analysis or analyse(report)
    served = report.served_by()
    present = analysis.severities()
    out = ["## traceparity: readiness per backend", "", f"**{analysis.overall()}**", ""]
    head = ["backend", "status", *present, "unknown", "failing", "passed", "xfailed", "failed", "served by"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|---" * len(head) + "|")
    for verdict in analysis.verdicts:
        by = verdict.by_severity()
        cells = [
            f"`{verdict.backend}`",
            verdict.status,
            *(str(len(by.get(s, []))) for s in present),
            str(verdict.unknown),
            str(verdict.failures),
            *(str(verdict.outcomes.get(c, 0)) for c in ("passed", "xfailed", "failed")),
            _cell("; ".join(served.get(verdict.backend, [])) or "-"),
        ]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", f"Reference: `{report.reference}`.", ""]
    out += [f"- {_cell(v.line())}" for v in analysis.verdicts if not v.reference]
    if analysis.causes:
        out += ["", f"### Root causes ({len(analysis.causes)}), most severe first", ""]
        for cause in analysis.causes[:MAX_CAUSES]:
            where = "; ".join(f"{b}: {count_phrase(cause.kinds(b))}" for b in cause.tests)
            reason = cause.reason if len(cause.reason) <= 200 else cause.reason[:197] + "..."
            out.append(f"- **{cause.severity}** `{cause.label}` ({where}): {_cell(reason)}")
        if len(analysis.causes) > MAX_CAUSES:
            out.append(f"- and {len(analysis.causes) - MAX_CAUSES} more (see the HTML report)")
    if analysis.failures:
        out += ["", "### Failures without a recorded difference", ""]
        out += [f"- {len(tests)}x {_cell(reason)}" for reason, tests in list(analysis.failures.items())[:30]]
    stale = report.stale_rules()
    if stale and not report.partial:
        out += [
            "",
            f"{len(stale)} stale rule(s) (could apply, explained nothing): "
            + ", ".join(f"`{s}`" for s in stale[:10])
            + (" ..." if len(stale) > 10 else ""),
        ]
    return "\n".join(out) + "\n"
