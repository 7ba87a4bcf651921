"""Minimization figure: a seeded divergence in a 10k-event trace shrinks to <= 10 events.

Generates a trace of N events (default 10,000) over two databases and four connections,
with transactions and reads, where one write near the end stores 2**40 into an untyped
column and a later read shows it as REAL on libsql (rule libsql.int-outside-i32-bound-as-real).
It needs the CREATE TABLE from the start of the trace, so delta debugging has to keep a
statement ~9,000 events away. Target (a goal, not a timed test): <= 10 events kept in under
60 s on the 2-core development machine. ``--check`` exits 1 on a miss; ``--json PATH`` writes
the figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

from pytest_traceparity.backends.base import BackendContext
from pytest_traceparity.divergences import DivergenceRegistry, builtin_entries
from pytest_traceparity.golden.minimizer import load_events, minimize
from pytest_traceparity.registry import standalone_registry
from pytest_traceparity.trace.format import TraceWriter, encode_event_params

MAX_EVENTS, MAX_SECONDS = 10, 60.0


def seeded_trace(path: Path, events: int) -> int:
    """Write the trace; returns the seq of the read that shows the divergence."""
    writer = TraceWriter(path)
    w = writer.write_event
    w("open", 1, db="db1", target="app.db", driver="sqlite3")
    w("open", 2, db="db1", target="app.db", driver="sqlite3")
    w("open", 3, db="db2", target="cache.db", driver="sqlite3")
    w("open", 4, db="db2", target="cache.db", driver="sqlite3")
    w("execute", 1, sql="CREATE TABLE kv (k TEXT PRIMARY KEY, v)", params=[])
    w("execute", 1, sql="CREATE TABLE log (id INTEGER PRIMARY KEY, msg TEXT)", params=[])
    w("execute", 3, sql="CREATE TABLE c (key TEXT, hits INTEGER)", params=[])
    seed_at = int(events * 0.9)
    i = 0
    while writer.count < events - 4:
        i += 1
        conn = 1 + (i % 4)
        p = lambda *v: encode_event_params("execute", v)  # noqa: E731
        if conn in (1, 2):
            w("begin", conn, mode="DEFERRED", flush=False)
            w(
                "execute",
                conn,
                sql="INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                params=p(f"key{i % 500}", i),
                flush=False,
            )
            w("execute", conn, sql="INSERT INTO log (msg) VALUES (?)", params=p(f"set key{i % 500}"), flush=False)
            w("commit", conn, flush=False)
            w("execute", conn, sql="SELECT v FROM kv WHERE k = ?", params=p(f"key{i % 500}"), flush=False)
        else:
            w("execute", conn, sql="INSERT INTO c VALUES (?, ?)", params=p(f"k{i}", i % 7), flush=False)
            w("execute", conn, sql="SELECT count(*), sum(hits) FROM c", params=[], flush=False)
        if writer.count >= seed_at and i > 0 and seed_at > 0:
            w("execute", 1, sql="INSERT INTO kv (k, v) VALUES (?, ?)", params=p("quota", 2**40))
            w("execute", 2, sql="SELECT v, typeof(v) FROM kv WHERE k = ?", params=p("quota"))
            target = writer.count
            seed_at = 0
    for conn in (1, 2, 3, 4):
        w("close", conn)
    writer.close()
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--backend", default="libsql-local")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    registry = standalone_registry()
    with tempfile.TemporaryDirectory(prefix="bench-minimize-") as tmp:
        root = Path(tmp)
        trace = root / "seeded.jsonl"
        target = seeded_trace(trace, args.events)
        counter = itertools.count()

        def make(name: str) -> BackendContext:
            path = root / f"ctx-{next(counter)}"
            path.mkdir()
            return BackendContext(workdir=path, name="db")

        events = load_events(trace)
        result = minimize(
            events,
            registry.get("sqlalchemy-sqlite"),
            registry.get(args.backend),
            make,
            DivergenceRegistry(builtin_entries()),
            seq=target,
        )
    figures = {
        "events": len(events),
        "kept": len(result.events),
        "seconds": round(result.seconds, 1),
        "replays": result.tests,
        "rule": result.target.rule,
        "complete": result.complete,
        "passes": result.passes,
    }
    print(
        f"minimize {args.backend}: {len(events)} events -> {len(result.events)} kept "
        f"({result.target.describe()}) in {result.seconds:.1f} s, {result.tests} replays; target <= "
        f"{MAX_EVENTS} events in < {MAX_SECONDS:g} s"
    )
    print("  " + "; ".join(result.passes))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    ok = len(result.events) <= MAX_EVENTS and result.seconds < MAX_SECONDS
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
