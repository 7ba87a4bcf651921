"""Replay overhead and replay memory.

Overhead: a generated trace (default 20k steps: autocommit inserts, transactions, point
selects and range reads on two connections) replayed with ``verify_trace`` against its
golden, vs the same statements sent straight through the backend's raw client (decoded
up front, so the raw side pays nothing for reading). The two sides alternate.

Memory: :func:`peak_rss` makes a trace of STEPS steps and its golden here, then replays it
in a fresh process (``python -m bench.replay --rss-replay TRACE GOLDEN``) that prints its
peak RSS (``ru_maxrss``), so 10k and 100k compare like for like.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_traceparity.backends.base import BackendContext
from pytest_traceparity.divergences import DivergenceRegistry, builtin_entries
from pytest_traceparity.golden.verify import update_golden, verify_trace
from pytest_traceparity.registry import DEFAULT_REFERENCE, standalone_registry
from pytest_traceparity.trace.format import Event, TraceReader, TraceWriter, encode_event_params


def generate_trace(path: Path, steps: int) -> None:
    """Write a ``steps``-step trace of ordinary application traffic on one database."""
    writer = TraceWriter(path)
    w = writer.write_event
    w("open", 1, db="db1", target="app.db", driver="sqlite3")
    w("open", 2, db="db1", target="app.db", driver="sqlite3")
    w(
        "execute",
        1,
        sql="CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER, price REAL, tag BLOB)",
        params=[],
    )
    w("execute", 1, sql="CREATE INDEX item_name ON item(name)", params=[])

    def p(*values: Any) -> Any:
        return encode_event_params("execute", values)

    i = 0
    while writer.count < steps - 2:
        i += 1
        kind = i % 5
        if kind == 0:
            w("begin", 1, mode="DEFERRED", flush=False)
            for j in range(3):
                w(
                    "execute",
                    1,
                    sql="INSERT INTO item (name, qty, price, tag) VALUES (?, ?, ?, ?)",
                    params=p(f"batch{i}-{j}", j, i / 7, bytes([i % 256, j])),
                    flush=False,
                )
            w("commit", 1, flush=False)
        elif kind == 1:
            w(
                "execute",
                1,
                sql="INSERT INTO item (name, qty, price, tag) VALUES (?, ?, ?, ?)",
                params=p(f"item{i}", i % 13, i * 0.25, None),
                flush=False,
            )
        elif kind == 2:
            w("execute", 2, sql="SELECT id, name, qty, price FROM item WHERE id = ?", params=p(i // 2 + 1), flush=False)
        elif kind == 3:
            w("execute", 1, sql="UPDATE item SET qty = qty + 1 WHERE id = ?", params=p(i // 3 + 1), flush=False)
        else:
            w("execute", 2, sql="SELECT name, qty FROM item WHERE id > ? ORDER BY id LIMIT 5", params=p(i), flush=False)
    w("close", 2)
    w("close", 1)
    writer.close()


class Workspace:
    """A trace, its golden (from the reference backend) and fresh database contexts."""

    def __init__(self, steps: int) -> None:
        # tmpfs when there is one: on disk every autocommit statement waits for fsync, which would
        # hide the per-step CPU cost this figure is about (the ratio would look better than it is)
        shm = Path("/dev/shm")
        base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
        self.root = Path(tempfile.mkdtemp(prefix="traceparity-bench-replay-", dir=base))
        self.trace = self.root / "traces" / "generated.jsonl"
        self.trace.parent.mkdir()
        self.golden = self.root / "golden" / "generated.golden.jsonl"
        generate_trace(self.trace, steps)
        self.counter = itertools.count()
        self.registry = standalone_registry()
        update_golden(self.trace, self.registry.get(DEFAULT_REFERENCE), self.make, golden=self.golden)
        self.rules = DivergenceRegistry(builtin_entries())
        self.events: list[Event] = list(TraceReader(self.trace))

    def make(self, name: str) -> BackendContext:
        workdir = self.root / f"ctx-{next(self.counter)}"
        workdir.mkdir()
        return BackendContext(workdir=workdir, name="db")

    def replay(self, backend_id: str) -> Callable[[], object]:
        backend = self.registry.get(backend_id)

        def run() -> object:
            report = verify_trace(self.trace, backend, self.make, self.rules, golden=self.golden)
            if report.status == "failed":
                raise SystemExit(f"bench trace failed on {backend_id}:\n{report.failure_message()}")
            return report

        return run

    def raw(self, backend_id: str) -> Callable[[], object]:
        return {"libsql-local": self._raw_libsql, "sqlalchemy-sqlite": self._raw_sqlalchemy}[backend_id]

    def _raw_libsql(self) -> None:
        import libsql

        path = self.make("raw").workdir / "raw.db"
        conns: dict[int, Any] = {}
        for e in self.events:
            if e.op == "open":
                conns[e.conn] = libsql.connect(str(path), isolation_level=None)
            elif e.op == "execute":
                conns[e.conn].execute(e.sql, e.params).fetchall()
            elif e.op == "begin":
                conns[e.conn].execute(f"BEGIN {e.mode}")
            elif e.op == "commit":
                conns[e.conn].execute("COMMIT")
            elif e.op == "close":
                conns.pop(e.conn).close()

    def _raw_sqlalchemy(self) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import NullPool

        path = self.make("raw").workdir / "raw.db"

        async def main() -> None:
            engine = create_async_engine(f"sqlite+aiosqlite:///{path}", poolclass=NullPool)
            conns: dict[int, Any] = {}
            for e in self.events:
                if e.op == "open":
                    conn = await engine.connect()
                    conns[e.conn] = await conn.execution_options(isolation_level="AUTOCOMMIT")
                elif e.op in ("execute", "begin", "commit"):
                    sql = e.sql if e.op == "execute" else f"BEGIN {e.mode}" if e.op == "begin" else "COMMIT"
                    result = await conns[e.conn].exec_driver_sql(sql, tuple(e.params))
                    if result.returns_rows:
                        result.fetchall()
                elif e.op == "close":
                    await conns.pop(e.conn).close()
            await engine.dispose()

        asyncio.run(main())

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def peak_rss(steps: int, backend_id: str = "libsql-local") -> dict[str, Any]:
    """Peak RSS of a fresh process that only replays a ``steps``-step trace (made here first)."""
    import subprocess

    ws = Workspace(steps)
    try:
        cmd = [
            sys.executable,
            "-m",
            "bench.replay",
            "--rss-replay",
            str(ws.trace),
            str(ws.golden),
            "--backend",
            backend_id,
            "--root",
            str(ws.root),
        ]
        out = subprocess.run(
            cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent
        )
    finally:
        ws.close()
    return {"steps": steps, **json.loads(out.stdout.strip().splitlines()[-1])}


def _rss_child(trace: Path, golden: Path, backend_id: str, root: Path) -> None:
    counter = itertools.count()

    def make(name: str) -> BackendContext:
        workdir = root / f"rss-{next(counter)}"
        workdir.mkdir()
        return BackendContext(workdir=workdir, name="db")

    before = _peak_kib()
    report = verify_trace(
        trace, standalone_registry().get(backend_id), make, DivergenceRegistry(builtin_entries()), golden=golden
    )
    after = _peak_kib()
    print(json.dumps({"peak_rss_kib": after, "rss_before_replay_kib": before, "status": report.status}))


def _peak_kib() -> int:
    """This process's peak RSS: VmHWM (ru_maxrss keeps the parent's peak across fork + exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rss-replay", nargs=2, type=Path, required=True, metavar=("TRACE", "GOLDEN"))
    parser.add_argument("--backend", default="libsql-local")
    parser.add_argument("--root", type=Path, required=True)
    args = parser.parse_args()
    _rss_child(args.rss_replay[0], args.rss_replay[1], args.backend, args.root)
