"""Replay memory must not grow with the number of databases in a trace.

Writes a synthetic trace of N databases (default 2,000) x 30 statements each (one
connection per database, half of them never closed, as test suites leave them), makes
its golden on the reference backend, then replays it on each backend in a separate
``traceparity replay`` process and reports that process's peak RSS (``wait4``).
Target: under ``--max-mib`` (default 150 MiB) on every backend: each database is
snapshotted and released right after its last use. ``--check`` exits 1 on a miss.

    python bench/bench_replay_memory.py --backends=all --check
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_traceparity.trace.format import TraceWriter, encode_event_params

ALL = ["sqlalchemy-sqlite", "libsql-local", "sqld-http", "embedded-replica"]


def write_trace(path: Path, dbs: int) -> int:
    writer = TraceWriter(path)
    for n in range(1, dbs + 1):
        writer.write_event("open", n, db=f"db{n}", target=f"test_{n}.db", driver="sqlite3", flush=False)
        writer.write_event(
            "execute", n, sql="CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INTEGER)", params=[], flush=False
        )
        for i in range(28):
            writer.write_event(
                "execute",
                n,
                sql="INSERT INTO t(a, b) VALUES (?, ?)",
                flush=False,
                params=encode_event_params("execute", [f"row {i} of {n}", i * n]),
            )
        writer.write_event("execute", n, sql="SELECT count(*), sum(b) FROM t", params=[], flush=False)
        if n % 2:
            writer.write_event("close", n, flush=False)
    writer.close()
    return writer.count


def replay(trace: Path, backend: str, extra: list[str]) -> tuple[int, float, float]:
    """(exit code, peak RSS MiB, seconds) of one ``traceparity replay`` process."""
    argv = [sys.executable, "-m", "pytest_traceparity.cli", "replay", str(trace), "--backend", backend, *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=trace.parent.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stderr.read().decode("utf-8", "replace")[-2000:] if proc.stderr else "")
    return proc.returncode, usage.ru_maxrss / 1024, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dbs", type=int, default=2000)
    parser.add_argument("--backends", default="sqlalchemy-sqlite,libsql-local")
    parser.add_argument("--max-mib", type=float, default=150.0)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    backends = ALL if args.backends == "all" else args.backends.split(",")
    missed = False
    with tempfile.TemporaryDirectory(prefix="traceparity-bench-") as tmp:
        trace = Path(tmp) / "traces" / "many.jsonl"
        trace.parent.mkdir()
        events = write_trace(trace, args.dbs)
        print(f"trace: {args.dbs} databases, {events} events, {trace.stat().st_size / 2**20:.1f} MiB")
        code, rss, secs = replay(trace, "sqlalchemy-sqlite", ["--update-golden"])
        print(f"golden (sqlalchemy-sqlite --update-golden): exit {code}, peak RSS {rss:.0f} MiB, {secs:.0f} s")
        for backend in backends:
            code, rss, secs = replay(trace, backend, ["--sqld=stand-in"])
            flag = "" if rss < args.max_mib else f"  MISSED (target < {args.max_mib:.0f} MiB)"
            missed |= rss >= args.max_mib or code not in (0, 1)
            print(f"{backend}: exit {code}, peak RSS {rss:.0f} MiB, {secs:.0f} s{flag}")
    return 1 if missed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
