"""Summaries for scripts/thirdparty_suites.py: trace statistics, the replay report parsed and grouped.

Kept apart from the runner so each stays small. Works on the ``traceparity replay --json`` output of
this checkout (plus the detail the runner adds) and on issue 8's ``differences`` shape.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REFERENCE = "sqlalchemy-sqlite"
EXAMPLES = 3
MAX_CAUSES = 8


# -- trace statistics ---------------------------------------------------------------------
def trace_index(trace: Path) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """Streamed statistics of a trace, and each SQL step by seq (for examples)."""
    ops: Counter[str] = Counter()
    dbs: set[str] = set()
    conns: set[int] = set()
    recorded_errors = 0
    steps: dict[int, dict[str, Any]] = {}
    ended = False
    with trace.open(encoding="utf-8") as fh:
        header = json.loads(fh.readline())
        for line in fh:
            obj = json.loads(line)
            if obj.get("end"):
                ended = True
                continue
            ops[obj["op"]] += 1
            conns.add(obj["conn"])
            if obj.get("db"):
                dbs.add(obj["db"])
            if obj.get("error"):
                recorded_errors += 1
            steps[obj["seq"]] = {
                "conn": obj["conn"],
                "op": obj["op"],
                "sql": obj.get("sql"),
                "params": obj.get("params"),
                "error": obj.get("error"),
            }
    stats = {
        "events": sum(ops.values()),
        "ops": dict(ops.most_common()),
        "databases": len(dbs),
        "connections": len(conns),
        "recorded_errors": recorded_errors,
        "complete": ended,
        "bytes": trace.stat().st_size,
        "source": header.get("source"),
    }
    return stats, steps


# -- replay -------------------------------------------------------------------------------
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_report(stdout: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The ``--json`` object from stdout, and any non-JSON lines that preceded it (client logs)."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("{"):
            try:
                return json.loads("\n".join(lines[i:])), [_ANSI.sub("", x) for x in lines[:i] if x.strip()]
            except json.JSONDecodeError:
                continue
    return None, [_ANSI.sub("", x) for x in lines if x.strip()]


def harness_errors(code: int | str, stdout: str, stderr: str, noise: list[str]) -> list[str]:
    """What went wrong in the harness itself (not a divergence): aborts, tracebacks, polluted stdout."""
    errors = []
    if code == "timeout":
        errors.append("timeout")
    elif code not in (0, 1):
        errors.append(f"exit {code}")
    text = _ANSI.sub("", stderr)
    if "Traceback (most recent call last)" in text:
        tail = text[text.rindex("Traceback (most recent call last)") :].strip().splitlines()
        errors.append("traceback: " + (tail[-1] if tail else ""))
    errors.extend(line.strip() for line in text.splitlines() if re.match(r"\s*traceparity \w+: error", line))
    if noise:
        errors.append(f"stdout not pure JSON: {len(noise)} line(s) before the report, first: {noise[0][:200]}")
    return errors


_DIFF = re.compile(r"^\[([^\]]+)\]\s*(.*)$", re.DOTALL)


def differences_of(report: dict[str, Any], steps: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every difference as one flat record, from whichever report shape this checkout prints.

    Issue-8 shape: top-level ``differences`` (with ``rule``); detail shape: ``steps_detail``
    (added by ``--detail-replay``); plain shape: ``failures`` (unknown only) + ``known`` reasons.
    """

    def sql_of(seq: Any) -> tuple[Any, Any]:
        step = steps.get(seq) if isinstance(seq, int) else None
        return (
            (step or {}).get("sql") or (step or {}).get("op") or ("final state" if seq == "final" else None),
            (step or {}).get("params"),
        )

    out = []
    if isinstance(report.get("differences"), list):
        for d in report["differences"]:
            sql, params = sql_of(d.get("seq"))
            out.append(
                {
                    "seq": d.get("seq"),
                    "aspect": d.get("aspect"),
                    "rule": d.get("rule"),
                    "severity": d.get("severity"),
                    "message": d.get("message") or "",
                    "expected": d.get("expected"),
                    "actual": d.get("actual"),
                    "sql": d.get("sql") or sql,
                    "params": params,
                }
            )
        return out
    if isinstance(report.get("steps_detail"), list):
        for st in report["steps_detail"]:
            sql, params = sql_of(st["seq"])
            # verdicts: known / diverged / fixed / expired; only "known" is explained by the registry
            rule = (
                (" / ".join(r.splitlines()[0][:100] for r in st["reasons"]) or "known")
                if st["status"] == "known"
                else None
            )
            note = "" if st["status"] in ("known", "diverged") else f" [registry: {st['status']}]"
            for d in st["differences"]:
                by = d.get("covered_by")
                out.append(
                    {
                        "seq": st["seq"],
                        "aspect": d["aspect"],
                        "severity": None,
                        "rule": rule or (by.splitlines()[0][:100] if by and st["status"] == "diverged" else None),
                        "step_unknown": st["status"] != "known",
                        "message": d["message"] + note,
                        "expected": st["expected"],
                        "actual": st["actual"],
                        "sql": sql or st["sql"],
                        "params": params,
                        "status": st["status"],
                    }
                )
        return out
    for failure in report.get("failures", []):
        sql, params = sql_of(failure["seq"])
        for text in failure.get("differences", []):
            m = _DIFF.match(text)
            out.append(
                {
                    "seq": failure["seq"],
                    "aspect": m.group(1) if m else "?",
                    "rule": None,
                    "severity": None,
                    "message": m.group(2) if m else text,
                    "expected": None,
                    "actual": None,
                    "sql": sql,
                    "params": params,
                }
            )
    for k in report.get("known", []):
        out.append(
            {
                "seq": k["seq"],
                "aspect": "(known; aspect not reported)",
                "rule": " / ".join(r.splitlines()[0][:100] for r in k.get("reasons", [])) or "known",
                "severity": None,
                "message": "",
                "expected": None,
                "actual": None,
                "sql": None,
                "params": None,
            }
        )
    return out


_VOLATILE = re.compile(r"\bdb\d+\b|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\b\d+(?:\.\d+)?\b|0x[0-9a-f]+")


def signature(d: dict[str, Any]) -> str:
    """A difference with its values blanked: what groups the same cause seen on many steps."""
    head = (str(d.get("sql") or "").split(None, 1) or [""])[0].upper()[:12]
    return f"{head} | {_VOLATILE.sub('_', d['message'])[:160]}"


def summarise(report: dict[str, Any], steps: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Counts per backend: differing / known / unknown steps, steps by aspect, unknown causes with examples."""
    diffs = differences_of(report, steps)
    unknown_seqs = {d["seq"] for d in diffs if d["rule"] is None}
    all_seqs = {d["seq"] for d in diffs}
    aspects: dict[str, dict[str, set[Any]]] = defaultdict(lambda: {"known": set(), "unknown": set()})
    causes: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    known_rules: dict[str, set[Any]] = defaultdict(set)
    for d in diffs:
        aspects[d["aspect"]]["unknown" if d["rule"] is None else "known"].add(d["seq"])
        if d["rule"] is not None:
            known_rules[d["rule"]].add(d["seq"])
            continue
        group = causes[d["aspect"]].setdefault(signature(d), {"differences": 0, "steps": set(), "examples": []})
        group["differences"] += 1
        group["steps"].add(d["seq"])
        if len(group["examples"]) < EXAMPLES:
            group["examples"].append({k: d.get(k) for k in ("seq", "sql", "params", "message", "expected", "actual")})

    def size(kv: tuple[str, dict[str, set[Any]]]) -> int:
        return -len(kv[1]["known"]) - len(kv[1]["unknown"])

    return {
        "status": report.get("status"),
        "steps": report.get("steps"),
        "differing_steps": len(all_seqs),
        "unknown_steps": len(unknown_seqs),
        "known_steps": len(all_seqs - unknown_seqs),
        "differences": len(diffs),
        "unknown_differences": sum(1 for d in diffs if d["rule"] is None),
        "steps_by_aspect": {
            a: {"known": len(v["known"]), "unknown": len(v["unknown"])} for a, v in sorted(aspects.items(), key=size)
        },
        "unknown_causes": {
            a: [
                {"signature": sig, "differences": g["differences"], "steps": len(g["steps"]), "examples": g["examples"]}
                for sig, g in sorted(groups.items(), key=lambda kv: -kv[1]["differences"])
            ]
            for a, groups in causes.items()
        },
        "known_by_rule": {r: len(v) for r, v in sorted(known_rules.items(), key=lambda kv: -len(kv[1]))},
        "root_causes": report.get("root_causes"),
    }


def _cell(text: Any, limit: int = 140) -> str:
    s = " ".join(str(text).split()).replace("|", "\\|")
    return s if len(s) <= limit else s[: limit - 3] + "..."


def markdown(results: list[dict[str, Any]]) -> str:
    out = [
        "# Third-party suites replayed",
        "",
        "Generated by `scripts/thirdparty_suites.py`; per-suite JSON in `results/`.",
        "",
        "| suite | steps | databases | connections | backend | status | differing steps | unknown | known | "
        "harness errors | time s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        st = r.get("trace_stats", {})
        golden = r.get("golden", {})
        if golden.get("exit") not in (None, 0):
            out.append(
                f"| {r['suite']} | {st.get('events')} | {st.get('databases')} | {st.get('connections')} | "
                f"(golden, {REFERENCE}) | GOLDEN FAILED | - | - | - | {len(golden['harness_errors'])} | "
                f"{golden['seconds']} | {round((golden['peak_rss_kb'] or 0) / 1024)} |"
            )
        for backend, b in r.get("replays", {}).items():
            out.append(
                f"| {r['suite']} | {st.get('events')} | {st.get('databases')} | {st.get('connections')} | "
                f"{backend} | {b.get('status', 'ABORTED')} | {b.get('differing_steps', '-')} | "
                f"{b.get('unknown_steps', '-')} | {b.get('known_steps', '-')} | {len(b['harness_errors'])} | "
                f"{b['seconds']} | {round((b['peak_rss_kb'] or 0) / 1024)} |"
            )
    for r in results:
        out += ["", f"## {r['suite']} {r['version']}", "", r.get("note", ""), ""]
        rec = r.get("record", {})
        plain = rec.get("unrecorded")
        out += [
            f"- recorded: `{rec.get('command')}` (exit {rec.get('exit')}, {rec.get('seconds')} s, "
            f"outcome: {_cell(rec.get('pytest_outcome'), 300)}"
            + (f"; without recording: {plain.get('outcome')}, {plain.get('seconds')} s)" if plain else ")"),
            f"- trace: {r.get('trace')} — {json.dumps(r.get('trace_stats', {}).get('ops'))}, "
            f"{r.get('trace_stats', {}).get('recorded_errors')} steps with a recorded error",
            f"- golden: `{r.get('golden', {}).get('command')}` → exit {r.get('golden', {}).get('exit')}: "
            f"{_cell(r.get('golden', {}).get('output'))}",
        ]
        for err in r.get("golden", {}).get("harness_errors", []):
            out.append(f"  - golden harness error: `{_cell(err, 400)}`")
        for backend, b in r.get("replays", {}).items():
            out += [
                "",
                f"### {r['suite']} on {backend}: {b.get('status', 'ABORTED')}, "
                f"{b.get('differing_steps', '-')} differing steps ({b.get('unknown_steps', '-')} unknown, "
                f"{b.get('known_steps', '-')} known)",
                "",
            ]
            for err in b["harness_errors"]:
                out.append(f"- harness error: `{_cell(err, 600)}`")
            if b.get("steps_by_aspect"):
                out.append(
                    "- differing steps by aspect (known / unknown): "
                    + ", ".join(f"`{a}` {v['known']}/{v['unknown']}" for a, v in b["steps_by_aspect"].items())
                )
            for rule, n in b.get("known_by_rule", {}).items():
                out.append(f"- known, {n} step(s): {_cell(rule, 160)}")
            for aspect, groups in b.get("unknown_causes", {}).items():
                total = sum(g["differences"] for g in groups)
                out.append(f"- **unknown `{aspect}`**: {total} difference(s), {len(groups)} distinct shape(s)")
                for g in groups[:MAX_CAUSES]:
                    out.append(f"  - {g['differences']}x `{_cell(g['signature'], 170)}`")
                    for ex in g["examples"]:
                        out.append(
                            f"    - seq {ex['seq']}: `{_cell(ex['sql'], 150)}` params "
                            f"`{_cell(ex['params'], 70)}` — {_cell(ex['message'], 260)}"
                            + (
                                f" (expected `{_cell(ex['expected'], 80)}`, actual `{_cell(ex['actual'], 80)}`)"
                                if ex.get("expected") or ex.get("actual")
                                else ""
                            )
                        )
                if len(groups) > MAX_CAUSES:
                    out.append(f"  - ... {len(groups) - MAX_CAUSES} more shape(s) in the JSON")
    return "\n".join(out) + "\n"
