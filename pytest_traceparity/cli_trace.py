"""``traceparity record|replay|diff|fingerprint``: the trace and golden commands.

Each ``*_main(argv)`` returns an exit code (0 ok, 1 divergence/difference, 2 bad input)
and prints one clear line for bad input, never a traceback; ``cli.py`` dispatches here.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .backends.base import BackendContext
from .errors import TraceparityError
from .values import Result, plain


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes in one line with the command's name."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def _guard(prog: str, fn: Callable[[], int]) -> int:
    try:
        return fn()
    except TraceparityError as exc:
        return _fail(prog, str(exc))
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        return _fail(prog, f"{exc.strerror or exc}:{where}")
    except KeyboardInterrupt:
        return _fail(prog, "interrupted")


# -- record ------------------------------------------------------------------------------
def record_main(argv: Sequence[str]) -> int:
    """``traceparity record -o TRACE [--redact RULE]... -- CMD ...``"""
    argv = list(argv)
    command: list[str] = []
    if "--" in argv:
        index = argv.index("--")
        argv, command = argv[:index], argv[index + 1:]
    parser = _Parser(prog="traceparity record", description="Record the SQL a Python program sends "
                     "(sqlite3, libsql, SQLAlchemy) into a trace, with no change to its code.")
    parser.add_argument("-o", "--output", required=True, help="trace file to write (.jsonl)")
    parser.add_argument("--redact", action="append", default=[], metavar="RULE",
                        help="redact parameter values: 'sql=REGEX;params=0,email' (positions/names in "
                        "matching statements) or 'value=REGEX' (any text value matching); repeatable")
    parser.add_argument("--cwd", help="directory to run the command in (database paths are relative to it)")
    args = parser.parse_args(argv)
    prog = "traceparity record"
    if not command:
        return _fail(prog, "nothing to record: put the command after '--', e.g. "
                           "traceparity record -o trace.jsonl -- python app.py")

    def run() -> int:
        from .trace.launcher import record
        from .trace.recorder import RedactionRule

        rules = []
        for spec in args.redact:
            try:
                rules.append(RedactionRule.parse(spec))
            except Exception as exc:
                return _fail(prog, f"--redact {spec!r}: not a valid rule ({exc})")
        out = Path(args.output).resolve()
        code, merged = record(command, out, redact=rules, cwd=Path(args.cwd) if args.cwd else None)
        note = f"; {len(merged.incomplete)} process(es) ended without closing their part" if merged.incomplete else ""
        print(f"traceparity record: wrote {merged.events} event(s) from {merged.parts} process(es) to "
              f"{args.output}{note}" + (f" (command exited with code {code})" if code else ""))
        if merged.events == 0:
            print("traceparity record: warning: no database calls were recorded (is the command a Python "
                  "program using sqlite3, libsql or SQLAlchemy? `python -I`/`-S` skip the recorder)", file=sys.stderr)
        return code

    return _guard(prog, run)


# -- replay ------------------------------------------------------------------------------
@contextlib.contextmanager
def _contexts(sqld: str | None = None, sqld_url: str | None = None,
              sync_url: str | None = None) -> Iterator[Callable[[str], BackendContext]]:
    """Fresh database contexts; an sqld server (for server backends) starts only if one asks."""
    from .config import ReplicaSettings, sqld_config
    from .services import HarnessServices

    root = Path(tempfile.mkdtemp(prefix="traceparity-replay-"))
    services = HarnessServices(sqld_config(sqld or ("url" if sqld_url else "auto"), url=sqld_url),
                               ReplicaSettings(sync_url=sync_url), root)
    make = services.new_context

    try:
        yield make
    finally:
        services.close()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def native_stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr while backends run, then put it back.

    Why: native client libraries (the libsql client's Rust logger) write straight to fd 1,
    which would corrupt ``--json`` output; Python's own prints happen after, on the
    original stdout.
    """
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):
        yield
        return
    try:
        os.dup2(2, 1)
    except OSError:
        os.close(saved)
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def replay_main(argv: Sequence[str]) -> int:
    """``traceparity replay TRACE [--backend ID] [--golden PATH] [--update-golden] [--json]``"""
    parser = _Parser(prog="traceparity replay", description="Replay a trace on a backend and compare it to "
                     "its golden (or rewrite the golden from the reference backend).")
    parser.add_argument("trace", help="trace file (.jsonl)")
    parser.add_argument("--backend", default=None, help="backend id (default: the reference backend)")
    parser.add_argument("--reference-backend", default=None, help="reference backend id")
    parser.add_argument("--golden", default=None, help="golden file (default: ../golden/<trace>.golden.jsonl)")
    parser.add_argument("--update-golden", action="store_true", help="rewrite the golden (reference backend only)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (only JSON on stdout; "
                        "client logs go to stderr)")
    parser.add_argument("--allow-departures", action="store_true", help="with --update-golden: write the golden "
                        "even when the reference replay departs from what the program saw for no documented cause")
    parser.add_argument("--sqld", default=None, help="how to get sqld for server backends: "
                        "auto|binary|docker|url|stand-in (default: auto)")
    parser.add_argument("--sqld-url", default=None, help="URL of a running sqld (auth: TURSO_AUTH_TOKEN)")
    parser.add_argument("--sync-url", default=None, help="primary URL for the embedded-replica backend")
    parser.add_argument("--minimize", action="store_true", help="when a difference is unknown, also shrink the "
                        "trace to a minimal one showing the most severe of them (see traceparity minimize)")
    parser.add_argument("--minimize-output", default=None, metavar="PATH",
                        help="where --minimize writes (default: <trace name>.<backend>.min.jsonl here)")
    args = parser.parse_args(list(argv))
    prog = "traceparity replay"

    def run() -> int:
        from .divergences import load_registry
        from .golden.verify import update_golden, verify_trace
        from .registry import DEFAULT_REFERENCE, standalone_registry
        from .trace.format import TraceReader

        registry = standalone_registry()
        reference = args.reference_backend or DEFAULT_REFERENCE
        backend_id = args.backend or reference
        backend = registry.get(backend_id)
        reason = backend.unavailable_reason()
        if reason:
            return _fail(prog, f"backend {backend_id!r} cannot run here: {reason}")
        trace = Path(args.trace)
        TraceReader(trace)  # header check first: a clear error before any database is created
        golden = Path(args.golden) if args.golden else None
        if args.update_golden and backend_id != reference:
            return _fail(prog, f"--update-golden writes goldens from the reference backend {reference!r} "
                               f"only, not {backend_id!r}; drop --backend or pass --backend {reference}")
        allow = args.allow_departures or os.environ.get("TRACEPARITY_ALLOW_DEPARTURES") == "1"
        minimized = None
        with native_stdout_to_stderr(), _contexts(args.sqld, args.sqld_url, args.sync_url) as make:
            if args.update_golden:
                report = update_golden(trace, backend, make, golden=golden, allow_departures=allow)
            else:
                rules = load_registry(Path.cwd())
                report = verify_trace(trace, backend, make, rules, golden=golden)
                unknown = [f for f in sorted(report.failures, key=lambda f: f.rank)
                           if isinstance(f.seq, int) and any(a.rule is None for a in f.attributions)]
                if args.minimize and unknown:
                    out = Path(args.minimize_output or f"{report.name}.{backend_id}.min.jsonl")
                    minimized = _minimize_to(trace, registry.get(reference), backend, make, rules, out,
                                             seq=int(unknown[0].seq))
        notes = report.replay_notes
        if args.update_golden:
            if args.json:
                data = report.to_json()
                data["departures"] = [d.to_json() for d in report.departures]
                data["replay"] = notes.to_json() if notes is not None else {}
                print(json.dumps(data))
            else:
                print(f"golden {report.golden}: {report.golden_status} ({report.steps} steps, from {backend_id})")
                if report.departures:
                    from .trace.faithful import summary

                    print(summary(report.departures), file=sys.stderr)
                for line in notes.lines() if notes is not None else []:
                    print(line)
            return 0
        data = report.to_json()
        if minimized is not None:
            data["minimized"] = minimized
            for difference in data["differences"]:
                if difference["rule"] is None:
                    difference["minimized"] = minimized["path"]
        if args.json:
            data["replay"] = notes.to_json() if notes is not None else {}
            print(json.dumps(data, indent=2))
        elif report.status == "failed":
            print(report.failure_message())
        elif report.status == "xfail":
            print(f"trace '{report.name}' on {backend_id}: {report.steps} steps match except "
                  f"{report.xfail_reason()}")
        else:
            print(f"trace '{report.name}' on {backend_id}: {report.steps} steps and the final state match "
                  f"{report.golden}")
        if minimized is not None and not args.json:
            print(f"minimal reproduction of {minimized['target']}: {minimized['path']} ({minimized['events']} of "
                  f"{minimized['original']} events)")
        if not args.json and notes is not None:
            for line in notes.lines():
                print(line)
        return 1 if report.status == "failed" else 0

    return _guard(prog, run)


def _minimize_to(trace: Path, reference: Any, backend: Any, make: Callable[[str], BackendContext], rules: Any,
                 out: Path, *, rule: str | None = None, seq: int | None = None,
                 budget: float = 300.0) -> dict[str, Any]:
    from .golden.minimizer import load_events, minimize, write_trace

    try:
        result = minimize(load_events(trace), reference, backend, make, rules, rule=rule, seq=seq, budget=budget)
    except ValueError as exc:
        raise TraceparityError(f"{trace}: {exc}") from None
    write_trace(result.events, out, {"minimized_from": str(trace), "backend": backend.id,
                                     "target": result.target.describe()})
    return {"path": str(out), "target": result.target.describe(), "rule": result.target.rule,
            "aspect": result.target.aspect, "kind": result.target.kind, "events": len(result.events),
            "original": result.original, "tests": result.tests, "seconds": round(result.seconds, 2),
            "complete": result.complete}


def minimize_main(argv: Sequence[str]) -> int:
    """``traceparity minimize TRACE --backend ID -o MIN.jsonl [--rule ID | --seq N]``"""
    parser = _Parser(prog="traceparity minimize", description="Shrink a trace to a minimal valid trace that "
                     "still shows the same difference on a backend (same rule, or same aspect and statement kind "
                     "when no rule explains it): delta debugging over databases, connections and events.")
    parser.add_argument("trace", help="trace file (.jsonl)")
    parser.add_argument("--backend", required=True, help="backend id that shows the difference")
    parser.add_argument("-o", "--output", required=True, help="minimized trace to write (.jsonl)")
    parser.add_argument("--reference-backend", default=None, help="reference backend id")
    parser.add_argument("--rule", default=None, help="keep the difference attributed to this rule id")
    parser.add_argument("--seq", type=int, default=None, help="keep the difference shown at this step")
    parser.add_argument("--budget", type=float, default=300.0, help="stop shrinking after this many seconds")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--sqld", default=None, help="how to get sqld for server backends (default: auto)")
    parser.add_argument("--sqld-url", default=None, help="URL of a running sqld (auth: TURSO_AUTH_TOKEN)")
    parser.add_argument("--sync-url", default=None, help="primary URL for the embedded-replica backend")
    args = parser.parse_args(list(argv))
    prog = "traceparity minimize"

    def run() -> int:
        from .divergences import load_registry
        from .registry import DEFAULT_REFERENCE, standalone_registry
        from .trace.format import TraceReader

        registry = standalone_registry()
        reference = args.reference_backend or DEFAULT_REFERENCE
        if args.backend == reference:
            return _fail(prog, f"--backend {args.backend} is the reference; pick the backend that differs")
        backend = registry.get(args.backend)
        for candidate in (backend, registry.get(reference)):
            reason = candidate.unavailable_reason()
            if reason:
                return _fail(prog, f"backend {candidate.id!r} cannot run here: {reason}")
        trace = Path(args.trace)
        TraceReader(trace)
        with _contexts(args.sqld, args.sqld_url, args.sync_url) as make:
            result = _minimize_to(trace, registry.get(reference), backend, make, load_registry(Path.cwd()),
                                  Path(args.output), rule=args.rule, seq=args.seq, budget=args.budget)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            note = "" if result["complete"] else f" (stopped after the {args.budget:g} s budget; run again on it)"
            print(f"traceparity minimize: {result['target']}: {result['events']} of {result['original']} events "
                  f"kept in {result['path']} ({result['tests']} replays, {result['seconds']} s){note}")
        return 0

    return _guard(prog, run)


# -- fingerprint -------------------------------------------------------------------------
def _open_sqlite(path: str, prog: str) -> sqlite3.Connection:
    if os.path.isdir(path):
        raise TraceparityError(f"{path}: is a directory; give an SQLite database file")
    if not os.path.isfile(path):
        raise FileNotFoundError(2, "no such database file", path)
    conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise TraceparityError(f"{path}: not an SQLite database ({exc})") from None
    return conn


def _executor(conn: sqlite3.Connection) -> Callable[[str], Result]:
    def execute(sql: str) -> Result:
        cursor = conn.execute(sql)
        description = cursor.description or ()
        return Result(columns=tuple(d[0] for d in description),
                      rows=[tuple(plain(v) for v in row) for row in cursor.fetchall()])

    return execute


def database_snapshot(path: str, prog: str = "traceparity") -> dict[str, Any]:
    from .fingerprint import snapshot

    with contextlib.closing(_open_sqlite(path, prog)) as conn:
        return snapshot(_executor(conn))


def fingerprint_main(argv: Sequence[str]) -> int:
    """``traceparity fingerprint DB [--json] [--content]``"""
    parser = _Parser(prog="traceparity fingerprint", description="Print the schema fingerprint (sha256 of the "
                     "canonical JSON of tables, columns, indexes, foreign keys, views, triggers) of a database file.")
    parser.add_argument("database", help="SQLite/libSQL database file")
    parser.add_argument("--json", action="store_true", help="print the canonical schema JSON and content digests")
    parser.add_argument("--content", action="store_true", help="also print per-table row counts and digests")
    args = parser.parse_args(list(argv))
    prog = "traceparity fingerprint"

    def run() -> int:
        from .fingerprint import canonical_json

        snap = database_snapshot(args.database, prog)
        if args.json:
            print(canonical_json(snap))
            return 0
        schema = snap["schema"]
        counts = ", ".join(f"{len(schema[k])} {k.replace('_', ' ')}" for k in
                           ("tables", "indexes", "views", "triggers", "virtual_tables"))
        print(f"{snap['schema_sha256']}  {args.database}  ({counts})")
        if args.content:
            for name, digest in snap["content"].items():
                print(f"  {name}: {digest['rows']} row(s) {digest['sha256'][:16]}")
        return 0

    return _guard(prog, run)


# -- diff --------------------------------------------------------------------------------
def _kind(path: str) -> str:
    with open(path, "rb") as fh:
        head = fh.read(200)
    if head.startswith(b"SQLite format 3\x00"):
        return "database"
    text = head.decode("utf-8", "replace")
    if '"traceparity-golden"' in text:
        return "golden"
    if '"traceparity-trace"' in text:
        return "trace"
    return "unknown"


def diff_main(argv: Sequence[str]) -> int:
    """``traceparity diff A B``: two databases (schema + content), two goldens or two traces (step by step)."""
    parser = _Parser(prog="traceparity diff", description="Show what differs between two database files "
                     "(schema objects by name, table contents), two golden files (first differing result) or "
                     "two traces (first differing call).")
    parser.add_argument("a")
    parser.add_argument("b")
    args = parser.parse_args(list(argv))
    prog = "traceparity diff"

    def run() -> int:
        kinds = []
        for path in (args.a, args.b):
            if not os.path.isfile(path):
                problem = "is a directory" if os.path.isdir(path) else "no such file"
                return _fail(prog, f"{path}: {problem}; give two database files, two goldens or two traces")
            kinds.append(_kind(path))
        if kinds[0] != kinds[1] or kinds[0] not in ("database", "golden", "trace"):
            return _fail(prog, f"cannot compare {args.a} ({kinds[0]}) with {args.b} ({kinds[1]}); give two "
                               "database files, two golden files or two traces")
        differ = {"database": _diff_databases, "golden": _diff_goldens, "trace": _diff_traces}[kinds[0]]
        lines = differ(args.a, args.b)
        if not lines:
            print(f"traceparity diff: {args.a} and {args.b} match")
            return 0
        print("\n".join(lines))
        return 1

    return _guard(prog, run)


def _diff_databases(a: str, b: str) -> list[str]:
    from .fingerprint import diff_content, diff_schemas

    sa, sb = database_snapshot(a), database_snapshot(b)
    lines = [f"schema: {line}" for line in diff_schemas(sa["schema"], sb["schema"])]
    lines += [f"content: {line}" for line in diff_content(sa["content"], sb["content"])]
    return lines


def _event_key(event: Any) -> tuple[Any, ...]:
    from .values import encode_params

    params = [encode_params(p) for p in event.many] if event.many is not None else encode_params(event.params)
    return (event.conn, event.op, event.sql, json.dumps(params, sort_keys=True), event.db, event.target, event.mode)


def _diff_traces(a: str, b: str) -> list[str]:
    from .trace.format import TraceReader

    lines: list[str] = []
    differing: list[str] = []
    left, right = iter(TraceReader(a)), iter(TraceReader(b))
    for ea, eb in itertools.zip_longest(left, right):
        if ea is None or eb is None:
            longer, event = (b, eb) if ea is None else (a, ea)
            rest = 1 + sum(1 for _ in (right if ea is None else left))
            lines.append(f"{longer} has {rest} more event(s), from seq {event.seq}: {event.short(100)}")
            break
        if _event_key(ea) != _event_key(eb):
            if not differing:
                lines.append(f"first differing call: seq {ea.seq} ({a}:{ea.line} / {b}:{eb.line})")
                lines.append(f"  {a}: conn {ea.conn} {ea.op} {ea.short(120)} {_event_key(ea)[3][:120]}")
                lines.append(f"  {b}: conn {eb.conn} {eb.op} {eb.short(120)} {_event_key(eb)[3][:120]}")
            differing.append(str(ea.seq))
    if len(differing) > 1:
        lines.append(f"and {len(differing) - 1} more call(s) differ: seq {', '.join(differing[1:11])}")
    return lines


def _diff_goldens(a: str, b: str) -> list[str]:
    from .compare import compare_outcomes
    from .golden.store import GoldenReader

    lines: list[str] = []
    differing: list[str] = []
    with GoldenReader(Path(a), a, check_trace=False) as ra, GoldenReader(Path(b), b, check_trace=False) as rb:
        while True:
            sa, sb = ra.next_step(), rb.next_step()
            if sa is None or sb is None:
                if (sa is None) != (sb is None):
                    lines.append(f"{a if sa is None else b} has fewer steps")
                break
            if (sa.seq, sa.op, sa.sql) != (sb.seq, sb.op, sb.sql):
                lines.append(f"out of step at {a}:{sa.line} / {b}:{sb.line}: seq {sa.seq} {sa.op} vs seq {sb.seq} "
                             f"{sb.op}")
                break
            diffs = compare_outcomes(sa.outcome, sb.outcome, sql=sa.sql or "", executemany=sa.op == "executemany")
            if diffs:
                if not differing:
                    sql = " ".join((sa.sql or sa.op).split())[:160]
                    lines.append(f"first differing step: seq {sa.seq}, conn {sa.conn}: {sql}")
                    lines.append(f"  {a}: {sa.outcome.summary()}")
                    lines.append(f"  {b}: {sb.outcome.summary()}")
                    lines.extend(f"  {d}" for d in diffs)
                differing.append(str(sa.seq))
        if len(differing) > 1:
            lines.append(f"and {len(differing) - 1} more step(s) differ: seq {', '.join(differing[1:11])}")
        if ra.final is not None and rb.final is not None and ra.final != rb.final:
            from .golden.verify import _final_differences

            lines.extend(f"final: {d.message}" for d in _final_differences(ra.final, rb.final))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry for ``python -m pytest_traceparity.cli_trace CMD ...`` (cli.py is the real one)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"record": record_main, "replay": replay_main, "diff": diff_main, "fingerprint": fingerprint_main,
                "minimize": minimize_main}
    if not argv or argv[0] not in commands:
        return _fail("traceparity", f"expected one of: {', '.join(commands)}")
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
