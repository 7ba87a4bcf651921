"""Regenerate the recorded traces and the baseline database from the workloads.

    python scripts/build_trace_fixtures.py          # rewrite fixtures/traces/*.jsonl + fixtures/baseline.sqlite3
    python scripts/build_trace_fixtures.py --check  # re-record into a temp dir; fail unless byte-identical
    python scripts/build_trace_fixtures.py --replay-on libsql-local --out other.db
    traceparity diff fixtures/baseline.sqlite3 other.db   # the migration check: same schema and rows?

Each workload in ``fixtures/workloads/`` is a real program; it runs under
``traceparity record`` (the same launcher users run), in a fresh temporary directory,
so database paths in the trace are relative and nothing machine-specific is stored.
The workloads use fixed seeds and fake clocks, and the trace header carries no
timestamp, so re-recording reproduces the committed traces byte for byte.

``fixtures/baseline.sqlite3`` is the reference backend's database after replaying the
three traces (each program's file database, in one file; the tables do not overlap).
After regenerating, refresh the goldens with ``pytest fixtures/traces --update-golden``.
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_traceparity.cli_db import database_snapshot  # noqa: E402
from pytest_traceparity.registry import DEFAULT_REFERENCE, standalone_registry  # noqa: E402
from pytest_traceparity.trace.baseline import replay_into_one_database  # noqa: E402
from pytest_traceparity.trace.launcher import record  # noqa: E402

# (trace name, workload script, database argument)
WORKLOADS = (
    ("tracing", "fixtures/workloads/tracing.py", "tracing.db"),
    ("memory_graph", "fixtures/workloads/memory_graph.py", "memory.db"),
    ("migrations", "fixtures/workloads/migrations.py", "app.db"),
)


def record_all(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, script, database in WORKLOADS:
        with tempfile.TemporaryDirectory(prefix=f"traceparity-{name}-") as work:
            out = out_dir / f"{name}.jsonl"
            command = [sys.executable, str(ROOT / script), database]
            source = {"command": ["python", script, database], "workload": name}
            code, merged = record(command, out, cwd=Path(work), source=source)
            if code != 0:
                raise SystemExit(f"build_trace_fixtures: workload {script} exited with code {code}")
            if merged.incomplete:
                raise SystemExit(f"build_trace_fixtures: {script}: a process did not finish its trace part")
            print(
                f"recorded {out.relative_to(out_dir.parent.parent) if out.is_relative_to(ROOT) else out}: "
                f"{merged.events} events"
            )
            paths.append(out)
    return paths


def build_baseline(traces: list[Path], target: Path, backend_id: str = DEFAULT_REFERENCE) -> None:
    """Replay every trace on ``backend_id`` (the reference by default) into one database file."""
    replay_into_one_database(traces, standalone_registry().get(backend_id), target)


def check(traces_dir: Path, baseline: Path) -> int:
    problems = []
    with tempfile.TemporaryDirectory(prefix="traceparity-check-") as tmp:
        fresh_dir = Path(tmp) / "fixtures" / "traces"
        fresh = record_all(fresh_dir)
        for path in fresh:
            committed = traces_dir / path.name
            if not committed.exists():
                problems.append(f"{committed}: missing (run scripts/build_trace_fixtures.py)")
                continue
            if committed.read_bytes() != path.read_bytes():
                old = committed.read_text(encoding="utf-8").splitlines()
                new = path.read_text(encoding="utf-8").splitlines()
                first = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
                diff = "\n".join(
                    itertools.islice(difflib.unified_diff(old, new, "committed", "re-recorded", n=0, lineterm=""), 8)
                )
                problems.append(f"{committed}:{first + 1}: re-recording differs\n{diff}")
        fresh_baseline = Path(tmp) / "baseline.sqlite3"
        build_baseline(fresh, fresh_baseline)
        if not baseline.exists():
            problems.append(f"{baseline}: missing (run scripts/build_trace_fixtures.py)")
        else:
            want, got = database_snapshot(str(baseline)), database_snapshot(str(fresh_baseline))
            if want != got:
                problems.append(f"{baseline}: schema or content differs from a fresh build")
    for problem in problems:
        print(f"build_trace_fixtures --check: {problem}", file=sys.stderr)
    if not problems:
        print("build_trace_fixtures --check: committed traces and baseline are reproduced exactly")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify re-recording reproduces the committed files")
    parser.add_argument("--traces-dir", default=str(ROOT / "fixtures" / "traces"))
    parser.add_argument("--baseline", default=str(ROOT / "fixtures" / "baseline.sqlite3"))
    parser.add_argument(
        "--replay-on",
        metavar="BACKEND",
        help="only replay the committed traces on BACKEND into --out (then diff it with the baseline)",
    )
    parser.add_argument("--out", help="the database file --replay-on writes")
    args = parser.parse_args()
    traces_dir, baseline = Path(args.traces_dir), Path(args.baseline)
    if args.replay_on:
        if not args.out:
            parser.error("--replay-on needs --out PATH")
        build_baseline(sorted(traces_dir.glob("*.jsonl")), Path(args.out), args.replay_on)
        print(f"wrote {args.out}; compare it: traceparity diff {baseline} {args.out}")
        return 0
    if args.check:
        return check(traces_dir, baseline)
    with tempfile.TemporaryDirectory(prefix="traceparity-build-") as tmp:
        staged = record_all(Path(tmp) / "traces")
        traces_dir.mkdir(parents=True, exist_ok=True)
        final = []
        for path in staged:
            target = traces_dir / path.name
            shutil.copyfile(path, target.with_name(f".{target.name}.tmp"))
            os.replace(target.with_name(f".{target.name}.tmp"), target)
            final.append(target)
    build_baseline(final, baseline)
    print(f"wrote {baseline}; now refresh the goldens: pytest fixtures/traces --update-golden")
    return 0


if __name__ == "__main__":
    sys.exit(main())
