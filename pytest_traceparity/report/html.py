"""The HTML report: one self-contained page (no scripts, no network), verdict table first.

Then one section per root cause, most severe first (unknown first within a severity), with up
to three examples of expected vs actual and the tests folded in ``<details>``, grouped by cause.
"""

from __future__ import annotations

import datetime as dt
import html

from ..divergences.severity import SCALE
from .causes import Analysis, Cause, analyse, count_phrase, short_test
from .model import ParityReport
from .terminal import COLUMNS

MAX_TESTS_LISTED = 40  # the JSON report lists every test; the page stays readable (and < 150 KB)
MAX_EXAMPLE_TEXT = 240
SEVERE = {"data", "error-lost", "error-new"}

CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;padding:0 12px 24px;max-width:1100px;color:#1b1b1b}
h1{font-size:1.4em;margin:.6em 0 .2em}h2{font-size:1.2em;margin:1.2em 0 .4em}
h3{font-size:1.05em;margin:0 0 .3em;word-break:break-word}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}.zero{color:#999}
.hit-severe{background:#fde2e1;font-weight:600}.hit{background:#fff3cd}
.status-not-ready{color:#a40000;font-weight:700}.status-parity{color:#146c2e;font-weight:700}
.cause{border:1px solid #ddd;border-left:6px solid #bbb;padding:8px 10px;margin:10px 0;break-inside:avoid-page}
.cause.severe{border-left-color:#c62828}.cause.unknown{border-left-color:#6a1b9a;background:#faf5ff}
.sev{display:inline-block;font-size:.8em;padding:0 6px;border-radius:3px;background:#eee;margin-right:6px}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:6px}.pair div{min-width:0}
pre{white-space:pre-wrap;word-break:break-word;margin:0;background:#f6f6f6;padding:3px 5px;font-size:.9em}
.meta,.small{color:#555;font-size:.9em}.cause,li,p{overflow-wrap:anywhere}p.tests{margin:.2em 0 .6em;font-size:.9em}
@media (max-width:600px){.pair{grid-template-columns:1fr}}
@media print{body{max-width:none;font-size:11px}.cause{break-inside:avoid}a{color:inherit}}
"""


def _num(value: int, severity: str | None = None) -> str:
    if not value:
        return '<td class="n zero">0</td>'
    cls = "hit-severe" if severity in SEVERE or severity == "unknown" else ("hit" if severity else "")
    return f'<td class="n {cls}">{value}</td>'


def _verdict_table(report: ParityReport, analysis: Analysis) -> str:
    esc = html.escape
    present = analysis.severities()
    served = report.served_by()
    head = ["backend", "status", *present, "unknown", "failing", "tests"]
    rows = ["<tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
    for verdict in analysis.verdicts:
        by = verdict.by_severity()
        status = verdict.status
        cells = [
            f"<th>{esc(verdict.backend)}</th>",
            f'<td class="status-{status.replace(" ", "-")}">{esc(status)}</td>',
        ]
        cells += [_num(len(by.get(s, [])), s) for s in present]
        cells += [_num(verdict.unknown, "unknown"), _num(verdict.failures, "unknown")]
        tests = ", ".join(f"{verdict.outcomes[c]} {c}" for c in COLUMNS if verdict.outcomes.get(c))
        cells.append(f'<td class="small">{esc(tests or "none")}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    lines = "".join(
        f"<li>{esc(v.line())} <span class='meta'>· served by "
        f"{esc('; '.join(served.get(v.backend, [])) or '-')}</span></li>"
        for v in analysis.verdicts
    )
    return f'<div class="scroll"><table id="verdict-table">{"".join(rows)}</table></div><ul class="small">{lines}</ul>'


def _until(cause: Cause, today: dt.date) -> str:
    if not cause.until:
        return "no end date"
    try:
        days = (dt.date.fromisoformat(cause.until) - today).days
    except ValueError:
        return cause.until
    return f"{cause.until} ({'expired' if days < 0 else f'{days} days left'})"


def _clip(value: object) -> str:
    text = str(value)
    return text if len(text) <= MAX_EXAMPLE_TEXT else text[: MAX_EXAMPLE_TEXT - 1] + "…"


def _example(example: dict[str, object]) -> str:
    esc = html.escape
    where = f"{example.get('backend')} · {short_test(str(example.get('test')), str(example.get('backend')))}"
    if example.get("seq") is not None:
        where += f" · step {example.get('seq')}"
    sql = f"<pre>{esc(_clip(example['sql']))}</pre>" if example.get("sql") else ""
    relation = f" <span class='small'>({esc(str(example['relation']))})</span>" if example.get("relation") else ""
    return (
        f"<div class='example'><div class='small'>{esc(where)} · {esc(str(example.get('aspect')))}{relation}"
        f"</div>{sql}<div class='pair'><div><b>expected</b> (reference)<pre>{esc(_clip(example.get('expected')))}"
        f"</pre></div><div><b>actual</b><pre>{esc(_clip(example.get('actual')))}</pre></div></div></div>"
    )


def _cause(index: int, cause: Cause, today: dt.date) -> str:
    esc = html.escape
    classes = "cause" + (" severe" if cause.severity in SEVERE else "") + ("" if cause.known else " unknown")
    where = "; ".join(f"{esc(b)}: {count_phrase(cause.kinds(b))}" for b in cause.tests)
    facts = [f"<b>backends</b> {where}"]
    if cause.differences:
        facts.append(f"<b>differences</b> {cause.differences}")
    if cause.rule and cause.until:  # rules without an end date say nothing here (the common case)
        facts.append(f"<b>until</b> {esc(_until(cause, today))}")
    if cause.origin:  # a cause shown here explained differences, so it is not stale (stale rules: own section)
        origin = cause.origin.replace("pytest_traceparity/", "").removesuffix(f" rule {cause.rule}")
        facts.append(f"<b>defined in</b> {esc(origin)}")
    parts = [
        f'<section class="{classes}" id="cause-{index}">',
        f'<h3><span class="sev">{esc(cause.severity)}</span>{esc(cause.label)}</h3>',
        f"<p>{esc(cause.reason)}</p>",
        f'<p class="small">{" · ".join(facts)}</p>',
    ]
    parts += [_example(e) for e in cause.examples]
    if cause.minimized:
        parts.append(f'<p>minimized reproduction: <a href="{esc(cause.minimized)}">{esc(cause.minimized)}</a></p>')
    grouped = cause.grouped_tests()
    by_backends: dict[tuple[str, ...], list[str]] = {}
    for test, backends in list(grouped.items())[:MAX_TESTS_LISTED]:
        by_backends.setdefault(tuple(backends), []).append(test)
    lists = "".join(
        f"<p class='small'><b>on {esc(', '.join(b))}</b> ({len(t)}):</p><p class='tests'>{esc(' · '.join(t))}</p>"
        for b, t in by_backends.items()
    )
    more = (
        f"<p class='small'>and {len(grouped) - MAX_TESTS_LISTED} more (all are in the JSON report)</p>"
        if len(grouped) > MAX_TESTS_LISTED
        else ""
    )
    parts.append(f"<details><summary>{len(grouped)} test(s) showing it</summary>{lists}{more}</details></section>")
    return "".join(parts)


def _failures(analysis: Analysis) -> str:
    if not analysis.failures:
        return ""
    esc = html.escape
    blocks = []
    for reason, tests in analysis.failures.items():
        names = "".join(f"<li>{esc(t.nodeid)} <span class='small'>({esc(t.outcome)})</span></li>" for t in tests)
        blocks.append(
            f"<section class='cause severe'><h3>{len(tests)} failing: {esc(reason)}</h3>"
            f"<details><summary>tests</summary><ul class='tests'>{names}</ul></details></section>"
        )
    return "<h2 id='failures'>Failures without a recorded difference</h2>" + "".join(blocks)


def _stale(report: ParityReport) -> str:
    stale = [r for r in report.rules.values() if r.stale]
    if not stale:
        return ""
    esc = html.escape
    if report.partial:
        return (
            f"<h2 id='stale'>Stale rules</h2><p>Not judged: this run {esc(report.partial_reason())} "
            f"({len(stale)} rule(s) explained nothing).</p>"
        )
    items = "".join(
        f"<li><b>{esc(r.id)}</b> <span class='small'>{esc(r.origin)}</span>: {esc(r.reason[:240])}</li>" for r in stale
    )
    return (
        f"<h2 id='stale'>Stale rules ({len(stale)})</h2><details><summary>{len(stale)} rule(s) could apply to a "
        f"backend that ran and explained nothing: remove or fix them if the run covered their workload"
        f"</summary><ul>{items}</ul></details>"
    )


def _run(report: ParityReport) -> str:
    esc = html.escape
    env = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in report.environment.items())
    timing = "".join(f"<tr><th>{esc(b)}</th><td class='n'>{s:.1f} s</td></tr>" for b, s in report.timings().items())
    runs = "".join(
        f"<li>{esc(', '.join(r.backends))}: {r.duration:.1f} s wall, {r.collected} test(s) collected"
        f"{f', {r.deselected} deselected' if r.deselected else ''}"
        f"{f' ({esc(chr(32).join(r.filters))})' if r.filters else ''}</li>"
        for r in report.runs
    )
    return (
        f"<h2 id='run'>Run</h2><details><summary>versions, servers, timings</summary>"
        f"<table>{env}</table><p class='small'>time in tests per backend</p><table>{timing}</table>"
        f"<ul>{runs}</ul></details>"
    )


def render_html(report: ParityReport, analysis: Analysis | None = None) -> str:
    esc = html.escape
    analysis = analysis or analyse(report)
    today = dt.date.today()
    scale = " > ".join(SCALE)
    causes = "".join(_cause(i, c, today) for i, c in enumerate(analysis.causes)) or "<p>None: no differences.</p>"
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>traceparity report</title><style>{CSS}</style></head><body>"
        "<h1>traceparity parity report</h1>"
        f"<h2 id='verdict'>Readiness per backend</h2><p><b>{esc(analysis.overall())}</b></p>"
        f"{_verdict_table(report, analysis)}"
        f"<p class='small'>Reference: {esc(report.reference)}. Counts in severity columns are root causes; "
        f"severity scale, most severe first: {esc(scale)}.</p>"
        f"<h2 id='causes'>Root causes, most severe first ({len(analysis.causes)})</h2>{causes}"
        f"{_failures(analysis)}{_stale(report)}{_run(report)}</body></html>\n"
    )
