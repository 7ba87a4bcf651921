"""``traceparity fingerprint|diff``: schema fingerprints of database files, and what differs
between two databases (schema objects by name, table contents), goldens or traces.

``traceparity diff fixtures/baseline.sqlite3 OTHER.db`` is how a migration is checked:
exit 0 when OTHER.db holds the same schema and rows as the reference's database.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .cli_args import CommandParser, fail, guard
from .errors import TraceparityError
from .values import Result, plain


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
        return Result(
            columns=tuple(d[0] for d in description), rows=[tuple(plain(v) for v in row) for row in cursor.fetchall()]
        )

    return execute


def database_snapshot(path: str, prog: str = "traceparity") -> dict[str, Any]:
    from .fingerprint import snapshot

    with contextlib.closing(_open_sqlite(path, prog)) as conn:
        return snapshot(_executor(conn))


def fingerprint_main(argv: Sequence[str]) -> int:
    """``traceparity fingerprint DB [--json] [--content]``"""
    parser = CommandParser(
        prog="traceparity fingerprint",
        description="Print the schema fingerprint (sha256 of the "
        "canonical JSON of tables, columns, indexes, foreign keys, views, triggers) of a database file.",
    )
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
        counts = ", ".join(
            f"{len(schema[k])} {k.replace('_', ' ')}"
            for k in ("tables", "indexes", "views", "triggers", "virtual_tables")
        )
        print(f"{snap['schema_sha256']}  {args.database}  ({counts})")
        if args.content:
            for name, digest in snap["content"].items():
                print(f"  {name}: {digest['rows']} row(s) {digest['sha256'][:16]}")
        return 0

    return guard(prog, run)


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
    parser = CommandParser(
        prog="traceparity diff",
        description="Show what differs between two database files "
        "(schema objects by name, table contents), two golden files (first differing result) or "
        "two traces (first differing call).",
    )
    parser.add_argument("a")
    parser.add_argument("b")
    args = parser.parse_args(list(argv))
    prog = "traceparity diff"

    def run() -> int:
        kinds = []
        for path in (args.a, args.b):
            if not os.path.isfile(path):
                problem = "is a directory" if os.path.isdir(path) else "no such file"
                return fail(prog, f"{path}: {problem}; give two database files, two goldens or two traces")
            kinds.append(_kind(path))
        if kinds[0] != kinds[1] or kinds[0] not in ("database", "golden", "trace"):
            return fail(
                prog,
                f"cannot compare {args.a} ({kinds[0]}) with {args.b} ({kinds[1]}); give two "
                "database files, two golden files or two traces",
            )
        differ = {"database": _diff_databases, "golden": _diff_goldens, "trace": _diff_traces}[kinds[0]]
        lines = differ(args.a, args.b)
        if not lines:
            print(f"traceparity diff: {args.a} and {args.b} match")
            return 0
        print("\n".join(lines))
        return 1

    return guard(prog, run)


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
                lines.append(
                    f"out of step at {a}:{sa.line} / {b}:{sb.line}: seq {sa.seq} {sa.op} vs seq {sb.seq} {sb.op}"
                )
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
