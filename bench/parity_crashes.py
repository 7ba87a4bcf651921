"""Run the parity job under ``-n 2`` N times and count stand-in crashes (issue 9).

A crash is a run in which the harness found its server dead: it copies that server's log
to ``TRACEPARITY_LOG_DIR`` (one file per dead server) and the output says "stopped
answering". Prints one line per run and a summary; exits 1 if any run crashed.

    python bench/parity_crashes.py --runs 10
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOB = ["conformance", "fixtures/traces", "--backends=all", "--sqld=stand-in", "-q", "-n", "2", "-p", "no:cacheprovider"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent), help="project checkout")
    args = parser.parse_args(argv)
    crashed_runs = 0
    failed_runs = 0
    with tempfile.TemporaryDirectory(prefix="parity-crashes-") as scratch:
        for run in range(1, args.runs + 1):
            log_dir = Path(scratch) / f"run{run}"
            env = {**os.environ, "TRACEPARITY_LOG_DIR": str(log_dir)}
            started = time.monotonic()
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", *JOB],
                cwd=args.root,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            elapsed = time.monotonic() - started
            out = proc.stdout + proc.stderr
            crashes = len(list(log_dir.glob("*.log"))) if log_dir.is_dir() else 0
            if crashes == 0 and "stopped answering" in out:
                crashes = 1
            crashed_runs += crashes > 0
            failed_runs += proc.returncode != 0
            summary = out.strip().splitlines()[-1] if out.strip() else "(no output)"
            print(f"run {run}: exit {proc.returncode}, crashes {crashes}, {elapsed:.0f} s: {summary}", flush=True)
            if crashes:
                for kept in sorted(log_dir.glob("*.log")):
                    print(f"  kept log {kept}:\n" + kept.read_text(errors="replace")[-1500:])
    print(f"{args.runs} runs: {crashed_runs} with a crashed server, {failed_runs} with a non-zero exit")
    return 1 if crashed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
