"""Statement-level comparison of a redirected test (``--traceparity-compare``).

Every statement the test sends to a non-reference backend is also run, in the same
order, on a twin database on the reference backend: the reference run of that test's
statements. Each pair of outcomes is compared with the replay comparison
(:func:`~pytest_traceparity.compare.compare_outcomes`) and judged by the divergence
registry, so a test whose own assertions pass still reports a divergence it hit.

Lockstep rather than "record the reference item, compare later": the reference sees
exactly the statements the backend saw (no control-flow drift after a first difference),
and it works in any item order and under xdist.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Connection, Params
from ..backends.callsite import call_site
from ..compare import Difference, History, Outcome, compare_outcomes, statement_context, transaction_after
from ..divergences import DivergenceRegistry
from ..divergences.registry import Attribution, reason_lines, step_rank, summarize, triage
from ..values import Result, display

MAX_LISTED = 10


@dataclass
class Step:
    number: int
    conn: int
    target: str
    op: str
    sql: str
    params: Any
    where: str
    expected: Outcome
    actual: Outcome
    differences: list[Difference]
    status: str = "same"
    reasons: list[str] = field(default_factory=list)
    message: str = ""
    attributions: list[Attribution] = field(default_factory=list)

    def describe(self, backend: str, reference: str) -> str:
        lines = [
            f"statement {self.number} ({self.op} on conn {self.conn}, database {self.target})"
            + (f" at {self.where}" if self.where else "")
        ]
        if self.sql:
            lines.append(f"  SQL:      {_short(self.sql)}")
        if self.params not in (None, (), [], {}):
            lines.append(f"  params:   {_params(self.params)}")
        lines.append(f"  expected: {self.expected.summary()}   ({reference}, the reference)")
        lines.append(f"  actual:   {self.actual.summary()}   ({backend})")
        if self.attributions:
            lines.extend(f"  {a.label()}" for a in self.attributions)
        else:
            lines.extend(f"  {d}" for d in self.differences)
        if self.status == "expired":
            lines.append(f"  {self.message}")
        return "\n".join(lines)


@dataclass
class Verdict:
    """How the comparison of one test ends: ``passed``, ``xfail`` (known only) or ``failed``."""

    status: str
    message: str = ""
    triage: dict[str, Any] = field(default_factory=dict)


class StepLog:
    """The compared statements of one test on one backend (thread-safe: aiosqlite workers)."""

    def __init__(self, backend: str, reference: str, subject: str, registry: DivergenceRegistry) -> None:
        self.backend = backend
        self.reference = reference
        self.subject = subject
        self.registry = registry
        self.count = 0
        self.failures: list[Step] = []
        self._in_tx: dict[int, bool] = {}
        self._history = History()
        self.known: list[Step] = []
        self._lock = threading.Lock()

    def add(self, conn: int, target: str, op: str, sql: str, params: Any, expected: Outcome, actual: Outcome) -> None:
        if op in ("execute", "executemany"):
            diffs = compare_outcomes(expected, actual, sql=sql, executemany=op == "executemany")
        else:  # begin/commit/rollback/script/close compare on success or error only, as in replay
            diffs = compare_outcomes(_plain(expected), _plain(actual))
        with self._lock:
            self.count += 1
            many = params if op == "executemany" else None
            single = params if many is None else ()
            before = self._in_tx.get(conn, False)
            self._in_tx[conn] = transaction_after(sql or "", op, before)
            if diffs:
                context = statement_context(op, sql, single, many, before, target, self._history.prior(target))
                diffs = [d.with_context(context) for d in diffs]
            self._history.note(target, op, sql, single, many)
            if not diffs:
                return
            step = Step(self.count, conn, target, op, sql, params, call_site(), expected, actual, diffs)
            step.status, step.reasons, step.message, step.attributions = judge(
                self.registry, self.backend, self.subject, step
            )
            if step.status == "known":
                self.known.append(step)
            elif step.status != "same":
                self.failures.append(step)

    def verdict(self) -> Verdict:
        if self.failures:
            return Verdict("failed", self.failure_message(), self.triage())
        if self.known:
            return Verdict("xfail", self.xfail_reason(), self.triage())
        return Verdict("passed")

    def triage(self) -> dict[str, Any]:
        """The same ``differences`` / ``root_causes`` shape as ``replay --json``, per statement number."""
        steps = sorted(self.failures + self.known, key=lambda s: s.number)
        return triage([(s.number, a) for s in steps for a in s.attributions], {s.number: s.sql for s in steps})

    def failure_message(self) -> str:
        ordered = sorted(self.failures, key=_worst_unknown)
        first, rest = ordered[0], sorted(ordered[1:], key=lambda s: s.number)
        lines = [
            f"[{self.backend}] this test's statements diverge from the reference backend {self.reference} "
            f"({self.count} statement(s) compared; the test's own assertions are separate): "
            + summarize(a for s in self.failures + self.known for a in s.attributions),
            f"most severe diverging {first.describe(self.backend, self.reference)}",
        ]
        if rest:
            listed = ", ".join(str(s.number) for s in rest[:MAX_LISTED])
            more = " ..." if len(rest) > MAX_LISTED else ""
            lines.append(f"and {len(rest)} more statement(s) diverge: {listed}{more}")
        if self.known:
            lines.append(
                f"({len(self.known)} statement(s) differ in known ways: {self.xfail_reason().replace(chr(10), '; ')})"
            )
        lines.append(
            "if this difference is expected on this backend, describe its cause in the known-divergence "
            "registry ([[tool.traceparity.rules]] in pyproject.toml)"
        )
        return "\n".join(lines)

    def xfail_reason(self) -> str:
        reasons: dict[str, list[str]] = {}
        for step in self.known:
            for reason in step.reasons:
                reasons.setdefault(reason, []).append(str(step.number))
        return reason_lines(reasons)


def _worst_unknown(step: Step) -> tuple[tuple[int, int], int]:
    """Sort key: :func:`step_rank` (worst unknown, then worst overall), then statement order."""
    return (step_rank(step.attributions), step.number)


def judge(
    registry: DivergenceRegistry, backend: str, subject: str, step: Step
) -> tuple[str, list[str], str, list[Attribution]]:
    """The one coupling to the divergence registry: (status, reasons, message, attributions) for one step.

    The differences carry their statement context (kind, SQL, parameter shapes, transaction
    state), so the root-cause rules match here exactly as they do in replay.
    """
    verdict = registry.judge(backend, subject, step.differences)
    return (
        verdict.status,
        [f"{e.id}: {e.reason}" for e in verdict.entries],
        verdict.message,
        list(verdict.attributions),
    )


class ShadowedConnection:
    """A backend connection whose every call is mirrored on a reference connection and compared."""

    def __init__(self, primary: Connection, shadow: Connection, log: StepLog, conn: int, target: str) -> None:
        self.primary = primary
        self.shadow = shadow
        self.log = log
        self.conn = conn
        self.target = target
        self.backend_id = primary.backend_id

    def _both(self, op: str, sql: str, params: Any, call: Callable[[Connection], Any]) -> Any:
        actual = Outcome.capture(call, self.primary)
        expected = Outcome.capture(call, self.shadow)
        self.log.add(self.conn, self.target, op, sql, params, expected, actual)
        if actual.error is not None:
            raise actual.error
        return actual.result

    def execute(self, sql: str, params: Params = ()) -> Result:
        result: Result = self._both("execute", sql, params, lambda c: c.execute(sql, params))
        return result

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> Result:
        batch = list(seq_of_params)
        result: Result = self._both("executemany", sql, batch, lambda c: c.executemany(sql, batch))
        return result

    def executescript(self, script: str) -> None:
        self._both("executescript", script, None, lambda c: c.executescript(script))

    def begin(self, mode: str = "DEFERRED") -> None:
        self._both("begin", f"BEGIN {mode}", None, lambda c: c.begin(mode))

    def commit(self) -> None:
        self._both("commit", "COMMIT", None, lambda c: c.commit())

    def rollback(self) -> None:
        self._both("rollback", "ROLLBACK", None, lambda c: c.rollback())

    @property
    def in_transaction(self) -> bool:
        return self.primary.in_transaction

    def close(self) -> None:
        try:
            self.primary.close()
        finally:
            self.shadow.close()


def _plain(outcome: Outcome) -> Outcome:
    return outcome if outcome.failed else Outcome(result=Result())


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _params(params: Any) -> str:
    if isinstance(params, dict):
        return _short("{" + ", ".join(f"{k}: {_value(v)}" for k, v in params.items()) + "}")
    if isinstance(params, list) and params and isinstance(params[0], (list, tuple, dict)):
        return f"{len(params)} parameter set(s)"
    return _short("[" + ", ".join(_value(v) for v in params) + "]")


def _value(value: Any) -> str:
    try:
        return display(value)
    except TypeError:
        return repr(value)
