"""Replay a trace against its golden (or rewrite the golden from the reference backend).

Used by the collected trace items, the ``replay`` fixture and ``traceparity replay``
alike, so all three report a divergence the same way: the most severe unexplained step
first (seq, connection, SQL, expected vs actual, backend, rule or "unknown"), then a
summary of the rest by severity and rule.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any

from ..backends.base import Backend, BackendContext
from ..compare import Difference, History, StepContext, value_relation
from ..divergences import DivergenceRegistry
from ..fingerprint import diff_content, diff_schemas
from ..trace.faithful import faithfulness
from ..trace.format import Event, TraceReader
from ..trace.replayer import Replayer
from .replay_report import (  # re-exported: they lived here
    KEEP_KNOWN,
    MAX_LISTED,
    ReplayReport,
    StepReport,
    _short,
)
from .steps import StepJudge
from .steps import judge_step as judge_step_report
from .store import (
    GoldenError,
    GoldenHeader,
    GoldenReader,
    GoldenWriter,
    commit,
    file_sha256,
    golden_path_for,
    update_command,
)

__all__ = ["BLOCK", "KEEP_KNOWN", "MAX_LISTED", "ReplayReport", "StepReport", "_short", "update_golden", "verify_trace"]


# Steps run in blocks: a block's statements back to back, then their judging. Interleaving each statement
# with reading and comparing made the client itself about a third slower (its working set was evicted
# from the CPU caches between statements); the verdicts are the same, in the same order.
BLOCK = 256


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
    events = iter(TraceReader(trace))
    with GoldenReader(golden, trace) as expected, _collecting_only_new_objects():
        # a golden made from these very bytes holds these very parameters (no per-step digest needed) and
        # knows where each database is used last
        same_trace = expected.header.trace_sha256 == file_sha256(trace)
        last_use = expected.header.last_use if same_trace else None
        replayer = Replayer(backend, make_context, report.name, trace=trace, departures=False, last_use=last_use)
        with replayer:
            return _verify(report, registry, expected, replayer, events, check_params=not same_trace)


@contextlib.contextmanager
def _collecting_only_new_objects() -> Iterator[None]:
    """While a trace replays, the garbage collector leaves alone what existed before (``gc.freeze``).

    Why: a long replay makes enough lasting objects (step reports, caches) to trigger a full collection,
    and a full collection walks every object of the process (imported modules, the caller's data): 40 ms
    in a 20k-step replay in a process holding the trace's events, more than the replay's own work
    judging 2,000 known steps. Objects the replay makes are collected as usual. Untouched when something
    else already froze objects (its freeze must outlive us), and undone however the replay ends.
    """
    if gc.get_freeze_count() or not gc.isenabled():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _verify(
    report: ReplayReport,
    registry: DivergenceRegistry,
    expected: GoldenReader,
    replayer: Replayer,
    events: Iterator[Event],
    *,
    check_params: bool,
) -> ReplayReport:
    """The steps in blocks (run back to back, then judged in order), then the final state."""
    trace, golden = report.trace, report.golden
    judge = StepJudge(report, registry, expected, check_params=check_params)
    precheck_block, run_block, judge_block = judge.precheck_block, replayer.run_block, judge.judge_block
    while block := list(islice(events, BLOCK)):
        texts, checked, out_of_step = precheck_block(block)
        outcomes = run_block(block if len(checked) == len(block) else block[: len(checked)])
        judge_block(block, texts, checked, outcomes)
        if out_of_step is not None:
            raise out_of_step
    extra = expected.next_step()
    if extra is not None:
        raise GoldenError(
            f"{golden}:{extra.line}: golden has more steps than trace {trace} ({report.steps}); the trace "
            f"and its golden are out of step; regenerate the golden with: {update_command(trace)}"
        )
    actual_final = replayer.final_state()
    report.served_by = dict(replayer.served_by)
    report.replay_notes = replayer.stats
    diffs = _final_differences(expected.final or {}, actual_final, judge.history)

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

    judge_step_report(report, registry, f"trace::{report.name}#final", diffs, make_final)
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
    changed = False
    with _collecting_only_new_objects(), Replayer(backend, make_context, report.name, trace=trace) as replayer:
        header = GoldenHeader(
            trace=report.name, trace_sha256=file_sha256(trace), reference=backend.id, last_use=replayer.last_use
        )
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
