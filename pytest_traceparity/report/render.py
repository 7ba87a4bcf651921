"""Renderings of a :class:`ParityReport`: terminal matrix, Markdown (GitHub), HTML."""

from __future__ import annotations

import html

from .model import ParityReport

COLUMNS = ("passed", "failed", "xfailed", "skipped", "error", "xpassed")


def render_terminal(report: ParityReport, blanket_reasons: set[str] | None = None) -> list[str]:
    counts = report.counts()
    if not counts:
        return []
    width = max(len(b) for b in counts) + 2
    lines = [f"{'backend':<{width}}" + "".join(f"{c:>9}" for c in COLUMNS) + "   served by"]
    served = report.served_by()
    for backend, counter in counts.items():
        mark = " (reference)" if backend == report.reference else ""
        label = "; ".join(served.get(backend, [])) or "-"
        lines.append(
            f"{backend:<{width}}" + "".join(f"{counter.get(c, 0):>9}" for c in COLUMNS) + f"   {label}{mark}"
        )
    for backend, (wide, specific) in report.xfail_breakdown(blanket_reasons or set()).items():
        lines.append(
            f"{backend}: {wide + specific} xfailed = {specific} with case-specific divergences + "
            f"{wide} differing only by client-wide quirks (registry entries that cover every case)"
        )
    for backend, lag in report.max_lag().items():
        lines.append(f"{backend}: replication lag at test end, max {lag} frame(s) behind the primary")
    known = report.known_divergences()
    if known:
        lines.append("known divergences hit (xfail):")
        for backend, reasons in known.items():
            for reason, count in reasons.most_common():
                lines.append(f"  {backend}: {count}x {reason}")
    return lines


def render_markdown(report: ParityReport) -> str:
    counts = report.counts()
    served = report.served_by()
    out = ["## traceparity", "", f"Reference backend: `{report.reference}`", ""]
    out.append("| backend | " + " | ".join(COLUMNS) + " | served by |")
    out.append("|---" * (len(COLUMNS) + 2) + "|")
    for backend, counter in counts.items():
        cells = " | ".join(str(counter.get(c, 0)) for c in COLUMNS)
        out.append(f"| `{backend}` | {cells} | {'; '.join(served.get(backend, [])) or '-'} |")
    failures = report.failures()
    if failures:
        out += ["", "### Failures", ""]
        out += [f"- `{f.nodeid}` ({f.backend}): {f.reason.splitlines()[0] if f.reason else f.outcome}"
                for f in failures[:50]]
    known = report.known_divergences()
    if known:
        out += ["", "### Known divergences", ""]
        for backend, reasons in known.items():
            out += [f"- `{backend}` {count}x: {reason}" for reason, count in reasons.most_common()]
    return "\n".join(out) + "\n"


def render_html(report: ParityReport) -> str:
    esc = html.escape
    counts = report.counts()
    served = report.served_by()
    rows = []
    for backend, counter in counts.items():
        cells = "".join(f"<td class='{c}'>{counter.get(c, 0)}</td>" for c in COLUMNS)
        ref = " <em>(reference)</em>" if backend == report.reference else ""
        rows.append(f"<tr><th>{esc(backend)}{ref}</th>{cells}<td>{esc('; '.join(served.get(backend, [])))}</td></tr>")
    items = "".join(
        f"<tr class='{esc(i.outcome)}'><td>{esc(i.nodeid)}</td><td>{esc(i.backend)}</td><td>{esc(i.outcome)}</td>"
        f"<td><pre>{esc(i.reason)}</pre></td></tr>"
        for i in report.items
        if i.outcome != "passed"
    )
    verdict = "PARITY" if report.ok else "DIVERGED"
    env = "".join(f"<li>{esc(k)}: {esc(v)}</li>" for k, v in report.environment.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>traceparity report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}}
.failed,.error,.xpassed{{background:#fdd}} .xfailed{{background:#ffd}} pre{{margin:0;white-space:pre-wrap}}
</style></head><body>
<h1>traceparity report</h1>
<p>Reference backend: <code>{esc(report.reference)}</code>. Verdict: <strong>{verdict}</strong></p>
<ul>{env}</ul>
<table><tr><th>backend</th>{''.join(f'<th>{c}</th>' for c in COLUMNS)}<th>served by</th></tr>{''.join(rows)}</table>
<h2>Everything that did not simply pass</h2>
<table><tr><th>test</th><th>backend</th><th>outcome</th><th>reason</th></tr>{items}</table>
</body></html>
"""
