"""``python -m bench [--quick] [--json PATH]``: every figure of issue 15 in one table.

``--quick`` (under 2 minutes) skips the parity-job speed-up, the minimization and the many-databases figures
and uses fewer repetitions. Figures are goals, never assertions: the exit code is 0
unless ``--check`` is given and a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from .common import Figure, interleaved, machine, ratio_figure

ROOT = Path(__file__).resolve().parent.parent


def replay_figures(steps: int, rounds_libsql: int, rounds_sa: int) -> list[Figure]:
    from .replay import Workspace

    ws = Workspace(steps)
    try:
        libsql_sides = {"raw": ws.raw("libsql-local"), "replay": ws.replay("libsql-local")}
        lib = interleaved(libsql_sides, rounds_libsql, warmup=True)
        sa = interleaved({"raw": ws.raw("sqlalchemy-sqlite"), "replay": ws.replay("sqlalchemy-sqlite")}, rounds_sa)
    finally:
        ws.close()
    return [
        ratio_figure(f"libsql-local replay overhead ({steps} steps)", lib["replay"], lib["raw"], 2.0),
        ratio_figure(f"sqlalchemy-sqlite replay overhead ({steps} steps)", sa["replay"], sa["raw"], 1.2),
    ]


def rss_figures(small: int, large: int, rounds: int) -> list[Figure]:
    from .replay import peak_rss

    pairs = []
    for _ in range(rounds):
        pairs.append((peak_rss(small)["peak_rss_kib"], peak_rss(large)["peak_rss_kib"]))
    small_mb = [a / 1024 for a, _ in pairs]
    large_mb = [b / 1024 for _, b in pairs]
    fig = ratio_figure(
        f"replay peak RSS {large // 1000}k / {small // 1000}k steps", [b for _, b in pairs], [a for a, _ in pairs]
    )
    fig.target, fig.met = "<= 1.10x", fig.value <= 1.10
    fig.detail = {
        f"rss_mb_{small}": [round(x, 1) for x in small_mb],
        f"rss_mb_{large}": [round(x, 1) for x in large_mb],
    }
    return [fig]


def parity_figure(rounds: int) -> list[Figure]:
    """The Quick start parity job, -n 2 vs -n 0, alternated.

    Besides wall time, each run's CPU (user+sys of the job and every process it started:
    workers, the stand-in, tursodb) and the load average are kept, so a figure taken on a busy
    machine can be told apart from a quiet one; and both modes must end with the same
    counts (same passed/xfailed/failed), or the speed-up is not of the same job.
    """
    base = [
        sys.executable,
        "-m",
        "pytest",
        "conformance",
        "fixtures/traces",
        "--backends=all",
        "--sqld=stand-in",
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    runs: dict[str, list[dict[str, object]]] = {"n0": [], "n2": []}
    # Bytecode caching on, as Python's default: with PYTHONDONTWRITEBYTECODE=1 (set in some sandboxes) every
    # pytest process compiles the plugin and assertion-rewrites its modules again, and -n 2 runs three of them.
    # One collection first writes the caches, so neither side pays for them.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([*base, "--collect-only"], cwd=ROOT, env=env, capture_output=True, check=False)

    def job(workers: str) -> object:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load = os.getloadavg()[0]
        done = subprocess.run([*base, "-n", workers], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        counts = _counts(done.stdout)
        runs[f"n{workers}"].append({"cpu_s": round(cpu, 2), "load_1min": round(load, 2), "counts": counts})
        return done

    times = interleaved({"n0": lambda: job("0"), "n2": lambda: job("2")}, rounds)
    fig = ratio_figure("parity job -n 2 speed-up", times["n0"], times["n2"])
    fig.target, fig.met = ">= 1.7x", fig.value >= 1.7
    counts = {str(run["counts"]) for side in runs.values() for run in side}
    fig.detail.update(
        {
            "wall_s": {side: [round(t, 2) for t in times[side]] for side in times},
            "cpu_s": {side: [run["cpu_s"] for run in side_runs] for side, side_runs in runs.items()},
            "load_1min_at_start": {side: [run["load_1min"] for run in side_runs] for side, side_runs in runs.items()},
            "counts": sorted(counts),
            "bytecode_cache": True,
        }
    )
    if len(counts) != 1:
        fig.met = False
        fig.name += " (COUNTS DIFFER between -n 0 and -n 2: not the same job)"
    return [fig]


def _counts(stdout: str) -> str:
    """``421 passed, 2436 xfailed`` from pytest's last line (without the time)."""
    for line in reversed(stdout.splitlines()):
        words = re.findall(r"(\d+) (passed|failed|xfailed|xpassed|skipped|errors?)", line)
        if words:
            return ", ".join(f"{n} {what}" for n, what in words)
    return "no summary line"


def minimize_figure() -> list[Figure]:
    out = ROOT / ".bench-minimize.json"
    subprocess.run(
        [sys.executable, "bench/bench_minimize.py", "--json", str(out)], cwd=ROOT, check=True, capture_output=True
    )
    data = json.loads(out.read_text())
    out.unlink()
    fig = Figure(
        "minimize 10k-event trace: events kept",
        data["kept"],
        "events",
        [data["kept"]],
        "<= 10 in < 60 s",
        data["kept"] <= 10 and data["seconds"] < 60,
        data,
    )
    return [fig]


def many_databases_figure(dbs: int = 2000) -> list[Figure]:
    """Peak RSS of a ``traceparity replay`` process (libsql-local) on a trace of ``dbs`` databases x 30
    statements, half the connections never closed (``bench_replay_memory.py``)."""
    import tempfile

    from .bench_replay_memory import replay, write_trace

    with tempfile.TemporaryDirectory(prefix="traceparity-bench-many-") as tmp:
        trace = Path(tmp) / "traces" / "many.jsonl"
        trace.parent.mkdir()
        events = write_trace(trace, dbs)
        golden_code, _, golden_s = replay(trace, "sqlalchemy-sqlite", ["--update-golden"])
        code, rss, secs = replay(trace, "libsql-local", [])
    fig = Figure(
        f"replay peak RSS, {dbs:,} databases x 30 statements (libsql-local)",
        round(rss, 1),
        "MiB",
        [round(rss, 1)],
        "< 150 MiB",
        rss < 150 and code in (0, 1) and golden_code == 0,
        {"events": events, "replay_s": round(secs, 1), "golden_s": round(golden_s, 1), "exit": code},
    )
    return [fig]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions, no parity/minimize/many-databases (< 2 min)"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench-results.json")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--only", default="replay,standin,rss,parity,minimize,many")
    parser.add_argument(
        "--hrana-test-server",
        metavar="PATH",
        help="a checkout of Turso's hrana-test-server to run side by side with the stand-in "
        "(env TRACEPARITY_HRANA_TEST_SERVER); not on PyPI/npm, never part of this repository",
    )
    parser.add_argument(
        "--hrana-python",
        metavar="PY",
        help="the Python that runs it, with aiohttp and protobuf (env TRACEPARITY_HRANA_PYTHON)",
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    started = time.perf_counter()
    info = machine()
    figures: list[Figure] = []
    if "replay" in only:
        figures += replay_figures(20_000, 3 if args.quick else 5, 2 if args.quick else 3)
    if "standin" in only:
        from .standin import measure

        figures += measure(
            3 if args.quick else 5, 200 if args.quick else 500, args.hrana_test_server, args.hrana_python
        )
    if "rss" in only:
        figures += rss_figures(10_000, 100_000, 1 if args.quick else 2)
    if not args.quick and "parity" in only:
        figures += parity_figure(2)
    if not args.quick and "minimize" in only:
        figures += minimize_figure()
    if not args.quick and "many" in only:
        figures += many_databases_figure()
    info["load_avg_end"] = machine()["load_avg"]
    info["seconds"] = round(time.perf_counter() - started, 1)
    print(
        f"# {info['date']}, {info['processor']} x{info['cpus']}, Python {info['python']}, "
        f"load {info['load_avg']} -> {info['load_avg_end']}, {info['seconds']} s"
        f"{' (--quick)' if args.quick else ''}"
    )
    for fig in figures:
        print(fig.line())
    args.json.write_text(
        json.dumps({"machine": info, "quick": args.quick, "figures": [f.to_json() for f in figures]}, indent=2) + "\n"
    )
    print(f"# figures written to {args.json}")
    missed = [f.name for f in figures if f.met is False]
    return 1 if (missed and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
