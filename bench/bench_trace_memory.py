"""Streaming check for traces: memory to read a large trace must not grow with its size.

Writes a synthetic trace of N events (default 200,000, ~40 MB), reads it back with the
streaming reader, and reports the tracemalloc peak. Target: peak under ``--max-mib``
(default 16 MiB) — a reader that loaded the file whole would need several times the file
size. ``python bench/bench_trace_memory.py --check`` exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from pytest_traceparity.trace.format import TraceReader, TraceWriter, encode_event_params


def write_trace(path: Path, events: int) -> None:
    writer = TraceWriter(path)
    writer.write_event("open", 1, db="db1", target="bench.db", driver="sqlite3")
    writer.write_event("execute", 1, sql="CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB)", params=[])
    payload = "x" * 100
    for i in range(events):
        writer.write_event(
            "execute",
            1,
            flush=False,
            sql="INSERT INTO t(a, b) VALUES (?, ?)",
            params=encode_event_params("execute", [f"{payload}{i}", bytes([i % 256]) * 32]),
        )
    writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--max-mib", type=float, default=16.0)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="traceparity-bench-") as tmp:
        path = Path(tmp) / "big.jsonl"
        write_trace(path, args.events)
        size_mib = path.stat().st_size / 2**20
        tracemalloc.start()
        start = time.perf_counter()
        count = sum(1 for _ in TraceReader(path))
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    peak_mib = peak / 2**20
    print(f"trace: {count} events, {size_mib:.1f} MiB on disk")
    print(
        f"read:  {elapsed:.2f} s ({count / elapsed:,.0f} events/s), peak {peak_mib:.2f} MiB "
        f"(target < {args.max_mib} MiB)"
    )
    if peak_mib >= args.max_mib:
        print(f"target missed: peak {peak_mib:.2f} MiB", file=sys.stderr)
        return 1 if args.check else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
