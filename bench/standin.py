"""Stand-in throughput with the real ``libsql`` client over HTTP (Hrana), side by side with
Turso's own Python Hrana test server when a local copy of it is given.

Each workload is run in a client *process* (the libsql client holds the GIL while it
waits for a response, so threads would not overlap). Rates are statements per second.
Every round runs each workload on both servers back to back, the order alternating, so a
change in machine load hits both sides of a ratio alike; a figure is the median of the
per-round ratios, with their spread.

Turso's ``hrana-test-server`` (``server_v3.py``) is not published on PyPI or npm, and its
code is never part of this repository: pass a checkout with ``--hrana-test-server PATH``
(and ``--hrana-python`` for an interpreter with ``aiohttp`` and ``protobuf``), or set
``TRACEPARITY_HRANA_TEST_SERVER`` / ``TRACEPARITY_HRANA_PYTHON``. Without it the figures say
"not available" and only the stand-in's own rates are printed.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from pytest_traceparity.servers import launcher

from .common import Figure

WORKLOADS = ("autocommit inserts", "point selects", "200-statement transaction", "4 concurrent clients (inserts)")
TABLES = ("t", "t0", "t1", "t2", "t3")
TXN_STATEMENTS = 200


def _client(url: str, table: str, workload: str, n: int, out: Any, barrier: Any) -> None:
    import libsql

    conn = libsql.connect(url, auth_token="", isolation_level=None)
    barrier.wait(timeout=120)  # concurrent clients start together, not as each process is up
    start = time.perf_counter()
    if workload == "insert":
        for i in range(n):
            conn.execute(f"INSERT INTO {table}(a) VALUES (?)", (f"row {i}",))
    elif workload == "select":
        for i in range(n):
            conn.execute(f"SELECT a FROM {table} WHERE id = ?", (i % 100 + 1,)).fetchall()
    elif workload == "txn":  # n statements as transactions of TXN_STATEMENTS each
        for first in range(0, n, TXN_STATEMENTS):
            conn.execute("BEGIN")
            for i in range(first, min(n, first + TXN_STATEMENTS)):
                conn.execute(f"INSERT INTO {table}(a) VALUES (?)", (f"tx {i}",))
            conn.execute("COMMIT")
    out.put(time.perf_counter() - start)
    conn.close()


def _run(url: str, table: str, workload: str, n: int, clients: int = 1) -> float:
    """Statements per second over all clients (wall time of the slowest)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(clients)
    tables = [table] if clients == 1 else [f"{table}{k}" for k in range(clients)]
    procs = [ctx.Process(target=_client, args=(url, t, workload, n, queue, barrier)) for t in tables]
    for p in procs:
        p.start()
    times = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    return n * clients / max(times)


def _workload(name: str, url: str, n: int) -> float:
    if name == "autocommit inserts":
        return _run(url, "t", "insert", n)
    if name == "point selects":
        return _run(url, "t", "select", n)
    if name == "200-statement transaction":
        # several transactions per sample: one (~0.1 s) was too short to time steadily
        return _run(url, "t", "txn", max(TXN_STATEMENTS, 2 * n // TXN_STATEMENTS * TXN_STATEMENTS))
    return _run(url, "t", "insert", n // 2, clients=4)


def _seed(url: str) -> None:
    import libsql

    setup = libsql.connect(url, auth_token="", isolation_level=None)
    for name in TABLES:
        setup.execute(f"CREATE TABLE {name}(id INTEGER PRIMARY KEY, a TEXT)")
    for i in range(100):
        setup.execute("INSERT INTO t(a) VALUES (?)", (f"seed {i}",))
    setup.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def turso_location(checkout: str | None, python: str | None) -> tuple[Path, str] | str:
    """(checkout, interpreter) of Turso's hrana-test-server, or why it is not available."""
    checkout = checkout or os.environ.get("TRACEPARITY_HRANA_TEST_SERVER")
    python = python or os.environ.get("TRACEPARITY_HRANA_PYTHON") or sys.executable
    if not checkout:
        return (
            "not available: Turso's hrana-test-server is not on PyPI/npm; give a checkout with "
            "--hrana-test-server PATH (and --hrana-python PY with aiohttp + protobuf) to run it side by side"
        )
    path = Path(checkout).expanduser()
    if not (path / "server_v3.py").is_file():
        return f"not available: {path} has no server_v3.py (expected a hrana-test-server checkout)"
    return path, python


def _start_turso(checkout: Path, python: str, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = dict(os.environ, PERSISTENT_DB=str(work / "turso.db"), LOG_LEVEL="WARNING", ENCODING="json")
    log = open(work / "turso.log", "wb")  # noqa: SIM115 (closed with the process below)
    proc = subprocess.Popen(
        [python, str(Path(__file__).with_name("turso_hrana.py")), str(checkout), str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hrana-test-server exited ({proc.returncode}); see {work / 'turso.log'}")
        try:
            with urllib.request.urlopen(f"{url}/v3", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.1)
    launcher.terminate(proc)
    raise RuntimeError(f"hrana-test-server did not answer on {url} within 30 s; see {work / 'turso.log'}")


def measure(rounds: int, n: int, turso_checkout: str | None = None, turso_python: str | None = None) -> list[Figure]:
    # tmpfs when there is one: on this machine's disk an autocommit insert waits for fsync
    # (54-221 inserts/s, swinging with other work), which measures the disk, not the server
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    work = Path(tempfile.mkdtemp(prefix="traceparity-bench-standin-", dir=base))
    turso = turso_location(turso_checkout, turso_python)
    procs: list[subprocess.Popen[bytes]] = []
    samples: dict[tuple[str, str], list[float]] = {}
    try:
        proc, url = launcher.spawn_standin(work / "db", work / "standin.log")
        procs.append(proc)
        launcher.wait_healthy(url, 30)
        sides = {"stand-in": url}
        if not isinstance(turso, str):
            tproc, turl = _start_turso(*turso, work)
            procs.append(tproc)
            sides["turso"] = turl
        for side_url in sides.values():
            _seed(side_url)
        for round_no in range(rounds):
            for k, name in enumerate(WORKLOADS):
                order = list(sides) if (round_no + k) % 2 == 0 else list(sides)[::-1]
                for side in order:
                    samples.setdefault((side, name), []).append(_workload(name, sides[side], n))
    finally:
        for proc in procs:
            launcher.terminate(proc)
        shutil.rmtree(work, ignore_errors=True)
    figures = []
    for name in WORKLOADS:
        mine = samples[("stand-in", name)]
        fig = Figure(f"stand-in {name}", statistics.median(mine), "stmt/s", mine)
        figures.append(fig)
        if isinstance(turso, str):
            fig.target, fig.met = f">= 3x Turso's hrana-test-server ({turso})", None
            fig.detail = {"turso": turso}
            continue
        theirs = samples[("turso", name)]
        ratios = [a / b for a, b in zip(mine, theirs, strict=True)]
        fig.detail = {
            "turso_stmt_per_s": [round(x, 1) for x in theirs],
            "turso_median": round(statistics.median(theirs), 1),
        }
        ratio = Figure(
            f"stand-in / hrana-test-server, {name}",
            statistics.median(ratios),
            "x",
            ratios,
            ">= 3.0x",
            statistics.median(ratios) >= 3.0,
            {"turso_median_stmt_per_s": round(statistics.median(theirs), 1)},
        )
        figures.append(ratio)
    return figures
