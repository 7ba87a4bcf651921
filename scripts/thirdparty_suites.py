"""Record real third-party test suites from PyPI and replay them on every backend.

    python scripts/thirdparty_suites.py sqlitedict dataset          # fetch, record, replay, summarise
    python scripts/thirdparty_suites.py --list                      # the configured suites
    python scripts/thirdparty_suites.py sqlitedict --skip-record    # replay an existing trace again
    python scripts/thirdparty_suites.py --only-summary              # rebuild SUMMARY.md/.json from results

Why: the harness must hold on programs we did not write. For each suite the script
downloads the sdist *by name* from PyPI (``pip download --no-binary :all: --no-deps``)
into a work directory outside the repository (default ``/work/thirdparty``), installs
it with its test dependencies into a throwaway venv, runs its tests under
``traceparity record``, makes a golden on the reference backend and replays the trace
on each backend through the ``traceparity`` CLI (a subprocess each, with a timeout,
so a crash or a hang is reported, not fatal). Nothing third-party enters the repo.

Outputs in the work directory: ``<suite>.jsonl`` (trace), ``golden/<suite>.golden.jsonl``,
``results/<suite>.json`` (everything measured) and ``SUMMARY.md`` / ``SUMMARY.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from thirdparty_summary import (  # noqa: E402
    REFERENCE,
    harness_errors,
    markdown,
    parse_report,
    summarise,
    trace_index,
)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
BACKENDS = ("sqlalchemy-sqlite", "libsql-local", "sqld-http", "embedded-replica")
# The recorder puts this checkout on the child's sys.path, so pytest finds our plugin's entry point
# and, in a venv without SQLAlchemy, aborts the recorded suite (exit 4): keep it out of the recorded run.
PLUGIN_OFF = ("-p", "no:traceparity")


@dataclass(frozen=True)
class Suite:
    """A PyPI project whose sdist ships a test suite that talks to SQLite."""

    name: str
    version: str
    tests: tuple[str, ...]  # pytest arguments (paths / node ids), relative to the sdist root
    deps: tuple[str, ...] = ("pytest",)  # test dependencies installed next to the package
    extras: str = ""  # e.g. "[test]"
    pytest_args: tuple[str, ...] = ()
    note: str = ""
    env: tuple[tuple[str, str], ...] = ()  # extra environment for install and test runs
    package: str = ""  # PyPI name when it differs from the suite name

    @property
    def dist(self) -> str:
        return self.package or self.name


SUITES = {
    s.name: s
    for s in (
        Suite(
            "sqlitedict",
            "2.1.0",
            ("tests",),
            note="sqlite3 directly; key/value store with autocommit, threads, several tables per file",
        ),
        Suite(
            "dataset", "2.0.0", ("test",), deps=("pytest",), note="SQLAlchemy 2 on sqlite (in-memory database per test)"
        ),
        Suite(
            "sqlite-utils",
            "4.2.1",
            (
                "tests/test_create.py",
                "tests/test_transform.py",
                "tests/test_fts.py",
                "tests/test_upsert.py",
                "tests/test_foreign_keys.py",
                "tests/test_query.py",
                "tests/test_get.py",
                "tests/test_delete.py",
                "tests/test_update.py",
                "tests/test_introspect.py",
                "tests/test_m2m.py",
                "tests/test_lookup.py",
                "tests/test_extract.py",
                "tests/test_default_value.py",
                "tests/test_column_affinity.py",
                "tests/test_atomic.py",
                "tests/test_conversions.py",
                "tests/test_rows.py",
            ),
            deps=("pytest", "hypothesis", "cogapp"),
            extras="",
            note="sqlite3 directly; schema-heavy (transform, FTS4/5, foreign keys, upserts); a subset of modules",
        ),
        Suite(
            "sqlite-utils-full",
            "4.2.1",
            ("tests",),
            deps=("pytest", "hypothesis", "cogapp"),
            package="sqlite-utils",
            note="sqlite3 directly; the whole sqlite-utils suite (CLI included)",
        ),
        Suite(
            "sqlalchemy",
            "2.0.44",
            (
                "test/dialect/test_suite.py",
                "test/sql/test_types.py",
                "test/sql/test_insert_exec.py",
                "test/sql/test_returning.py",
                "test/sql/test_resultset.py",
            ),
            deps=("pytest>=7", "typing_extensions"),
            env=(("DISABLE_SQLALCHEMY_CEXT", "1"),),
            note="SQLAlchemy's own dialect compliance suite and SQL/type tests on its default sqlite:///:memory: "
            "(pure-Python build)",
        ),
        Suite(
            "alembic",
            "1.20.1",
            (
                "tests/test_batch.py",
                "tests/test_sqlite.py",
                "tests/test_version_table.py",
                "tests/test_bulk_insert.py",
                "tests/test_autogen_diffs.py",
                "tests/test_autogen_indexes.py",
                "tests/test_script_consumption.py",
                "tests/test_version_traversal.py",
            ),
            deps=("pytest>8,<10", "tzdata"),
            note="SQLAlchemy 2 (sqlite:///:memory: and files) through SQLAlchemy's own testing plugin; migrations, "
            "batch table rebuilds, reflection; a subset of modules",
        ),
    )
}


def run(
    cmd: list[str], *, cwd: Path | None = None, timeout: float, env: dict[str, str] | None = None
) -> tuple[int | str, str, str, float, int | None]:
    """Run ``cmd`` under /usr/bin/time (peak RSS); returns (code or 'timeout', stdout, stderr, seconds, KB)."""
    timer = shutil.which("time") and Path("/usr/bin/time").exists()
    rss_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"tp-rss-{os.getpid()}"
    full = (["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *cmd]) if timer else cmd
    start = time.monotonic()
    try:
        proc = subprocess.run(
            full,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            errors="replace",
            start_new_session=True,
        )
        code: int | str = proc.returncode
        out, err = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code = "timeout"
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    seconds = time.monotonic() - start
    rss = None
    if timer and rss_file.exists():
        text = rss_file.read_text().strip().splitlines()
        rss = int(text[-1]) if text and text[-1].isdigit() else None
        rss_file.unlink()
    return code, out, err, seconds, rss


# -- fetch / install / record -------------------------------------------------------------
def fetch(suite: Suite, src: Path, work: Path) -> Path:
    """Download the sdist by name and unpack a fresh copy (so every recording starts clean)."""
    src.mkdir(parents=True, exist_ok=True)
    stem = f"{suite.dist}-{suite.version}"
    archives = [p for p in src.glob("*.tar.gz") if p.name.lower().replace("_", "-") == f"{stem}.tar.gz".lower()]
    if not archives:
        code, _out, err, _, _ = run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-binary",
                ":all:",
                "--no-deps",
                "-d",
                str(src),
                f"{suite.dist}=={suite.version}",
            ],
            timeout=600,
        )
        if code != 0:
            raise SystemExit(f"pip download {suite.dist}=={suite.version} failed ({code}): {err.strip()[-500:]}")
        archives = [p for p in src.glob("*.tar.gz") if p.name.lower().replace("_", "-") == f"{stem}.tar.gz".lower()]
    target = work / "work"
    with tarfile.open(archives[0]) as tar:
        top = tar.getnames()[0].split("/")[0]
        shutil.rmtree(target / top, ignore_errors=True)
        target.mkdir(parents=True, exist_ok=True)
        tar.extractall(target, filter="data")
    return target / top


def install(suite: Suite, tree: Path, work: Path) -> Path:
    """A throwaway venv with the package (from the unpacked sdist) and its test dependencies."""
    venv = work / "venvs" / suite.name
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    code, _, err, _, _ = run(
        [str(python), "-m", "pip", "install", "-q", f"{tree}{suite.extras}", *suite.deps],
        timeout=900,
        env={**os.environ, **dict(suite.env)},
    )
    if code != 0:
        raise SystemExit(f"installing {suite.name} into {venv} failed ({code}): {err.strip()[-800:]}")
    return python


def _outcome(out: str) -> str:
    lines = out.strip().splitlines()
    return next(
        (x.strip() for x in reversed(lines) if re.search(r"\b(passed|failed|error)", x)), lines[-1] if lines else ""
    )


def _pytest_cmd(suite: Suite, python: Path) -> list[str]:
    return [
        str(python),
        "-m",
        "pytest",
        *suite.tests,
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        *PLUGIN_OFF,
        *suite.pytest_args,
    ]


def _env(suite: Suite) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | dict(suite.env)


def plain_run(suite: Suite, tree: Path, python: Path, timeout: float) -> dict[str, Any]:
    """The suite without recording, for comparison (the caller unpacks a fresh tree afterwards: files the
    tests leave behind, e.g. sqlitedict's tests/db/*.sqlite, would otherwise exist before the recording)."""
    cmd = _pytest_cmd(suite, python)
    code, out, _err, seconds, _ = run(cmd, cwd=tree, timeout=timeout, env=_env(suite))
    return {"command": " ".join(cmd), "exit": code, "seconds": round(seconds, 1), "outcome": _outcome(out)}


def record(suite: Suite, tree: Path, python: Path, trace: Path, timeout: float) -> dict[str, Any]:
    """Run the suite under ``traceparity record`` in a freshly unpacked tree."""
    cmd = [
        str(Path(sys.executable).parent / "traceparity"),
        "record",
        "-o",
        str(trace),
        "--cwd",
        str(tree),
        "--",
        *_pytest_cmd(suite, python),
    ]
    code, out, err, seconds, rss = run(cmd, timeout=timeout, env=_env(suite))
    return {
        "command": " ".join(cmd),
        "exit": code,
        "seconds": round(seconds, 1),
        "peak_rss_kb": rss,
        "pytest_outcome": _outcome(out),
        "stderr_tail": err.strip()[-1500:],
    }


def detail_replay(argv: list[str]) -> int:
    """``traceparity replay ... --json`` in this process, with each differing step's aspects added.

    Today's ``--json`` lists differences only for unknown steps; to count known ones by aspect
    too, the report's ``to_json`` is extended here (same command, same messages and exit code).
    If the project's internals moved, this falls back to the plain CLI output.
    """
    from pytest_traceparity import cli_trace

    try:
        from pytest_traceparity.golden.verify import ReplayReport

        plain = ReplayReport.to_json

        from pytest_traceparity.divergences import load_registry

        registry = load_registry(Path.cwd())

        def covered(report: Any, seq: Any, aspect: str) -> str | None:
            """The registry reason that explains this one difference (a diverged step can mix both)."""
            entries = registry.matching(report.backend, f"trace::{report.name}#{seq}")
            return next((e.reason for e in entries if e.covers(aspect)), None)

        def to_json(self: Any) -> dict[str, Any]:
            data = plain(self)
            data["steps_detail"] = [
                {
                    "seq": st.seq,
                    "status": st.status,
                    "sql": st.sql,
                    "params": st.params,
                    "expected": st.expected,
                    "actual": st.actual,
                    "reasons": list(st.reasons),
                    "differences": [
                        {"aspect": d.aspect, "message": d.message, "covered_by": covered(self, st.seq, d.aspect)}
                        for d in st.differences
                    ],
                }
                for st in [*self.failures, *self.known]
            ]
            return data

        ReplayReport.to_json = to_json  # type: ignore[method-assign]
    except (ImportError, AttributeError):
        pass
    return cli_trace.replay_main(argv)


def scratch_cwd(work: Path, label: str) -> Path:
    """A fresh, empty working directory for one replay.

    A trace's ``ATTACH DATABASE 'relative.db'`` runs verbatim today (issue 10, D5) and creates the
    file in the replay's cwd; running in the repository would litter it. Whatever appears here is
    reported as written outside the replay's workdir.
    """
    cwd = work / "replay-cwd" / label
    shutil.rmtree(cwd, ignore_errors=True)
    cwd.mkdir(parents=True)
    return cwd


def stray_files(cwd: Path) -> list[str]:
    return sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*") if p.is_file())


def replay(
    trace: Path, golden: Path, backend: str, steps: dict[int, dict[str, Any]], timeout: float, sqld: str, cwd: Path
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--detail-replay",
        str(trace),
        "--golden",
        str(golden),
        "--json",
        "--backend",
        backend,
    ]
    if backend in ("sqld-http", "embedded-replica"):
        cmd += ["--sqld", sqld]
    code, out, err, seconds, rss = run(cmd, cwd=cwd, timeout=timeout)
    report, noise = parse_report(out)
    result: dict[str, Any] = {
        "command": " ".join(cmd),
        "exit": code,
        "seconds": round(seconds, 1),
        "peak_rss_kb": rss,
        "harness_errors": harness_errors(code, out, err, noise),
        "stderr_tail": _ANSI.sub("", err).strip()[-2000:],
        "stdout_noise": noise[:20],
        "files_written_in_cwd": stray_files(cwd),
    }
    if result["files_written_in_cwd"]:
        result["harness_errors"].append(
            f"replay wrote {len(result['files_written_in_cwd'])} file(s) in its cwd "
            f"(outside its workdir): {', '.join(result['files_written_in_cwd'][:5])}"
        )
    if report is None:
        result["harness_errors"].append("no JSON report: " + (_ANSI.sub("", err).strip()[-600:] or out[-600:]))
        return result
    result.update(summarise(report, steps))
    return result


def make_golden(trace: Path, golden: Path, timeout: float, cwd: Path) -> dict[str, Any]:
    golden.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(Path(sys.executable).parent / "traceparity"),
        "replay",
        str(trace),
        "--golden",
        str(golden),
        "--update-golden",
        "--backend",
        REFERENCE,
    ]
    code, out, err, seconds, rss = run(cmd, cwd=cwd, timeout=timeout)
    return {
        "files_written_in_cwd": stray_files(cwd),
        "command": " ".join(cmd),
        "exit": code,
        "seconds": round(seconds, 1),
        "peak_rss_kb": rss,
        "output": out.strip()[-300:],
        "harness_errors": harness_errors(code, out, err, [])
        + ([_ANSI.sub("", err).strip()[-600:]] if code != 0 and err.strip() else []),
    }


# -- summary ------------------------------------------------------------------------------
def replay_everywhere(name: str, trace: Path, result: dict[str, Any], work: Path, args: argparse.Namespace) -> None:
    """Golden on the reference, then one replay per backend; results saved after each step."""
    out = work / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not trace.exists():
        print(f"[{name}] no trace written; see {out}", flush=True)
        out.write_text(json.dumps(result, indent=2, default=str))
        return
    golden = work / "golden" / f"{name}.golden.jsonl"
    result["trace_stats"], steps = trace_index(trace)
    result["golden"] = make_golden(trace, golden, args.replay_timeout, scratch_cwd(work, f"{name}-golden"))
    print(f"[{name}] golden: exit {result['golden']['exit']} {result['golden']['output'][-120:]}", flush=True)
    previous = json.loads(out.read_text()).get("replays", {}) if out.exists() and args.skip_record else {}
    result["replays"] = previous  # replays of backends not selected this time are kept (with --skip-record)
    if result["golden"]["exit"] != 0:
        print(f"[{name}] no golden, so no replay can be compared; see {out}", flush=True)
        out.write_text(json.dumps(result, indent=2, default=str))
        return
    for backend in args.backends.split(","):
        b = replay(
            trace, golden, backend, steps, args.replay_timeout, args.sqld, scratch_cwd(work, f"{name}-{backend}")
        )
        result["replays"][backend] = b
        print(
            f"[{name}] {backend}: {b.get('status', 'ABORTED')} differing={b.get('differing_steps')} "
            f"unknown={b.get('unknown_steps')} errors={b['harness_errors'][:2]} ({b['seconds']} s)",
            flush=True,
        )
        out.write_text(json.dumps(result, indent=2, default=str))


def write_summary(work: Path) -> None:
    results = [json.loads(p.read_text()) for p in sorted((work / "results").glob("*.json"))]
    (work / "SUMMARY.json").write_text(json.dumps(results, indent=2, default=str))
    (work / "SUMMARY.md").write_text(markdown(results))
    print(f"summary: {work / 'SUMMARY.md'}")


def replay_program(program: Path, work: Path, args: argparse.Namespace) -> None:
    """A small reproduction program: record ``python PROGRAM`` in a fresh directory, replay it everywhere."""
    name = program.stem
    run_dir = work / "run" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    trace = work / f"{name}.jsonl"
    cmd = [
        str(Path(sys.executable).parent / "traceparity"),
        "record",
        "-o",
        str(trace),
        "--cwd",
        str(run_dir),
        "--",
        sys.executable,
        str(program.resolve()),
    ]
    code, out, err, seconds, _ = run(cmd, timeout=args.record_timeout)
    result: dict[str, Any] = {
        "suite": name,
        "version": "-",
        "note": program.read_text().split("\n\n")[0].strip(),
        "trace": str(trace),
        "record": {
            "command": " ".join(cmd),
            "exit": code,
            "seconds": round(seconds, 1),
            "pytest_outcome": (out + err).strip()[-300:],
        },
    }
    replay_everywhere(name, trace, result, work, args)
    write_summary(work)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--detail-replay"]:
        return detail_replay(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("suites", nargs="*", help="suite names (see --list); default: all")
    parser.add_argument("--list", action="store_true", help="list the configured suites and exit")
    parser.add_argument("--work", type=Path, default=Path("/work/thirdparty"), help="work dir (outside the repo)")
    parser.add_argument("--src", type=Path, default=None, help="sdist download dir (default WORK/src)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated backend ids")
    parser.add_argument("--sqld", default="stand-in", help="sqld strategy for server backends (default stand-in)")
    parser.add_argument("--record-timeout", type=float, default=900)
    parser.add_argument("--replay-timeout", type=float, default=1200)
    parser.add_argument("--skip-record", action="store_true", help="reuse WORK/<suite>.jsonl")
    parser.add_argument(
        "--program",
        type=Path,
        action="append",
        default=[],
        help="record and replay a small program (a reproduction) instead; results in WORK/repro",
    )
    parser.add_argument("--only-summary", action="store_true", help="rebuild the summary from WORK/results")
    args = parser.parse_args(argv)
    if args.list:
        for s in SUITES.values():
            print(f"{s.name}=={s.version}: {' '.join(s.tests)} — {s.note}")
        return 0
    work: Path = args.work
    if work.resolve().is_relative_to(ROOT):
        parser.error(f"--work {work} is inside the repository; third-party code must stay outside it")
    unknown = [n for n in args.suites if n not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; configured: {', '.join(SUITES)}")
    (work / "results").mkdir(parents=True, exist_ok=True)
    for program in args.program:
        replay_program(program, work / "repro", args)
    if args.program and not args.suites:
        return 0
    for name in [] if args.only_summary else (args.suites or list(SUITES)):
        suite = SUITES[name]
        trace = work / f"{name}.jsonl"
        result: dict[str, Any] = {"suite": name, "version": suite.version, "note": suite.note, "trace": str(trace)}
        if not args.skip_record:
            tree = fetch(suite, args.src or work / "src", work)
            python = install(suite, tree, work)
            plain = plain_run(suite, tree, python, args.record_timeout)
            tree = fetch(suite, args.src or work / "src", work)  # fresh tree: nothing left by the plain run
            print(f"[{name}] recording in {tree} ...", flush=True)
            result["record"] = record(suite, tree, python, trace, args.record_timeout) | {"unrecorded": plain}
            print(
                f"[{name}] recorded: {result['record']['pytest_outcome']} ({result['record']['seconds']} s)", flush=True
            )
        else:
            old = work / "results" / f"{name}.json"
            result["record"] = json.loads(old.read_text()).get("record", {}) if old.exists() else {}
        replay_everywhere(name, trace, result, work, args)
    write_summary(work)
    print(f"summary: {work / 'SUMMARY.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
