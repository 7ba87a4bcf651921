"""Replay a trace against its golden (or rewrite the golden from the reference backend).

Used by the collected trace items, the ``replay`` fixture and ``traceparity replay``
alike, so all three report a divergence the same way: the most severe unexplained step
first (seq, connection, SQL, expected vs actual, backend, rule or "unknown"), then a
summary of the rest by severity and rule.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..backends.base import Backend, BackendContext
from ..compare import (
    Difference,
    History,
    StepContext,
    compare_outcomes,
    transaction_after,
    value_relation,
)
from ..divergences import Attribution, DivergenceRegistry, most_severe_first, step_rank, summarize
from ..divergences.registry import triage
from ..fingerprint import diff_content, diff_schemas
from ..trace.faithful import faithfulness
from ..trace.format import SQL_OPS, Event, TraceReader
from ..trace.replayer import Replayer
from ..values import display
from .fastcheck import Contexts, counts_differ, outcome_matches, raw_summary
from .store import (
    GoldenError,
    GoldenHeader,
    GoldenReader,
    GoldenWriter,
    commit,
    file_sha256,
    golden_path_for,
    params_digest,
    trace_name,
    update_command,
)

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
        parts = []
        for reason, seqs in reasons.items():
            more = len(seqs) > 5 or reason in self.folded_reasons
            shown = ", ".join(seqs[:5]) + (" ..." if more else "")
            parts.append(f"{reason} [seq {shown}]")
        return "\n".join(parts)  # one registry reason per line: the report counts them per line

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


def _fold(
    report: ReplayReport, seq: int, verdict: Any, folds: dict[int, tuple[Any, list[str], list[Attribution]]]
) -> None:
    """:meth:`ReplayReport.fold` of a remembered verdict, its reasons made once per verdict."""
    cached = folds.get(id(verdict))
    if cached is None or cached[0] is not verdict:
        cached = folds[id(verdict)] = (verdict, [_reason_text(e) for e in verdict.entries], list(verdict.attributions))
    report.fold(seq, cached[1], cached[2])


def _judge(
    report: ReplayReport,
    registry: DivergenceRegistry,
    subject: str,
    diffs: list[Difference],
    make: Callable[[], StepReport],
    memo: dict[Any, Any] | None = None,
    key: Any = None,
) -> None:
    if memo is not None and diffs:
        verdict = registry.judge_alike(report.backend, subject, diffs, memo, key)
    else:
        verdict = registry.judge(report.backend, subject, diffs)
    if verdict.status == "same":
        return
    if verdict.status == "known" and len(report.known) >= KEEP_KNOWN:  # counted, no step report built
        seq = subject.rsplit("#", 1)[-1]
        report.fold(
            int(seq) if seq.isdigit() else seq, [_reason_text(e) for e in verdict.entries], list(verdict.attributions)
        )
        return
    step = make()
    step.differences, step.status, step.message = list(diffs), verdict.status, verdict.message
    if verdict.subject not in ("", subject):  # a remembered verdict: its message names its first subject
        step.message = subject + verdict.message[len(verdict.subject) :]
    step.reasons = [_reason_text(e) for e in verdict.entries]
    step.attributions = list(verdict.attributions)
    (report.known if verdict.status == "known" else report.failures).append(step)


def verify_trace(
    trace: Path,
    backend: Backend,
    make_context: Callable[[str], BackendContext],
    registry: DivergenceRegistry,
    *,
    golden: Path | None = None,
) -> ReplayReport:
    """Replay ``trace`` on ``backend`` and compare every step and the final state to the golden."""
    golden = golden or golden_path_for(trace)
    report = ReplayReport(trace=trace, golden=golden, backend=backend.id)
    name = report.name
    reader = TraceReader(trace)
    in_tx: dict[int, bool] = {}
    history = History()
    prefix = f"trace::{name}#"
    strict = {s for s in registry.strict_subjects(backend.id) if s.startswith(prefix)}  # judged even when equal
    memo: dict[Any, Any] | None = None if registry.subjects_matter(backend.id, prefix) else {}
    contexts = Contexts()
    folds: dict[int, tuple[Any, list[str], list[Attribution]]] = {}
    with (
        GoldenReader(golden, trace) as expected,
        Replayer(backend, make_context, name, trace=trace, departures=False) as replayer,
    ):
        # a golden made from these very bytes holds these very parameters: no per-step digest needed
        check_params = expected.header.trace_sha256 != file_sha256(trace)
        for event in reader:
            data = expected.next_raw()
            fast = (
                data is not None
                and data.get("seq") == event.seq
                and data.get("op") == event.op
                and data.get("sql") == event.sql
                and type(data.get("conn")) is int
            )
            want = None if fast or data is None else expected.step_from(data)
            if not fast and (want is None or want.seq != event.seq or want.op != event.op or want.sql != event.sql):
                raise GoldenError(_out_of_step(trace, golden, event, want))
            assert data is not None
            outcome = replayer.step(event)
            report.steps += 1
            sql, op = event.sql, event.op
            before = in_tx.get(event.conn, False)
            in_tx[event.conn] = transaction_after(sql or "", op, before)
            params_changed = check_params and data.get("params_sha256") != params_digest(event)
            subject = None if not strict else f"{prefix}{event.seq}"
            if fast and not params_changed and outcome_matches(data.get("outcome"), outcome) and subject not in strict:
                history.note(event.db, op, sql, event.params, event.many)
                continue  # equal to the golden: nothing to decode, build or judge
            diffs: list[Difference] = []
            if params_changed:
                diffs.append(
                    Difference(
                        "trace.params",
                        "this step's parameters differ from those the golden was made with "
                        "(the trace was edited or re-recorded after the golden)",
                    )
                )
            compare_sql = (sql or "") if op in SQL_OPS else ""
            counted = (
                counts_differ(data.get("outcome"), outcome, sql=compare_sql, executemany=op == "executemany")
                if fast
                else None
            )
            if counted is not None:  # only rowcount/lastrowid differ: stated without decoding the golden
                diffs += counted
            else:  # decode the golden step and compare in full
                want = want or expected.step_from(data)
                diffs += compare_outcomes(want.outcome, outcome, sql=compare_sql, executemany=op == "executemany")
            key = None
            if diffs:
                context = contexts.get(op, sql, event.params, event.many, before, event.db, history.prior(event.db))
                # a shared context lives as long as a verdict remembered under its id: the id is a safe key
                key = (id(context), *((d.aspect, d.message, d.expected, d.actual, d.relation) for d in diffs))
                if memo is not None and subject is None and len(report.known) >= KEEP_KNOWN:
                    verdict = registry.remembered(memo, key)
                    if verdict is not None:  # a known difference seen before, past the steps kept whole: counted
                        _fold(report, event.seq, verdict, folds)
                        history.note(event.db, op, sql, event.params, event.many)
                        continue
                diffs = [d.with_context(context) for d in diffs]
            history.note(event.db, op, sql, event.params, event.many)

            # summaries only for a step that differs (built lazily: most steps never need them)
            def make(event: Event = event, want: Any = want, outcome: Any = outcome, data: Any = data) -> StepReport:
                summary = want.outcome.summary() if want is not None else raw_summary(data["outcome"])
                return StepReport(
                    seq=event.seq,
                    conn=event.conn,
                    where=f"{trace}:{event.line}",
                    sql=_short(event.sql or event.short()),
                    params=_params_text(event),
                    expected=summary,
                    actual=outcome.summary(),
                    differences=[],
                    status="",
                )

            _judge(report, registry, subject or f"{prefix}{event.seq}", diffs, make, memo, key)
        extra = expected.next_step()
        if extra is not None:
            raise GoldenError(
                f"{golden}:{extra.line}: golden has more steps than trace {trace} ({report.steps}); the trace "
                f"and its golden are out of step; regenerate the golden with: {update_command(trace)}"
            )
        actual_final = replayer.final_state()
        report.served_by = dict(replayer.served_by)
        report.replay_notes = replayer.stats
        want_final = expected.final or {}
        diffs = _final_differences(want_final, actual_final, history)

        def make_final() -> StepReport:
            return StepReport(
                seq="final",
                conn=None,
                where=f"final state of every database, {golden}",
                sql="",
                params="",
                expected="",
                actual="",
                differences=[],
                status="",
            )

        _judge(report, registry, f"trace::{name}#final", diffs, make_final)
    return report


def _final_differences(want: dict[str, Any], got: dict[str, Any], history: History | None = None) -> list[Difference]:
    diffs: list[Difference] = []
    for db_id in sorted(set(want) | set(got)):
        prior = history.prior(db_id) if history is not None else frozenset()
        context = StepContext(op="final", kind="final", db=db_id, prior=prior)
        if db_id not in got or db_id not in want:
            diffs.append(Difference("schema", f"database {db_id} is {'missing' if db_id not in got else 'extra'}"))
            continue
        w, g = want[db_id], got[db_id]
        if ("error" in w or "error" in g) and w.get("error") != g.get("error"):
            diffs.append(
                Difference(
                    "schema",
                    f"final state of {db_id}: {w.get('error') or 'readable'} in the "
                    f"golden, {g.get('error') or 'readable'} here",
                )
            )
            continue
        if w.get("schema_sha256") != g.get("schema_sha256"):
            lines = diff_schemas(w.get("schema", {}), g.get("schema", {})) or ["schema fingerprint differs"]
            relation = "text-spacing" if _only_sql_text(w.get("schema", {}), g.get("schema", {})) else None
            diffs.extend(Difference("schema", f"{db_id}: {line}", relation=relation, context=context) for line in lines)
        for line in diff_content(w.get("content", {}), g.get("content", {})):
            named = re.match(r"table '([^']+)'", line)
            where = replace(context, table=named.group(1).lower()) if named else context
            diffs.append(Difference("content", f"{db_id}: {line}", context=where))
    return diffs


def _only_sql_text(want: dict[str, Any], got: dict[str, Any]) -> bool:
    """True when every schema object is the same except for spacing in its stored SQL text."""
    if set(want) != set(got):
        return False
    for section in want:
        w, g = want[section], got[section]
        if not isinstance(w, dict) or not isinstance(g, dict) or set(w) != set(g):
            if w != g:
                return False
            continue
        for name in w:
            a, b = w[name], g[name]
            if a == b:
                continue
            if not isinstance(a, dict) or not isinstance(b, dict):
                return False
            rest_a = {k: v for k, v in a.items() if k != "sql"}
            rest_b = {k: v for k, v in b.items() if k != "sql"}
            if rest_a != rest_b or value_relation(a.get("sql"), b.get("sql")) != "text-spacing":
                return False
    return True


def _out_of_step(trace: Path, golden: Path, event: Event, want: Any) -> str:
    if want is None:
        got = "the golden has no more steps"
    else:
        got = f"the golden has seq {want.seq} {want.op} {_short(want.sql or '', 80)!r} at line {want.line}"
    return (
        f"{trace}:{event.line}: trace and golden are out of step at seq {event.seq} "
        f"({event.op} {_short(event.sql or '', 80)!r}), but {got} in {golden}; the trace changed since "
        f"the golden was made: regenerate it with: {update_command(trace)}"
    )


def update_golden(
    trace: Path,
    backend: Backend,
    make_context: Callable[[str], BackendContext],
    *,
    golden: Path | None = None,
    allow_departures: bool = False,
) -> ReplayReport:
    """Rewrite the golden from ``backend`` (the caller ensures it is the reference)."""
    golden = golden or golden_path_for(trace)
    report = ReplayReport(trace=trace, golden=golden, backend=backend.id)
    reader = TraceReader(trace)
    existed = golden.exists()
    header = GoldenHeader(trace=report.name, trace_sha256=file_sha256(trace), reference=backend.id)
    changed = False
    with Replayer(backend, make_context, report.name, trace=trace) as replayer:
        golden.parent.mkdir(parents=True, exist_ok=True)
        with _staged(golden) as (fh, result):
            writer = GoldenWriter(fh, header)
            for event in reader:
                writer.step(event, replayer.step(event))
                report.steps += 1
            report.departures = faithfulness(replayer, allow=allow_departures)
            writer.final(replayer.final_state())
        changed = result["changed"]
        report.served_by = dict(replayer.served_by)
        report.replay_notes = replayer.stats
    report.golden_status = ("updated" if existed else "created") if changed else "unchanged"
    return report


class _staged:
    """Context manager yielding (file, result) that commits atomically on success."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.result: dict[str, bool] = {"changed": False}

    def __enter__(self) -> tuple[Any, dict[str, bool]]:
        import tempfile

        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.parent)
        self.fh = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        return self.fh, self.result

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        try:
            self.fh.close()
            if exc_type is None:
                self.result["changed"] = commit(Path(self.tmp), self.target)
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)
