"""Running conformance cases and judging them: fresh database per case, reference cached.

Each case runs on a fresh database; every step's :class:`~pytest_traceparity.compare.Outcome`
is compared with the reference backend's outcome for the same step, and the differences
are judged by the known-divergence registry under the subject ``conformance::<case id>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import BackendContext, Connection
from ..backends.facade import DB
from ..compare import History, Outcome, StepContext, compare_outcomes, statement_context, transaction_after
from ..divergences import DivergenceRegistry, Verdict
from ..divergences.registry import triage
from ..errors import DatabaseError
from ..registry import BackendRegistry
from ..values import Result
from .case import Case, CaseRun, Step, StepDifference, StepRun
from .expectations import expect_diffs
from .render import flatten, render


def run_case(case: Case, db: DB) -> CaseRun:
    """Run every step on ``db`` (a fresh database); errors are outcomes, not exceptions."""
    run = CaseRun(case=case, backend=db.backend_id, served_by=db.served_by)
    second: Connection | None = None
    refused: Outcome | None = None  # opening the second connection failed: each of its steps shows that error
    for step in case.all_steps():
        if step.conn == 2:
            if second is None and refused is None:
                try:
                    second = db.connect()
                except DatabaseError as exc:
                    refused = Outcome(error=exc)
            if refused is not None:
                run.steps.append(StepRun(step, refused))
                continue
            assert second is not None
            conn = second
        else:
            conn = db.connection
        run.steps.append(StepRun(step, Outcome.capture(_perform, conn, step)))
    return run


def _no_result(action: Callable[[], object]) -> None:
    action()


# op -> what it does on a connection; parse_case accepts exactly these ops (case.OPS)
_PERFORM: dict[str, Callable[[Connection, Step], Any]] = {
    "execute": lambda conn, step: conn.execute(step.sql, step.params),
    "executemany": lambda conn, step: conn.executemany(step.sql, step.params),
    "executescript": lambda conn, step: _no_result(lambda: conn.executescript(step.sql)),
    "begin": lambda conn, step: _no_result(lambda: conn.begin(step.mode)),
    "commit": lambda conn, step: _no_result(conn.commit),
    "rollback": lambda conn, step: _no_result(conn.rollback),
    "in_transaction": lambda conn, step: Result(columns=("in_transaction",), rows=[(int(conn.in_transaction),)]),
}


def _perform(conn: Connection, step: Step) -> Any:
    return _PERFORM[step.op](conn, step)


def step_context(step: Step, in_transaction: bool | None, history: History | None = None) -> StepContext:
    """What rules may match on besides the difference: statement kind, SQL, parameter shapes."""
    many = step.params if step.op == "executemany" else None
    prior = history.prior(None) if history is not None else frozenset()
    return statement_context(step.op, step.sql, step.params if many is None else (), many, in_transaction, prior=prior)


def _note(history: History, step: Step) -> None:
    many = step.params if step.op == "executemany" else None
    history.note(None, step.op, step.sql, step.params if many is None else (), many)


def compare_runs(reference: CaseRun, actual: CaseRun) -> list[StepDifference]:
    """Step-by-step differences of ``actual`` from ``reference`` (empty when identical)."""
    out: list[StepDifference] = []
    in_tx: dict[int, bool] = {}
    history = History()
    for want, got in zip(reference.steps, actual.steps):
        diffs = compare_outcomes(
            want.outcome, got.outcome, sql=want.step.sql, executemany=want.step.op == "executemany"
        )
        before = in_tx.get(want.step.conn, False)
        in_tx[want.step.conn] = transaction_after(want.step.sql, want.step.op, before)
        if diffs:
            context = step_context(want.step, before, history)
            out.append(StepDifference(want.step, want.outcome, got.outcome, [d.with_context(context) for d in diffs]))
        _note(history, want.step)
    return out


def check_expectations(run: CaseRun) -> list[StepDifference]:
    """Where ``run`` contradicts the case's ``expect`` tables (aspects ``expect.<key>``)."""
    out: list[StepDifference] = []
    in_tx: dict[int, bool] = {}
    for sr in run.steps:
        before = in_tx.get(sr.step.conn, False)
        in_tx[sr.step.conn] = transaction_after(sr.step.sql, sr.step.op, before)
        exp = sr.step.expect
        if exp is None:
            continue
        diffs = expect_diffs(exp, sr.outcome)
        if diffs:
            context = step_context(sr.step, before)
            out.append(StepDifference(sr.step, Outcome(), sr.outcome, [d.with_context(context) for d in diffs]))
    return out


@dataclass
class CaseVerdict:
    """What a test should do: pass, xfail (``known``), skip or fail, with the message."""

    status: str  # "same", "known", "diverged", "fixed", "expired", "skip"
    message: str = ""
    reason: str = ""
    verdict: Verdict | None = None
    step_differences: list[StepDifference] = field(default_factory=list)
    served_by: str = ""

    @property
    def passed(self) -> bool:
        return self.status in ("same", "known")

    def triage(self) -> dict[str, Any]:
        """Same shape as ``traceparity replay --json``; ``seq`` is the case's step number (0 = setup)."""
        if self.verdict is None or not self.verdict.attributions:
            return {}
        flat = [(sd.step, d) for sd in self.step_differences for d in sd.differences]
        pairs = [(step.index, a) for (step, _), a in zip(flat, self.verdict.attributions)]
        sql = {step.index: " ".join(step.sql.split())[:200] or step.op for step, _ in flat}
        return triage(pairs, sql)


class ConformanceRunner:
    """Runs cases on backends; the reference's runs are computed once per case and cached."""

    def __init__(
        self,
        registry: BackendRegistry,
        reference: str,
        divergences: DivergenceRegistry,
        new_context: Callable[[str], BackendContext],
    ) -> None:
        self.registry = registry
        self.reference = reference
        self.divergences = divergences
        self.new_context = new_context
        self._reference_runs: dict[str, CaseRun] = {}

    def missing_requirements(self, case: Case, backend_id: str) -> str | None:
        """Why ``case`` cannot run on ``backend_id`` (``None`` when it can)."""
        for bid in dict.fromkeys([backend_id, self.reference]):
            backend = self.registry.get(bid)
            missing = [r for r in case.requires if not backend.has(r)]
            if missing:
                role = "the reference backend " if bid == self.reference and bid != backend_id else ""
                return (
                    f"case {case.id} requires {', '.join(missing)}, which {role}{bid} does not declare "
                    f"(its capabilities: {', '.join(sorted(backend.capabilities)) or 'none'})"
                )
        return None

    def run_on(self, case: Case, backend_id: str) -> CaseRun:
        backend = self.registry.get(backend_id)
        ctx = self.new_context(f"{case.id}-{backend_id}")
        db = DB(backend, ctx)
        try:
            return run_case(case, db)
        finally:
            db.close()

    def reference_run(self, case: Case) -> CaseRun:
        run = self._reference_runs.get(case.id)
        if run is None:
            run = self._reference_runs[case.id] = self.run_on(case, self.reference)
        return run

    def check(self, case: Case, backend_id: str) -> CaseVerdict:
        """Run ``case`` on ``backend_id`` and decide, via the registry, what the test does."""
        why = self.missing_requirements(case, backend_id)
        if why:
            return CaseVerdict("skip", message=why, reason=why)
        reference = self.reference_run(case)
        served_by = reference.served_by
        if backend_id == self.reference:
            step_diffs = check_expectations(reference)
            # The reference is only judged on its 'expect' facts: an entry whose backend glob
            # happens to match the reference (e.g. "*") but is about other aspects must not
            # turn a clean reference run into "no longer diverges".
            if not step_diffs and not any(
                a.startswith("expect.")
                for e in self.divergences.strict_for(backend_id, case.subject)
                for a in e.aspects
            ):
                return CaseVerdict("same", served_by=served_by)
            title = (
                f"conformance case {case.id}: the reference backend {backend_id} contradicts the case's "
                "'expect' (fix the case, or the reference changed behaviour)"
            )
        else:
            actual = self.run_on(case, backend_id)
            served_by = actual.served_by
            step_diffs = compare_runs(reference, actual)
            title = None
        verdict = self.divergences.judge(backend_id, case.subject, flatten(step_diffs))
        report = (
            render(case, backend_id, self.reference, step_diffs, title=title, verdict=verdict) if step_diffs else ""
        )
        if verdict.status == "same":
            return CaseVerdict("same", verdict=verdict, served_by=served_by)
        if verdict.status == "known":
            return CaseVerdict(
                "known",
                message=report,
                reason=verdict.reason,
                verdict=verdict,
                step_differences=step_diffs,
                served_by=served_by,
            )
        if verdict.status == "diverged":
            message = report + (
                "\n  if this is a real, accepted difference, describe its cause as a rule in pyproject.toml "
                "([[tool.traceparity.rules]] with id, backend, aspects, expected/actual/relation, reason); "
                "first reduce it with: traceparity minimize"
            )
            return CaseVerdict(
                "diverged", message=message, verdict=verdict, step_differences=step_diffs, served_by=served_by
            )
        message = verdict.message + (("\n" + report) if report else "")
        return CaseVerdict(
            verdict.status, message=message, verdict=verdict, step_differences=step_diffs, served_by=served_by
        )
