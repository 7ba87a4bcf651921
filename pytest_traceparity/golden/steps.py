"""Judging one replayed step against its golden line: the per-step half of :func:`.verify.verify_trace`.

Why a module of its own: the verify loop runs the trace in blocks (statements back to back, then
their judging), and everything a step's verdict depends on (transaction state, earlier notable
writes, remembered verdicts, the report) lives here, in step order, whatever the block size.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from ..compare import (
    Difference,
    History,
    Outcome,
    compare_outcomes,
    param_shapes,
    transaction_after,
    transaction_change,
)
from ..divergences import Attribution, DivergenceRegistry
from ..trace.format import SQL_OPS, Event
from .fastcheck import EQUAL, Contexts, line_head, match_differences, raw_match, raw_summary, rowless_matches
from .replay_report import KEEP_KNOWN, ReplayReport, StepReport, _params_text, _reason_text, _short, short_sql
from .store import GoldenError, GoldenReader, params_digest, update_command

# a step's golden line as checked before it ran: (canonical head, or None; decoded JSON; decoded step; line number)
Checked = tuple[str | None, dict[str, Any] | None, Any, int]


class StepJudge:
    """Compares steps, in trace order, with their golden lines and files what differs in ``report``."""

    def __init__(
        self, report: ReplayReport, registry: DivergenceRegistry, expected: GoldenReader, check_params: bool
    ) -> None:
        self.report = report
        self.registry = registry
        self.expected = expected
        self.check_params = check_params
        self.prefix = prefix = f"trace::{report.name}#"
        # subjects a rule names are judged even when equal
        self.strict = {s for s in registry.strict_subjects(report.backend) if s.startswith(prefix)}
        self.memo: dict[Any, Any] | None = None if registry.subjects_matter(report.backend, prefix) else {}
        # an equal step is recognised on the golden's line text (no parameter digest to check, no strict subject)
        self.by_text = not check_params and not self.strict
        self.in_tx: dict[int, bool] = {}
        self.history = History()
        self.contexts = Contexts()
        self.folds: dict[int, tuple[Any, list[str], list[Attribution]]] = {}
        # (context id, golden counts, actual counts) -> (memo key, differences with context) of a count-only step
        self.repeats: dict[tuple[Any, ...], tuple[Any, list[Difference]]] = {}

    def precheck_block(self, events: list[Event]) -> tuple[list[str | None], list[Checked], GoldenError | None]:
        """Each event's golden line, checked before the event runs: ``(texts, checked, out_of_step)``. A line
        that starts as this step's canonical line is left unparsed (``(head, None, None, line)``); any other is
        decoded and checked (``(None, data, want, line)``). Stops at the first out-of-step line and returns its
        error (raised once the steps before it ran and were judged)."""
        texts: list[str | None] = []
        checked: list[Checked] = []
        expected, by_text = self.expected, self.by_text
        next_line = expected.next_line
        for event in events:
            text = next_line()
            line = expected.line  # judged later, after the whole block was read: errors name this line
            if by_text and text is not None:
                head = line_head(event.seq, event.conn, event.op, event.sql)
                if text.startswith(head):
                    texts.append(text)
                    checked.append((head, None, None, line))
                    continue
            try:
                data, want = _golden_step(expected, text, event, line)
            except GoldenError as exc:
                return texts, checked, exc
            texts.append(text)
            checked.append((None, data, want, line))
        return texts, checked, None

    def judge_block(
        self,
        events: list[Event],
        texts: list[str | None],
        checked: list[Checked],
        outcomes: list[Outcome],
    ) -> None:
        """Judge a block of run steps in trace order. The usual step (its golden line recognised on its text)
        is handled inline here; any other goes through :meth:`judge`."""
        in_tx, history, judge = self.in_tx, self.history, self.judge
        self.report.steps += len(outcomes)
        for event, text, (head, data, want, line), outcome in zip(events, texts, checked, outcomes):
            op, sql, conn = event.op, event.sql, event.conn
            before = in_tx.get(conn, False)
            if op == "execute":
                change = transaction_change(sql)
                if change is not None:
                    in_tx[conn] = change
            else:
                in_tx[conn] = transaction_after(sql or "", op, before)
            if head is not None and data is None:
                result = outcome.result
                if (
                    result is not None
                    and outcome.error is None
                    and outcome.error_json is None
                    and rowless_matches(text, head, result)  # type: ignore[arg-type]
                ):  # equal to the golden, seen on its text: nothing parsed, built or judged
                    history.note(event.db, op, sql, event.params, event.many)
                    continue
            judge(event, text, line, data, want, outcome, before)

    def judge(
        self,
        event: Event,
        text: str | None,
        line: int,
        data: dict[str, Any] | None,
        want: Any,
        outcome: Outcome,
        before: bool,
    ) -> None:
        """File ``event``'s difference from its golden (at ``line``), if any (``before``: its connection was in a
        transaction)."""
        report = self.report
        op, sql = event.op, event.sql
        history = self.history
        if data is None:
            data, want = _golden_step(self.expected, text, event, line)
        fast = want is None
        params_changed = self.check_params and data.get("params_sha256") != params_digest(event)
        subject = None if not self.strict else f"{self.prefix}{event.seq}"
        match = raw_match(data.get("outcome"), outcome) if fast else None
        if match is EQUAL and not params_changed and subject not in self.strict:
            history.note(event.db, op, sql, event.params, event.many)
            return  # equal to the golden: nothing to decode, build or judge
        memo = self.memo
        repeat = None
        if type(match) is tuple and not params_changed and subject is None and memo is not None:
            # only rowcount/lastrowid differ: the same difference in the same context was judged before?
            shaped = param_shapes(event.params) if event.many is None else None
            prior = history.prior(event.db)
            context = self.contexts.get(op, sql, event.params, event.many, before, event.db, prior, shaped)
            result = outcome.result
            assert result is not None
            repeat = (id(context), match, result.rowcount, result.lastrowid)
            seen = self.repeats.get(repeat)
            if seen is not None:
                verdict = self.registry.remembered(memo, seen[0])
                if verdict is not None:
                    self._file_known(event, data, outcome, seen[1], verdict)
                    history.note(event.db, op, sql, event.params, event.many, shaped)
                    return
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
        if type(match) is tuple:  # only rowcount/lastrowid differ: stated without decoding the golden
            diffs += match_differences(match, outcome, sql=compare_sql, executemany=op == "executemany")
        elif match is not EQUAL:  # decode the golden step and compare in full
            want = want or self.expected.step_from(data, line)
            diffs += compare_outcomes(want.outcome, outcome, sql=compare_sql, executemany=op == "executemany")
        key = None
        if diffs:
            context = self.contexts.get(op, sql, event.params, event.many, before, event.db, history.prior(event.db))
            # a shared context lives as long as a verdict remembered under its id: the id is a safe key
            key = (id(context), *((d.aspect, d.message, d.expected, d.actual, d.relation) for d in diffs))
            if memo is not None and subject is None and len(report.known) >= KEEP_KNOWN:
                verdict = self.registry.remembered(memo, key)
                if verdict is not None:  # a known difference seen before, past the steps kept whole: counted
                    _fold(report, event.seq, verdict, self.folds)
                    history.note(event.db, op, sql, event.params, event.many)
                    return
            diffs = [d.with_context(context) for d in diffs]
            if repeat is not None:
                if len(self.repeats) >= 4096:
                    self.repeats.clear()
                self.repeats[repeat] = (key, diffs)  # holds the context: its id stays this context's
        history.note(event.db, op, sql, event.params, event.many)
        make = partial(self._step_report, event, want, data, outcome)
        judge_step(report, self.registry, subject or f"{self.prefix}{event.seq}", diffs, make, memo, key)

    def _step_report(self, event: Event, want: Any, data: Any, outcome: Outcome) -> StepReport:
        """The report of a step that differs (built only then: most steps never need it)."""
        return StepReport(
            seq=event.seq,
            conn=event.conn,
            where=f"{self.report.trace}:{event.line}",
            sql=short_sql(event.sql) if event.sql else _short(event.short()),
            params=_params_text(event),
            expected=want.outcome.summary() if want is not None else raw_summary(data["outcome"]),
            actual=outcome.summary(),
            differences=[],
            status="",
        )

    def _file_known(
        self, event: Event, data: dict[str, Any], outcome: Outcome, diffs: list[Difference], verdict: Any
    ) -> None:
        """File a remembered known verdict for ``event``, as :func:`judge_step` would have."""
        report = self.report
        if len(report.known) >= KEEP_KNOWN:
            _fold(report, event.seq, verdict, self.folds)
        else:
            make = partial(self._step_report, event, None, data, outcome)
            file_verdict(report, f"{self.prefix}{event.seq}", diffs, verdict, make)


def _fold(
    report: ReplayReport, seq: int, verdict: Any, folds: dict[int, tuple[Any, list[str], list[Attribution]]]
) -> None:
    """:meth:`ReplayReport.fold` of a remembered verdict, its reasons made once per verdict."""
    cached = folds.get(id(verdict))
    if cached is None or cached[0] is not verdict:
        cached = folds[id(verdict)] = (verdict, [_reason_text(e) for e in verdict.entries], list(verdict.attributions))
    report.fold(seq, cached[1], cached[2])


def judge_step(
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
    file_verdict(report, subject, diffs, verdict, make)


def file_verdict(
    report: ReplayReport, subject: str, diffs: list[Difference], verdict: Any, make: Callable[[], StepReport]
) -> None:
    """Keep a differing step's report, with its verdict, among the failures or the known steps."""
    step = make()
    step.differences, step.status, step.message = list(diffs), verdict.status, verdict.message
    if verdict.subject not in ("", subject):  # a remembered verdict: its message names its first subject
        step.message = subject + verdict.message[len(verdict.subject) :]
    step.reasons = [_reason_text(e) for e in verdict.entries]
    step.attributions = list(verdict.attributions)
    (report.known if verdict.status == "known" else report.failures).append(step)


def _golden_step(expected: GoldenReader, text: str | None, event: Event, line: int) -> tuple[dict[str, Any], Any]:
    """The golden's line for ``event``, decoded: ``(data, None)`` when its seq, op and SQL agree (the outcome
    is compared on the raw JSON), ``(data, GoldenStep)`` when it had to be decoded whole to be checked.
    Raises :class:`GoldenError` when the trace and its golden are out of step."""
    data = None if text is None else expected.decode(text, line)
    if (
        data is not None
        and data.get("seq") == event.seq
        and data.get("op") == event.op
        and data.get("sql") == event.sql
        and type(data.get("conn")) is int
    ):
        return data, None
    want = None if data is None else expected.step_from(data, line)
    if want is None or want.seq != event.seq or want.op != event.op or want.sql != event.sql:
        raise GoldenError(out_of_step(Path(expected.trace), expected.path, event, want))
    assert data is not None
    return data, want


def out_of_step(trace: Path, golden: Path, event: Event, want: Any) -> str:
    if want is None:
        got = "the golden has no more steps"
    else:
        got = f"the golden has seq {want.seq} {want.op} {_short(want.sql or '', 80)!r} at line {want.line}"
    return (
        f"{trace}:{event.line}: trace and golden are out of step at seq {event.seq} "
        f"({event.op} {_short(event.sql or '', 80)!r}), but {got} in {golden}; the trace changed since "
        f"the golden was made: regenerate it with: {update_command(trace)}"
    )
