"""Throughput of each backend relative to the reference, on one fixed workload.

Targets are ratios (backend time / reference time), so they hold on any machine:
run ``python bench/bench_backends.py`` (add ``--check`` to exit non-zero on a miss,
``--json PATH`` to keep the numbers). Never part of the test suite: timings belong here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_traceparity.backends.base import BackendContext
from pytest_traceparity.backends.facade import DB
from pytest_traceparity.config import ReplicaSettings, sqld_config
from pytest_traceparity.registry import DEFAULT_REFERENCE, standalone_registry
from pytest_traceparity.services import HarnessServices

# Upper bounds on (backend seconds / reference seconds) per workload. Remote backends pay
# an HTTP round trip per statement, so autocommit inserts get the widest margin.
TARGETS: dict[str, dict[str, float]] = {
    "libsql-local": {"insert_txn": 3.0, "select_10k": 3.0, "insert_autocommit": 3.0},
    "sqld-http": {"insert_txn": 40.0, "select_10k": 20.0, "insert_autocommit": 40.0},
    "embedded-replica": {"insert_txn": 60.0, "select_10k": 5.0, "insert_autocommit": 60.0},
}


def insert_txn(db: DB) -> None:
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b REAL, c BLOB)")
    with db.transaction():
        for i in range(500):
            db.execute("INSERT INTO t(a, b, c) VALUES (?, ?, ?)", (f"row {i}", i / 3, bytes([i % 256]) * 16))


def insert_autocommit(db: DB) -> None:
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT)")
    for i in range(100):
        db.execute("INSERT INTO t(a) VALUES (?)", (f"row {i}",))


def select_10k(db: DB) -> None:
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT)")
    db.executescript(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000) "
        "INSERT INTO t(a) SELECT 'value ' || i FROM n;"
    )
    for _ in range(3):
        assert len(db.execute("SELECT id, a FROM t").rows) == 10000


WORKLOADS: dict[str, Callable[[DB], None]] = {
    "insert_txn": insert_txn,
    "insert_autocommit": insert_autocommit,
    "select_10k": select_10k,
}


def measure(backend_id: str, services: HarnessServices, root: Path, repeat: int) -> dict[str, float]:
    backend = standalone_registry().get(backend_id)
    timings: dict[str, float] = {}
    for name, workload in WORKLOADS.items():
        samples = []
        for n in range(repeat):
            ctx = BackendContext(root / f"{backend_id}-{name}-{n}", name=f"bench-{name}-{n}", services=services)
            with DB(backend, ctx) as db:
                start = time.perf_counter()
                workload(db)
                samples.append(time.perf_counter() - start)
        timings[name] = statistics.median(samples)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="all")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="exit 1 when a ratio misses its target")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    registry = standalone_registry()
    selected = registry.select(args.backends, DEFAULT_REFERENCE)
    root = Path(tempfile.mkdtemp(prefix="traceparity-bench-"))
    services = HarnessServices(sqld_config("stand-in"), ReplicaSettings(), root)
    try:
        reference = measure(DEFAULT_REFERENCE, services, root, args.repeat)
        results = {DEFAULT_REFERENCE: reference}
        for backend_id in selected:
            if backend_id != DEFAULT_REFERENCE:
                results[backend_id] = measure(backend_id, services, root, args.repeat)
    finally:
        services.close()
        shutil.rmtree(root, ignore_errors=True)
    missed = []
    print(f"{'backend':<20}" + "".join(f"{w:>22}" for w in WORKLOADS))
    for backend_id, timings in results.items():
        cells = []
        for name, seconds in timings.items():
            ratio = seconds / reference[name]
            target = TARGETS.get(backend_id, {}).get(name)
            flag = "" if target is None or ratio <= target else " MISS"
            if flag:
                missed.append(f"{backend_id}/{name}: {ratio:.1f}x > {target}x")
            cells.append(f"{seconds * 1000:9.1f}ms {ratio:5.1f}x{flag:5}")
        print(f"{backend_id:<20}" + "".join(f"{c:>22}" for c in cells))
    if args.json:
        args.json.write_text(json.dumps({"seconds": results, "targets": TARGETS, "missed": missed}, indent=2))
    for line in missed:
        print("target missed:", line, file=sys.stderr)
    return 1 if (missed and args.check) else 0


if __name__ == "__main__":
    raise SystemExit(main())
