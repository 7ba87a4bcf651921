"""Faithfulness: does the reference replay do what the recorded program saw?

A golden is only worth something if the reference replay reproduces the program's own
outcome. The recorder keeps each call's error (kind, PEP 249 class); here each replayed
step is compared with it: error or not, the error kind, and the row count of
INSERT/UPDATE/DELETE/REPLACE. ``--update-golden`` lists
every departure (count and first examples) and refuses to write when one is not of a
documented class, unless explicitly allowed.

Documented classes (why the replay may legitimately differ from the program):

* ``not-captured``: the step runs on a database that existed before recording but
  could not be captured (over the seed size limit), so the replay starts it empty;
* ``open-failed``: the connection could not be opened on this backend;
* ``after-departure``: the same connection already departed earlier (its state differs);
* ``missing-function``: the replay has no function the program had (``no such function``:
  registered through an API the recorder does not see, or a trace recorded before
  registrations were recorded); re-record with this version to have those steps marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..compare import Outcome
from ..errors import UnfaithfulReplay as UnfaithfulReplay
from .format import Event

DOCUMENTED = ("not-captured", "open-failed", "after-departure", "missing-function")
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Departure:
    seq: int
    conn: int
    line: int
    sql: str
    program: str
    replay: str
    cause: str = "undocumented"

    def describe(self) -> str:
        return (
            f"seq {self.seq} (line {self.line}, conn {self.conn}) {self.sql}: program saw {self.program}, "
            f"replay got {self.replay} [{self.cause}]"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "conn": self.conn,
            "sql": self.sql,
            "program": self.program,
            "replay": self.replay,
            "cause": self.cause,
        }


def _seen(error: dict[str, Any] | None) -> str:
    return "success" if not error else f"error {error.get('kind')}"


def departure_for(event: Event, outcome: Outcome) -> Departure | None:
    """How ``outcome`` departs from what the program saw at ``event`` (``None``: it does not)."""
    if event.op not in ("execute", "executemany", "executescript") and not (event.op == "open" and outcome.failed):
        return None
    got = outcome.error_fields() if outcome.failed else None
    if got is not None and got.get("kind") == "excluded":
        return None
    want = event.error
    if (want is None) == (got is None) and (want is None or want.get("kind") == got.get("kind")):  # type: ignore[union-attr]
        result = outcome.result
        if event.rowcount is None or result is None or result.rowcount == event.rowcount:
            return None
        return Departure(
            seq=event.seq,
            conn=event.conn,
            line=event.line,
            sql=event.short(100),
            program=f"rowcount {event.rowcount}",
            replay=f"rowcount {result.rowcount}",
        )
    cause = "undocumented"
    if (got is not None and got.get("kind") == "not_run") or event.op == "open":
        cause = "open-failed"
    elif want is None and got is not None and got.get("kind") == "no_such_function":
        cause = "missing-function"
    return Departure(
        seq=event.seq,
        conn=event.conn,
        line=event.line,
        sql=event.short(100),
        program=_seen(want),
        replay=_seen(got),
        cause=cause,
    )


def classify(departures: list[Departure], uncaptured: set[int] | None = None) -> list[Departure]:
    """Give later departures on an already-departed connection (or on an uncaptured database) their cause."""
    seen: set[int] = set()
    out = []
    for d in departures:
        cause = d.cause
        if cause == "undocumented":
            if uncaptured and d.conn in uncaptured:
                cause = "not-captured"
            elif d.conn in seen:
                cause = "after-departure"
        seen.add(d.conn)
        out.append(Departure(d.seq, d.conn, d.line, d.sql, d.program, d.replay, cause))
    return out


def summary(departures: list[Departure]) -> str:
    """Count per cause and the first examples, for people."""
    if not departures:
        return "the reference replay matches what the program saw at every step"
    counts: dict[str, int] = {}
    for d in departures:
        counts[d.cause] = counts.get(d.cause, 0) + 1
    head = ", ".join(f"{n} {cause}" for cause, n in sorted(counts.items()))
    lines = [f"{len(departures)} step(s) of the reference replay depart from what the program saw ({head}):"]
    lines += [f"  {d.describe()}" for d in departures[:MAX_EXAMPLES]]
    if len(departures) > MAX_EXAMPLES:
        lines.append(f"  ... and {len(departures) - MAX_EXAMPLES} more")
    return "\n".join(lines)


def check(departures: list[Departure], *, allow: bool) -> None:
    """Refuse (raise) when a departure has no documented cause, unless ``allow``."""
    bad = [d for d in departures if d.cause not in DOCUMENTED]
    if bad and not allow:
        raise UnfaithfulReplay(
            summary(departures) + f"\nrefusing to write the golden: {len(bad)} departure(s) have no documented "
            "cause, so the golden would not describe the program; fix the trace or the recording, or pass "
            "--allow-departures (pytest: TRACEPARITY_ALLOW_DEPARTURES=1) to write it anyway"
        )


def faithfulness(replayer: Any, *, allow: bool) -> list[Departure]:
    """The reference replay's departures, classified; raises :class:`UnfaithfulReplay` unless documented."""
    departures = classify(list(replayer.departures), set(replayer.uncaptured))
    check(departures, allow=allow)
    return departures
