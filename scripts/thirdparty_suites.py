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
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("sqlalchemy-sqlite", "libsql-local", "sqld-http", "embedded-replica")
REFERENCE = "sqlalchemy-sqlite"
EXAMPLES = 3
MAX_CAUSES = 8
# The recorder puts this checkout on the child's sys.path, so pytest finds our plugin's entry point
# and, in a venv without SQLAlchemy, aborts the recorded suite (exit 4): keep it out of the recorded run.
PLUGIN_OFF = ("-p", "no:traceparity")


@dataclass(frozen=True)
class Suite:
    """A PyPI project whose sdist ships a test suite that talks to SQLite."""

    name: str
    version: str
    tests: tuple[str, ...]                       # pytest arguments (paths / node ids), relative to the sdist root
    deps: tuple[str, ...] = ("pytest",)          # test dependencies installed next to the package
    extras: str = ""                             # e.g. "[test]"
    pytest_args: tuple[str, ...] = ()
    note: str = ""
    env: tuple[tuple[str, str], ...] = ()        # extra environment for install and test runs
    package: str = ""                            # PyPI name when it differs from the suite name

    @property
    def dist(self) -> str:
        return self.package or self.name


SUITES = {s.name: s for s in (
    Suite("sqlitedict", "2.1.0", ("tests",),
          note="sqlite3 directly; key/value store with autocommit, threads, several tables per file"),
    Suite("dataset", "2.0.0", ("test",), deps=("pytest",),
          note="SQLAlchemy 2 on sqlite (in-memory database per test)"),
    Suite("sqlite-utils", "4.2.1",
          ("tests/test_create.py", "tests/test_transform.py", "tests/test_fts.py", "tests/test_upsert.py",
           "tests/test_foreign_keys.py", "tests/test_query.py", "tests/test_get.py", "tests/test_delete.py",
           "tests/test_update.py", "tests/test_introspect.py", "tests/test_m2m.py", "tests/test_lookup.py",
           "tests/test_extract.py", "tests/test_default_value.py", "tests/test_column_affinity.py",
           "tests/test_atomic.py", "tests/test_conversions.py", "tests/test_rows.py"),
          deps=("pytest", "hypothesis", "cogapp"), extras="",
          note="sqlite3 directly; schema-heavy (transform, FTS4/5, foreign keys, upserts); a subset of modules"),
    Suite("sqlite-utils-full", "4.2.1", ("tests",), deps=("pytest", "hypothesis", "cogapp"),
          package="sqlite-utils", note="sqlite3 directly; the whole sqlite-utils suite (CLI included)"),
    Suite("sqlalchemy", "2.0.44",
          ("test/dialect/test_suite.py", "test/sql/test_types.py", "test/sql/test_insert_exec.py",
           "test/sql/test_returning.py", "test/sql/test_resultset.py"),
          deps=("pytest>=7", "typing_extensions"), env=(("DISABLE_SQLALCHEMY_CEXT", "1"),),
          note="SQLAlchemy's own dialect compliance suite and SQL/type tests on its default sqlite:///:memory: "
               "(pure-Python build)"),
    Suite("alembic", "1.20.1",
          ("tests/test_batch.py", "tests/test_sqlite.py", "tests/test_version_table.py", "tests/test_bulk_insert.py",
           "tests/test_autogen_diffs.py", "tests/test_autogen_indexes.py", "tests/test_script_consumption.py",
           "tests/test_version_traversal.py"),
          deps=("pytest>8,<10", "tzdata"),
          note="SQLAlchemy 2 (sqlite:///:memory: and files) through SQLAlchemy's own testing plugin; migrations, "
               "batch table rebuilds, reflection; a subset of modules"),
)}


def run(cmd: list[str], *, cwd: Path | None = None, timeout: float, env: dict[str, str] | None = None
        ) -> tuple[int | str, str, str, float, int | None]:
    """Run ``cmd`` under /usr/bin/time (peak RSS); returns (code or 'timeout', stdout, stderr, seconds, KB)."""
    timer = shutil.which("time") and Path("/usr/bin/time").exists()
    rss_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"tp-rss-{os.getpid()}"
    full = (["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *cmd]) if timer else cmd
    start = time.monotonic()
    try:
        proc = subprocess.run(full, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                              errors="replace", start_new_session=True)
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
        code, _out, err, _, _ = run([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:",
                                    "--no-deps", "-d", str(src), f"{suite.dist}=={suite.version}"], timeout=600)
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
    code, _, err, _, _ = run([str(python), "-m", "pip", "install", "-q", f"{tree}{suite.extras}", *suite.deps],
                             timeout=900, env={**os.environ, **dict(suite.env)})
    if code != 0:
        raise SystemExit(f"installing {suite.name} into {venv} failed ({code}): {err.strip()[-800:]}")
    return python


def _outcome(out: str) -> str:
    lines = out.strip().splitlines()
    return next((x.strip() for x in reversed(lines) if re.search(r"\b(passed|failed|error)", x)),
                lines[-1] if lines else "")


def _pytest_cmd(suite: Suite, python: Path) -> list[str]:
    return [str(python), "-m", "pytest", *suite.tests, "-q", "-p", "no:cacheprovider", "-o", "addopts=",
            *PLUGIN_OFF, *suite.pytest_args]


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
    cmd = [str(Path(sys.executable).parent / "traceparity"), "record", "-o", str(trace), "--cwd", str(tree),
           "--", *_pytest_cmd(suite, python)]
    code, out, err, seconds, rss = run(cmd, timeout=timeout, env=_env(suite))
    return {"command": " ".join(cmd), "exit": code, "seconds": round(seconds, 1), "peak_rss_kb": rss,
            "pytest_outcome": _outcome(out), "stderr_tail": err.strip()[-1500:]}


# -- trace statistics ---------------------------------------------------------------------
def trace_index(trace: Path) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """Streamed statistics of a trace, and each SQL step by seq (for examples)."""
    ops: Counter[str] = Counter()
    dbs: set[str] = set()
    conns: set[int] = set()
    recorded_errors = 0
    steps: dict[int, dict[str, Any]] = {}
    ended = False
    with trace.open(encoding="utf-8") as fh:
        header = json.loads(fh.readline())
        for line in fh:
            obj = json.loads(line)
            if obj.get("end"):
                ended = True
                continue
            ops[obj["op"]] += 1
            conns.add(obj["conn"])
            if obj.get("db"):
                dbs.add(obj["db"])
            if obj.get("error"):
                recorded_errors += 1
            steps[obj["seq"]] = {"conn": obj["conn"], "op": obj["op"], "sql": obj.get("sql"),
                                 "params": obj.get("params"), "error": obj.get("error")}
    stats = {"events": sum(ops.values()), "ops": dict(ops.most_common()), "databases": len(dbs),
             "connections": len(conns), "recorded_errors": recorded_errors, "complete": ended,
             "bytes": trace.stat().st_size, "source": header.get("source")}
    return stats, steps


# -- replay -------------------------------------------------------------------------------
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_report(stdout: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The ``--json`` object from stdout, and any non-JSON lines that preceded it (client logs)."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("{"):
            try:
                return json.loads("\n".join(lines[i:])), [_ANSI.sub("", x) for x in lines[:i] if x.strip()]
            except json.JSONDecodeError:
                continue
    return None, [_ANSI.sub("", x) for x in lines if x.strip()]


def harness_errors(code: int | str, stdout: str, stderr: str, noise: list[str]) -> list[str]:
    """What went wrong in the harness itself (not a divergence): aborts, tracebacks, polluted stdout."""
    errors = []
    if code == "timeout":
        errors.append("timeout")
    elif code not in (0, 1):
        errors.append(f"exit {code}")
    text = _ANSI.sub("", stderr)
    if "Traceback (most recent call last)" in text:
        tail = text[text.rindex("Traceback (most recent call last)"):].strip().splitlines()
        errors.append("traceback: " + (tail[-1] if tail else ""))
    errors.extend(line.strip() for line in text.splitlines() if re.match(r"\s*traceparity \w+: error", line))
    if noise:
        errors.append(f"stdout not pure JSON: {len(noise)} line(s) before the report, first: {noise[0][:200]}")
    return errors


_DIFF = re.compile(r"^\[([^\]]+)\]\s*(.*)$", re.DOTALL)


def differences_of(report: dict[str, Any], steps: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every difference as one flat record, from whichever report shape this checkout prints.

    Issue-8 shape: top-level ``differences`` (with ``rule``); detail shape: ``steps_detail``
    (added by ``--detail-replay``); plain shape: ``failures`` (unknown only) + ``known`` reasons.
    """
    def sql_of(seq: Any) -> tuple[Any, Any]:
        step = steps.get(seq) if isinstance(seq, int) else None
        return ((step or {}).get("sql") or (step or {}).get("op") or ("final state" if seq == "final" else None),
                (step or {}).get("params"))

    out = []
    if isinstance(report.get("differences"), list):
        for d in report["differences"]:
            sql, params = sql_of(d.get("seq"))
            out.append({"seq": d.get("seq"), "aspect": d.get("aspect"), "rule": d.get("rule"),
                        "severity": d.get("severity"), "message": d.get("message") or "",
                        "expected": d.get("expected"), "actual": d.get("actual"), "sql": d.get("sql") or sql,
                        "params": params})
        return out
    if isinstance(report.get("steps_detail"), list):
        for st in report["steps_detail"]:
            sql, params = sql_of(st["seq"])
            # verdicts: known / diverged / fixed / expired; only "known" is explained by the registry
            rule = (" / ".join(r.splitlines()[0][:100] for r in st["reasons"]) or "known"
                    ) if st["status"] == "known" else None
            note = "" if st["status"] in ("known", "diverged") else f" [registry: {st['status']}]"
            for d in st["differences"]:
                by = d.get("covered_by")
                out.append({"seq": st["seq"], "aspect": d["aspect"], "severity": None,
                            "rule": rule or (by.splitlines()[0][:100] if by and st["status"] == "diverged" else None),
                            "step_unknown": st["status"] != "known", "message": d["message"] + note,
                            "expected": st["expected"], "actual": st["actual"],
                            "sql": sql or st["sql"], "params": params, "status": st["status"]})
        return out
    for failure in report.get("failures", []):
        sql, params = sql_of(failure["seq"])
        for text in failure.get("differences", []):
            m = _DIFF.match(text)
            out.append({"seq": failure["seq"], "aspect": m.group(1) if m else "?", "rule": None, "severity": None,
                        "message": m.group(2) if m else text, "expected": None, "actual": None, "sql": sql,
                        "params": params})
    for k in report.get("known", []):
        out.append({"seq": k["seq"], "aspect": "(known; aspect not reported)",
                    "rule": " / ".join(r.splitlines()[0][:100] for r in k.get("reasons", [])) or "known",
                    "severity": None, "message": "", "expected": None, "actual": None, "sql": None, "params": None})
    return out


_VOLATILE = re.compile(r"\bdb\d+\b|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\b\d+(?:\.\d+)?\b|0x[0-9a-f]+")


def signature(d: dict[str, Any]) -> str:
    """A difference with its values blanked: what groups the same cause seen on many steps."""
    head = (str(d.get("sql") or "").split(None, 1) or [""])[0].upper()[:12]
    return f"{head} | {_VOLATILE.sub('_', d['message'])[:160]}"


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
                {"seq": st.seq, "status": st.status, "sql": st.sql, "params": st.params, "expected": st.expected,
                 "actual": st.actual, "reasons": list(st.reasons),
                 "differences": [{"aspect": d.aspect, "message": d.message,
                                  "covered_by": covered(self, st.seq, d.aspect)} for d in st.differences]}
                for st in [*self.failures, *self.known]]
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


def replay(trace: Path, golden: Path, backend: str, steps: dict[int, dict[str, Any]], timeout: float,
           sqld: str, cwd: Path) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--detail-replay", str(trace), "--golden", str(golden),
           "--json", "--backend", backend]
    if backend in ("sqld-http", "embedded-replica"):
        cmd += ["--sqld", sqld]
    code, out, err, seconds, rss = run(cmd, cwd=cwd, timeout=timeout)
    report, noise = parse_report(out)
    result: dict[str, Any] = {"command": " ".join(cmd), "exit": code, "seconds": round(seconds, 1),
                              "peak_rss_kb": rss, "harness_errors": harness_errors(code, out, err, noise),
                              "stderr_tail": _ANSI.sub("", err).strip()[-2000:], "stdout_noise": noise[:20],
                              "files_written_in_cwd": stray_files(cwd)}
    if result["files_written_in_cwd"]:
        result["harness_errors"].append(f"replay wrote {len(result['files_written_in_cwd'])} file(s) in its cwd "
                                        f"(outside its workdir): {', '.join(result['files_written_in_cwd'][:5])}")
    if report is None:
        result["harness_errors"].append("no JSON report: " + (_ANSI.sub("", err).strip()[-600:] or out[-600:]))
        return result
    diffs = differences_of(report, steps)
    unknown_seqs = {d["seq"] for d in diffs if d["rule"] is None}
    all_seqs = {d["seq"] for d in diffs}
    aspects: dict[str, dict[str, set[Any]]] = defaultdict(lambda: {"known": set(), "unknown": set()})
    causes: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    known_rules: dict[str, set[Any]] = defaultdict(set)
    for d in diffs:
        aspects[d["aspect"]]["unknown" if d["rule"] is None else "known"].add(d["seq"])
        if d["rule"] is not None:
            known_rules[d["rule"]].add(d["seq"])
            continue
        group = causes[d["aspect"]].setdefault(signature(d), {"differences": 0, "steps": set(), "examples": []})
        group["differences"] += 1
        group["steps"].add(d["seq"])
        if len(group["examples"]) < EXAMPLES:
            group["examples"].append({k: d.get(k) for k in ("seq", "sql", "params", "message", "expected", "actual")})
    def size(kv: tuple[str, dict[str, set[Any]]]) -> int:
        return -len(kv[1]["known"]) - len(kv[1]["unknown"])

    result.update({
        "status": report.get("status"), "steps": report.get("steps"),
        "differing_steps": len(all_seqs), "unknown_steps": len(unknown_seqs),
        "known_steps": len(all_seqs - unknown_seqs),
        "differences": len(diffs), "unknown_differences": sum(1 for d in diffs if d["rule"] is None),
        "steps_by_aspect": {a: {"known": len(v["known"]), "unknown": len(v["unknown"])}
                            for a, v in sorted(aspects.items(), key=size)},
        "unknown_causes": {a: [{"signature": sig, "differences": g["differences"], "steps": len(g["steps"]),
                                "examples": g["examples"]}
                               for sig, g in sorted(groups.items(), key=lambda kv: -kv[1]["differences"])]
                           for a, groups in causes.items()},
        "known_by_rule": {r: len(v) for r, v in sorted(known_rules.items(), key=lambda kv: -len(kv[1]))},
        "root_causes": report.get("root_causes"),
    })
    return result


def make_golden(trace: Path, golden: Path, timeout: float, cwd: Path) -> dict[str, Any]:
    golden.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).parent / "traceparity"), "replay", str(trace), "--golden", str(golden),
           "--update-golden", "--backend", REFERENCE]
    code, out, err, seconds, rss = run(cmd, cwd=cwd, timeout=timeout)
    return {"files_written_in_cwd": stray_files(cwd),
            "command": " ".join(cmd), "exit": code, "seconds": round(seconds, 1), "peak_rss_kb": rss,
            "output": out.strip()[-300:], "harness_errors": harness_errors(code, out, err, [])
            + ([_ANSI.sub("", err).strip()[-600:]] if code != 0 and err.strip() else [])}


# -- summary ------------------------------------------------------------------------------
def _cell(text: Any, limit: int = 140) -> str:
    s = " ".join(str(text).split()).replace("|", "\\|")
    return s if len(s) <= limit else s[: limit - 3] + "..."


def markdown(results: list[dict[str, Any]]) -> str:
    out = ["# Third-party suites replayed", "",
           "Generated by `scripts/thirdparty_suites.py`; per-suite JSON in `results/`.", "",
           "| suite | steps | databases | connections | backend | status | differing steps | unknown | known | "
           "harness errors | time s | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        st = r.get("trace_stats", {})
        golden = r.get("golden", {})
        if golden.get("exit") not in (None, 0):
            out.append(f"| {r['suite']} | {st.get('events')} | {st.get('databases')} | {st.get('connections')} | "
                       f"(golden, {REFERENCE}) | GOLDEN FAILED | - | - | - | {len(golden['harness_errors'])} | "
                       f"{golden['seconds']} | {round((golden['peak_rss_kb'] or 0) / 1024)} |")
        for backend, b in r.get("replays", {}).items():
            out.append(f"| {r['suite']} | {st.get('events')} | {st.get('databases')} | {st.get('connections')} | "
                       f"{backend} | {b.get('status', 'ABORTED')} | {b.get('differing_steps', '-')} | "
                       f"{b.get('unknown_steps', '-')} | {b.get('known_steps', '-')} | {len(b['harness_errors'])} | "
                       f"{b['seconds']} | {round((b['peak_rss_kb'] or 0) / 1024)} |")
    for r in results:
        out += ["", f"## {r['suite']} {r['version']}", "", r.get("note", ""), ""]
        rec = r.get("record", {})
        plain = rec.get("unrecorded")
        out += [f"- recorded: `{rec.get('command')}` (exit {rec.get('exit')}, {rec.get('seconds')} s, "
                f"outcome: {_cell(rec.get('pytest_outcome'), 300)}"
                + (f"; without recording: {plain.get('outcome')}, {plain.get('seconds')} s)" if plain else ")"),
                f"- trace: {r.get('trace')} — {json.dumps(r.get('trace_stats', {}).get('ops'))}, "
                f"{r.get('trace_stats', {}).get('recorded_errors')} steps with a recorded error",
                f"- golden: `{r.get('golden', {}).get('command')}` → exit {r.get('golden', {}).get('exit')}: "
                f"{_cell(r.get('golden', {}).get('output'))}"]
        for err in r.get("golden", {}).get("harness_errors", []):
            out.append(f"  - golden harness error: `{_cell(err, 400)}`")
        for backend, b in r.get("replays", {}).items():
            out += ["", f"### {r['suite']} on {backend}: {b.get('status', 'ABORTED')}, "
                    f"{b.get('differing_steps', '-')} differing steps ({b.get('unknown_steps', '-')} unknown, "
                    f"{b.get('known_steps', '-')} known)", ""]
            for err in b["harness_errors"]:
                out.append(f"- harness error: `{_cell(err, 600)}`")
            if b.get("steps_by_aspect"):
                out.append("- differing steps by aspect (known / unknown): " + ", ".join(
                    f"`{a}` {v['known']}/{v['unknown']}" for a, v in b["steps_by_aspect"].items()))
            for rule, n in b.get("known_by_rule", {}).items():
                out.append(f"- known, {n} step(s): {_cell(rule, 160)}")
            for aspect, groups in b.get("unknown_causes", {}).items():
                total = sum(g["differences"] for g in groups)
                out.append(f"- **unknown `{aspect}`**: {total} difference(s), {len(groups)} distinct shape(s)")
                for g in groups[:MAX_CAUSES]:
                    out.append(f"  - {g['differences']}x `{_cell(g['signature'], 170)}`")
                    for ex in g["examples"]:
                        out.append(f"    - seq {ex['seq']}: `{_cell(ex['sql'], 150)}` params "
                                   f"`{_cell(ex['params'], 70)}` — {_cell(ex['message'], 260)}"
                                   + (f" (expected `{_cell(ex['expected'], 80)}`, actual `{_cell(ex['actual'], 80)}`)"
                                      if ex.get("expected") or ex.get("actual") else ""))
                if len(groups) > MAX_CAUSES:
                    out.append(f"  - ... {len(groups) - MAX_CAUSES} more shape(s) in the JSON")
    return "\n".join(out) + "\n"


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
        b = replay(trace, golden, backend, steps, args.replay_timeout, args.sqld,
                   scratch_cwd(work, f"{name}-{backend}"))
        result["replays"][backend] = b
        print(f"[{name}] {backend}: {b.get('status', 'ABORTED')} differing={b.get('differing_steps')} "
              f"unknown={b.get('unknown_steps')} errors={b['harness_errors'][:2]} ({b['seconds']} s)", flush=True)
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
    cmd = [str(Path(sys.executable).parent / "traceparity"), "record", "-o", str(trace), "--cwd", str(run_dir),
           "--", sys.executable, str(program.resolve())]
    code, out, err, seconds, _ = run(cmd, timeout=args.record_timeout)
    result: dict[str, Any] = {"suite": name, "version": "-", "note": program.read_text().split("\n\n")[0].strip(),
                              "trace": str(trace), "record": {"command": " ".join(cmd), "exit": code,
                                                              "seconds": round(seconds, 1),
                                                              "pytest_outcome": (out + err).strip()[-300:]}}
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
    parser.add_argument("--program", type=Path, action="append", default=[],
                        help="record and replay a small program (a reproduction) instead; results in WORK/repro")
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
    for name in ([] if args.only_summary else (args.suites or list(SUITES))):
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
            print(f"[{name}] recorded: {result['record']['pytest_outcome']} ({result['record']['seconds']} s)",
                  flush=True)
        else:
            old = work / "results" / f"{name}.json"
            result["record"] = json.loads(old.read_text()).get("record", {}) if old.exists() else {}
        replay_everywhere(name, trace, result, work, args)
    write_summary(work)
    print(f"summary: {work / 'SUMMARY.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
