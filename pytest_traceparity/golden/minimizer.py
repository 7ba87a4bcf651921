"""Shrink a trace to a minimal sub-trace that still shows one difference (delta debugging).

Why: a real workload's trace has thousands of events; a divergence is only actionable
(a rule, a bug report upstream) once it is a handful of statements. The difference to keep
is identified by its rule id, or by aspect + statement kind when no rule explains it.

Every candidate is replayed from scratch on the reference backend and on the target
backend and compared step by step (no golden needed: a sub-trace's reference outcomes
differ from the full trace's). Candidates are repaired into valid traces first: a
connection keeps its ``open`` (and ``close``) exactly when any of its events is kept, and
``begin``/``commit``/``rollback`` events stay balanced per connection. Passes: cut after
the target step, then ddmin over databases, connections and finally single events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..backends.base import Backend, BackendContext
from ..compare import Difference, History, compare_outcomes, sql_kind, statement_context, transaction_after
from ..divergences import Attribution, DivergenceRegistry, most_severe_first
from ..trace.format import SQL_OPS, Event, TraceHeader, TraceReader, TraceWriter, encode_event_params
from ..trace.replayer import Replayer
from .verify import _final_differences

MakeContext = Callable[[str], BackendContext]


@dataclass(frozen=True)
class Target:
    """The difference to keep: a rule id, or (aspect, statement kind) when it is unknown."""

    rule: str | None
    aspect: str
    kind: str
    # For errors the observations too (error kinds / classes): a candidate that merely dropped the
    # CREATE TABLE fails with 'no such table' and must not count as the same difference.
    observed: tuple[str | None, str | None] | None = None

    def describe(self) -> str:
        return f"rule {self.rule}" if self.rule else f"unknown [{self.aspect}] on a {self.kind} statement"

    def found_in(self, attributions: Sequence[Attribution]) -> bool:
        for a in attributions:
            d = a.difference
            if self.observed is not None and (d.expected, d.actual) != self.observed:
                continue
            if self.rule is not None:
                if a.rule_id == self.rule:
                    return True
            elif a.rule is None and d.aspect == self.aspect and _kind(d) == self.kind:
                return True
        return False


@dataclass
class Minimized:
    target: Target
    events: list[Event]
    original: int
    tests: int = 0
    seconds: float = 0.0
    complete: bool = True  # False when the time budget ran out first
    passes: list[str] = field(default_factory=list)


def _kind(diff: Difference) -> str:
    return diff.context.kind if diff.context is not None else "final"


def run_pair(
    events: Sequence[Event],
    reference: Backend,
    backend: Backend,
    make_context: MakeContext,
    registry: DivergenceRegistry,
    *,
    final: bool = True,
) -> list[tuple[int | str, Attribution]]:
    """Replay ``events`` on both backends and attribute every difference (no golden involved)."""
    out: list[tuple[int | str, Attribution]] = []
    in_tx: dict[int, bool] = {}
    history = History()
    subject = "trace::minimize"
    with Replayer(reference, make_context, "min-ref") as ref, Replayer(backend, make_context, "min-act") as act:
        for event in events:
            want, got = ref.step(event), act.step(event)
            if event.op in SQL_OPS:
                diffs = compare_outcomes(want, got, sql=event.sql or "", executemany=event.op == "executemany")
            else:
                diffs = compare_outcomes(want, got)
            before = in_tx.get(event.conn, False)
            in_tx[event.conn] = transaction_after(event.sql or "", event.op, before)
            if diffs:
                context = statement_context(
                    event.op, event.sql, event.params, event.many, before, event.db, history.prior(event.db)
                )
                out += [(event.seq, registry.attribute(backend.id, subject, d.with_context(context))) for d in diffs]
            history.note(event.db, event.op, event.sql, event.params, event.many)
        if final:
            diffs = _final_differences(ref.final_state(), act.final_state(), history)
            out += [("final", registry.attribute(backend.id, subject, d)) for d in diffs]
    return out


def pick_target(
    found: Sequence[tuple[int | str, Attribution]], *, rule: str | None = None, seq: int | None = None
) -> tuple[Target, int | str]:
    """The most severe unknown difference (else the most severe known one), or the one asked for."""
    if not found:
        raise ValueError("the trace shows no difference on this backend; nothing to minimize")
    candidates = list(found)
    if rule is not None:
        candidates = [(s, a) for s, a in found if a.rule_id == rule]
        if not candidates:
            raise ValueError(f"no difference in this trace is attributed to rule {rule!r}")
    if seq is not None:
        candidates = [(s, a) for s, a in candidates if s == seq]
        if not candidates:
            raise ValueError(
                f"step {seq} shows no difference on this backend when replayed next to the reference "
                "(only against the golden: re-make the golden, then minimize)"
            )
    order = {id(a): i for i, a in enumerate(most_severe_first(a for _, a in candidates))}
    where, best = min(candidates, key=lambda pair: order[id(pair[1])])
    diff = best.difference
    observed = (diff.expected, diff.actual) if diff.aspect.startswith("error.") else None
    return Target(best.rule_id, diff.aspect, _kind(diff), observed), where


def repair(kept: Sequence[Event], everything: Sequence[Event]) -> list[Event]:
    """A valid trace from a subset: opens/closes of used connections, balanced transactions."""
    chosen = {id(e) for e in kept}
    used = {e.conn for e in kept}
    out: list[Event] = []
    in_tx: dict[int, bool] = {}
    for event in everything:
        if event.op in ("open", "close"):
            if event.conn in used:
                out.append(event)
            continue
        if id(event) not in chosen:
            continue
        if event.op == "begin":
            if in_tx.get(event.conn):
                continue
            in_tx[event.conn] = True
        elif event.op in ("commit", "rollback"):
            if not in_tx.get(event.conn):
                continue
            in_tx[event.conn] = False
        out.append(event)
    open_tx = {conn for conn, active in in_tx.items() if active}
    if open_tx:  # a begin whose commit was dropped: drop the begin too, the predicate re-checks
        last_begin = {}
        for index, event in enumerate(out):
            if event.op == "begin" and event.conn in open_tx:
                last_begin[event.conn] = index
        out = [e for i, e in enumerate(out) if i not in set(last_begin.values())]
    return out


def ddmin(
    units: list[list[Event]], test: Callable[[list[list[Event]]], bool], out_of_time: Callable[[], bool]
) -> list[list[Event]]:
    """Zeller's ddmin over groups of events: the smallest list of groups the test still accepts."""
    n = 2
    while len(units) >= 2 and not out_of_time():
        size = -(-len(units) // n)
        chunks = [units[i : i + size] for i in range(0, len(units), size)]
        for chunk in chunks:
            if test(chunk):
                units, n = chunk, 2
                break
        else:
            for index in range(len(chunks)):
                rest = [u for j, c in enumerate(chunks) if j != index for u in c]
                if test(rest):
                    units, n = rest, max(n - 1, 2)
                    break
            else:
                if n >= len(units):
                    break
                n = min(len(units), n * 2)
    return units


def minimize(
    events: list[Event],
    reference: Backend,
    backend: Backend,
    make_context: MakeContext,
    registry: DivergenceRegistry,
    *,
    rule: str | None = None,
    seq: int | None = None,
    budget: float = 300.0,
) -> Minimized:
    """Delta debugging: databases, then connections, then single events."""
    start = time.monotonic()
    found = run_pair(events, reference, backend, make_context, registry)
    target, where = pick_target(found, rule=rule, seq=seq)
    result = Minimized(target, events, original=len(events), tests=1)
    final = where == "final"
    if isinstance(where, int):  # later steps cannot influence this one: cut them
        events = [e for e in events if e.seq <= where]
    result.passes.append(f"cut after step {where}: {len(events)} event(s)")
    everything = events
    body = [e for e in everything if e.op not in ("open", "close")]

    def out_of_time() -> bool:
        return time.monotonic() - start > budget

    def test(groups: list[list[Event]]) -> bool:
        candidate = repair([e for g in groups for e in g], everything)
        if not candidate:
            return False
        result.tests += 1
        try:
            pairs = run_pair(candidate, reference, backend, make_context, registry, final=final)
        except Exception:  # a candidate the backend cannot even replay is not a reproduction
            return False
        return target.found_in([a for _, a in pairs])

    if isinstance(where, int):
        body = _window_first(body, where, test, out_of_time, result)
    keys: tuple[tuple[str, Callable[[Event], str]], ...] = (
        ("databases", lambda e: e.db or ""),
        ("connections", lambda e: str(e.conn)),
    )
    for label, key in keys:
        groups: dict[str, list[Event]] = {}
        for event in body:
            groups.setdefault(key(event), []).append(event)
        if len(groups) > 1:
            body = [e for g in ddmin(list(groups.values()), test, out_of_time) for e in g]
        result.passes.append(f"{label}: {len(repair(body, everything))} event(s)")
    body = [e for g in ddmin([[e] for e in body], test, out_of_time) for e in g]
    result.events = repair(body, everything)
    result.passes.append(f"events: {len(result.events)} event(s)")
    result.complete = not out_of_time()
    result.seconds = time.monotonic() - start
    return result


def _window_first(
    body: list[Event],
    where: int,
    test: Callable[[list[list[Event]]], bool],
    out_of_time: Callable[[], bool],
    result: Minimized,
) -> list[Event]:
    """Cheap first guess before ddmin: the schema statements plus the last N events before the target.

    Most divergences need their tables and a few recent writes; trying windows of 0, 1, 2, 4 ...
    events costs a few short replays and usually leaves ddmin a handful of events instead of thousands.
    """
    schema = [e for e in body if e.op == "executescript" or (e.sql and sql_kind(e.sql) == "ddl")]
    before = [e for e in body if e.seq < where and e not in schema]
    target = [e for e in body if e.seq == where]
    window = 0
    while not out_of_time() and window <= len(before):
        recent = before[len(before) - window :] if window else []
        candidate = sorted([*schema, *recent, *target], key=lambda e: e.seq)
        if test([candidate]):
            result.passes.append(f"schema + last {window} event(s): {len(candidate)} event(s)")
            return candidate
        if window >= len(before):
            break
        window = min(len(before), max(1, window * 2))
    return body


def write_trace(events: Sequence[Event], path: Path, source: dict[str, object] | None = None) -> None:
    """Write ``events`` as a valid trace (renumbered from 1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = TraceWriter(path, TraceHeader(source=dict(source or {})))
    try:
        for e in events:
            params = None
            if e.op == "execute":
                params = encode_event_params("execute", e.params)
            elif e.op == "executemany":
                params = encode_event_params("executemany", e.many or [])
            writer.write_event(
                e.op,
                e.conn,
                flush=False,
                db=e.db if e.op == "open" else None,
                target=e.target,
                driver=e.driver,
                mode=e.mode if e.op == "begin" else None,
                sql=e.sql,
                params=params,
            )
    finally:
        writer.close()


def load_events(path: Path) -> list[Event]:
    return list(TraceReader(path))
