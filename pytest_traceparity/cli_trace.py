"""``traceparity record|replay|minimize``: the trace commands (``diff``/``fingerprint``: :mod:`.cli_db`).

Each ``*_main(argv)`` returns an exit code (0 ok, 1 divergence/difference, 2 bad input)
and prints one clear line for bad input, never a traceback; ``cli.py`` dispatches here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .backends.base import BackendContext
from .cli_args import CommandParser as _Parser
from .cli_args import fail as _fail
from .cli_args import guard as _guard
from .errors import TraceparityError


# -- record ------------------------------------------------------------------------------
def record_main(argv: Sequence[str]) -> int:
    """``traceparity record -o TRACE [--redact RULE]... -- CMD ...``"""
    argv = list(argv)
    command: list[str] = []
    if "--" in argv:
        index = argv.index("--")
        argv, command = argv[:index], argv[index + 1 :]
    parser = _Parser(
        prog="traceparity record",
        description="Record the SQL a Python program sends "
        "(sqlite3, libsql, SQLAlchemy) into a trace, with no change to its code.",
    )
    parser.add_argument("-o", "--output", required=True, help="trace file to write (.jsonl)")
    parser.add_argument(
        "--redact",
        action="append",
        default=[],
        metavar="RULE",
        help="redact parameter values: 'sql=REGEX;params=0,email' (positions/names in "
        "matching statements) or 'value=REGEX' (any text value matching); repeatable",
    )
    parser.add_argument("--cwd", help="directory to run the command in (database paths are relative to it)")
    args = parser.parse_args(argv)
    prog = "traceparity record"
    if not command:
        return _fail(
            prog,
            "nothing to record: put the command after '--', e.g. traceparity record -o trace.jsonl -- python app.py",
        )

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
        print(
            f"traceparity record: wrote {merged.events} event(s) from {merged.parts} process(es) to "
            f"{args.output}{note}" + (f" (command exited with code {code})" if code else "")
        )
        if merged.events == 0:
            print(
                "traceparity record: warning: no database calls were recorded (is the command a Python "
                "program using sqlite3, libsql or SQLAlchemy? `python -I`/`-S` skip the recorder)",
                file=sys.stderr,
            )
        return code

    return _guard(prog, run)


# -- replay ------------------------------------------------------------------------------
@contextlib.contextmanager
def _contexts(
    sqld: str | None = None, sqld_url: str | None = None, sync_url: str | None = None
) -> Iterator[Callable[[str], BackendContext]]:
    """Fresh database contexts; an sqld server (for server backends) starts only if one asks."""
    from .config import ReplicaSettings, sqld_config
    from .services import HarnessServices

    root = Path(tempfile.mkdtemp(prefix="traceparity-replay-"))
    services = HarnessServices(
        sqld_config(sqld or ("url" if sqld_url else "auto"), url=sqld_url), ReplicaSettings(sync_url=sync_url), root
    )
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


def _replay_parser() -> _Parser:
    parser = _Parser(
        prog="traceparity replay",
        description="Replay a trace on a backend and compare it to "
        "its golden (or rewrite the golden from the reference backend).",
    )
    parser.add_argument("trace", help="trace file (.jsonl)")
    parser.add_argument("--backend", default=None, help="backend id (default: the reference backend)")
    parser.add_argument("--reference-backend", default=None, help="reference backend id")
    parser.add_argument("--golden", default=None, help="golden file (default: ../golden/<trace>.golden.jsonl)")
    parser.add_argument("--update-golden", action="store_true", help="rewrite the golden (reference backend only)")
    parser.add_argument(
        "--json", action="store_true", help="print the report as JSON (only JSON on stdout; client logs go to stderr)"
    )
    parser.add_argument(
        "--allow-departures",
        action="store_true",
        help="with --update-golden: write the golden "
        "even when the reference replay departs from what the program saw for no documented cause",
    )
    parser.add_argument(
        "--sqld",
        default=None,
        help="how to get sqld for server backends: auto|binary|docker|url|stand-in (default: auto)",
    )
    parser.add_argument("--sqld-url", default=None, help="URL of a running sqld (auth: TURSO_AUTH_TOKEN)")
    parser.add_argument("--sync-url", default=None, help="primary URL for the embedded-replica backend")
    parser.add_argument(
        "--minimize",
        action="store_true",
        help="when a difference is unknown, also shrink the "
        "trace to a minimal one showing the most severe of them (see traceparity minimize)",
    )
    parser.add_argument(
        "--minimize-output",
        default=None,
        metavar="PATH",
        help="where --minimize writes (default: <trace name>.<backend>.min.jsonl here)",
    )
    return parser


def replay_main(argv: Sequence[str]) -> int:
    """``traceparity replay TRACE [--backend ID] [--golden PATH] [--update-golden] [--json]``"""
    args = _replay_parser().parse_args(list(argv))
    prog = "traceparity replay"

    def run() -> int:
        from .registry import DEFAULT_REFERENCE, standalone_registry
        from .trace.format import TraceReader

        registry = standalone_registry()
        reference = args.reference_backend or DEFAULT_REFERENCE
        backend_id = args.backend or reference
        reason = registry.get(backend_id).unavailable_reason()
        if reason:
            return _fail(prog, f"backend {backend_id!r} cannot run here: {reason}")
        TraceReader(Path(args.trace))  # header check first: a clear error before any database is created
        if args.update_golden and backend_id != reference:
            return _fail(
                prog,
                f"--update-golden writes goldens from the reference backend {reference!r} "
                f"only, not {backend_id!r}; drop --backend or pass --backend {reference}",
            )
        if args.update_golden:
            return _replay_update_golden(args, registry.get(backend_id))
        return _replay_verify(args, registry, reference, backend_id)

    return _guard(prog, run)


def _replay_update_golden(args: Any, backend: Any) -> int:
    """Rewrite the golden from the reference backend and say what was written."""
    from .golden.verify import update_golden

    allow = args.allow_departures or os.environ.get("TRACEPARITY_ALLOW_DEPARTURES") == "1"
    golden = Path(args.golden) if args.golden else None
    with native_stdout_to_stderr(), _contexts(args.sqld, args.sqld_url, args.sync_url) as make:
        report = update_golden(Path(args.trace), backend, make, golden=golden, allow_departures=allow)
    notes = report.replay_notes
    if args.json:
        data = report.to_json()
        data["departures"] = [d.to_json() for d in report.departures]
        data["replay"] = notes.to_json() if notes is not None else {}
        print(json.dumps(data))
        return 0
    print(f"golden {report.golden}: {report.golden_status} ({report.steps} steps, from {backend.id})")
    if report.departures:
        from .trace.faithful import summary

        print(summary(report.departures), file=sys.stderr)
    for line in notes.lines() if notes is not None else []:
        print(line)
    return 0


def _replay_verify(args: Any, registry: Any, reference: str, backend_id: str) -> int:
    """Replay on ``backend_id``, judge against the golden, optionally minimize the worst unknown."""
    from .divergences import load_registry
    from .golden.verify import verify_trace

    trace, backend = Path(args.trace), registry.get(backend_id)
    golden = Path(args.golden) if args.golden else None
    minimized = None
    with native_stdout_to_stderr(), _contexts(args.sqld, args.sqld_url, args.sync_url) as make:
        rules = load_registry(Path.cwd())
        report = verify_trace(trace, backend, make, rules, golden=golden)
        unknown = [
            f
            for f in sorted(report.failures, key=lambda f: f.rank)
            if isinstance(f.seq, int) and any(a.rule is None for a in f.attributions)
        ]
        if args.minimize and unknown:
            out = Path(args.minimize_output or f"{report.name}.{backend_id}.min.jsonl")
            minimized = _minimize_to(trace, registry.get(reference), backend, make, rules, out, seq=int(unknown[0].seq))
    notes = report.replay_notes
    data = report.to_json()
    if minimized is not None:
        data["minimized"] = minimized
        for difference in data["differences"]:
            if difference["rule"] is None:
                difference["minimized"] = minimized["path"]
    if args.json:
        data["replay"] = notes.to_json() if notes is not None else {}
        print(json.dumps(data, indent=2))
        return 1 if report.status == "failed" else 0
    if report.status == "failed":
        print(report.failure_message())
    elif report.status == "xfail":
        print(f"trace '{report.name}' on {backend_id}: {report.steps} steps match except {report.xfail_reason()}")
    else:
        print(f"trace '{report.name}' on {backend_id}: {report.steps} steps and the final state match {report.golden}")
    if minimized is not None:
        print(
            f"minimal reproduction of {minimized['target']}: {minimized['path']} ({minimized['events']} of "
            f"{minimized['original']} events)"
        )
    for line in notes.lines() if notes is not None else []:
        print(line)
    return 1 if report.status == "failed" else 0


def _minimize_to(
    trace: Path,
    reference: Any,
    backend: Any,
    make: Callable[[str], BackendContext],
    rules: Any,
    out: Path,
    *,
    rule: str | None = None,
    seq: int | None = None,
    budget: float = 300.0,
) -> dict[str, Any]:
    from .golden.minimizer import load_events, minimize, write_trace

    try:
        result = minimize(load_events(trace), reference, backend, make, rules, rule=rule, seq=seq, budget=budget)
    except ValueError as exc:
        raise TraceparityError(f"{trace}: {exc}") from None
    write_trace(
        result.events, out, {"minimized_from": str(trace), "backend": backend.id, "target": result.target.describe()}
    )
    return {
        "path": str(out),
        "target": result.target.describe(),
        "rule": result.target.rule,
        "aspect": result.target.aspect,
        "kind": result.target.kind,
        "events": len(result.events),
        "original": result.original,
        "tests": result.tests,
        "seconds": round(result.seconds, 2),
        "complete": result.complete,
    }


def minimize_main(argv: Sequence[str]) -> int:
    """``traceparity minimize TRACE --backend ID -o MIN.jsonl [--rule ID | --seq N]``"""
    parser = _Parser(
        prog="traceparity minimize",
        description="Shrink a trace to a minimal valid trace that "
        "still shows the same difference on a backend (same rule, or same aspect and statement kind "
        "when no rule explains it): delta debugging over databases, connections and events.",
    )
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
            result = _minimize_to(
                trace,
                registry.get(reference),
                backend,
                make,
                load_registry(Path.cwd()),
                Path(args.output),
                rule=args.rule,
                seq=args.seq,
                budget=args.budget,
            )
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            note = "" if result["complete"] else f" (stopped after the {args.budget:g} s budget; run again on it)"
            print(
                f"traceparity minimize: {result['target']}: {result['events']} of {result['original']} events "
                f"kept in {result['path']} ({result['tests']} replays, {result['seconds']} s){note}"
            )
        return 0

    return _guard(prog, run)
