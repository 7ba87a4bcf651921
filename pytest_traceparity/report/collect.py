"""Turning pytest's per-phase test reports into one :class:`ItemRecord` per test.

Duck-typed on pytest's ``TestReport`` (``when``, ``outcome``, ``user_properties``...), so
this module needs no pytest import; the plugin only forwards reports here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..secret import redact
from .causes import analyse
from .markdown import render_markdown
from .model import ItemRecord, ParityReport, RunInfo
from .output import write
from .terminal import render_terminal


def absorb(report: ParityReport, test_report: Any) -> None:
    """Add what one phase of one test says (runs in the xdist controller too)."""
    props = dict(test_report.user_properties)
    backend = props.get("traceparity_backend")
    if backend is None:
        return
    when = test_report.when
    facts = props.get("traceparity_info")
    if when == "teardown" and isinstance(facts, dict):
        for record in reversed(report.items):
            if record.nodeid == test_report.nodeid:
                record.info = dict(facts)
                break
    decisive = (
        when == "call" or (when == "setup" and not test_report.passed) or (when == "teardown" and test_report.failed)
    )
    if not decisive:
        return
    outcome = str(test_report.outcome)
    if when == "teardown" or (when == "setup" and test_report.failed):
        outcome = "error"
    reason = ""
    triage = props.get("traceparity_triage")
    triage = dict(triage) if isinstance(triage, dict) else {}
    rules = sorted({d["rule"] for d in triage.get("differences", []) if d.get("rule")})
    if hasattr(test_report, "wasxfail"):
        outcome = "xfailed" if test_report.skipped else "xpassed"
        reason = str(test_report.wasxfail)
    elif test_report.skipped and isinstance(test_report.longrepr, tuple):
        reason = str(test_report.longrepr[2])
    elif test_report.failed:
        crash = getattr(test_report.longrepr, "reprcrash", None)
        reason = (crash.message if crash is not None else str(test_report.longrepr))[:2000]
    report.add(
        ItemRecord(
            nodeid=test_report.nodeid,
            backend=str(backend),
            outcome=outcome,
            served_by=str(props.get("traceparity_served_by", "")),
            reason=reason,
            duration=round(float(test_report.duration), 4),
            rules=rules,
            triage=triage,
        )
    )


def selection_filters(option: Any) -> list[str]:
    """The command-line filters that make a run partial (its unused rules prove nothing)."""
    found = [
        f"-k {option.keyword}" if getattr(option, "keyword", "") else "",
        f"-m {option.markexpr}" if getattr(option, "markexpr", "") else "",
        "--lf" if getattr(option, "lf", False) else "",
        "--deselect" if getattr(option, "deselect", None) else "",
    ]
    return [f for f in found if f]


def finish(
    report: ParityReport,
    *,
    secrets: tuple[Any, ...],
    path: Path | None,
    rules: Any = (),
    run: RunInfo | None = None,
    verbose: bool = False,
) -> list[str]:
    """Redact, note the rules and the run, write the file and the GitHub step summary; returns the terminal lines."""
    for item in report.items:
        item.reason = redact(item.reason, *secrets)
        item.served_by = redact(item.served_by, *secrets)
        item.info = {k: redact(v, *secrets) if isinstance(v, str) else v for k, v in item.info.items()}
    if not report.items:
        return []
    report.note_rules(rules)
    if run is not None:
        run.environment = dict(report.environment)
        run.backends = list(report.counts())
        report.runs = [run]
    analysis = analyse(report)
    lines = render_terminal(report, verbose=verbose, analysis=analysis)
    if path is not None:
        try:
            write(report, path)
        except (OSError, ValueError) as exc:
            lines.append(f"traceparity: could not write report: {exc}")
        else:
            lines.append(f"traceparity: report written to {path}")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(render_markdown(report, analysis))
    return lines
