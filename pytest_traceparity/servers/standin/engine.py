"""SQL execution with sqld's semantics, independent of the wire encoding.

:class:`Database` (``database.py``) is one namespace: one SQLite file in WAL mode. Every statement any
stream runs goes through :func:`run_statement`, and every statement that may have
written ends in :meth:`Database.after_write` — the single place a sync layer hooks into
(see ``servers/standin/sync.py``). Errors are raised as :class:`StmtError` (reported in
the response, the stream lives on) or :class:`ProtocolError` (the HTTP request fails
with a 4xx and the stream is dropped), mirroring sqld.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import ffi, sqltext
from .database import Database, ProtocolError


class StmtError(Exception):
    """A statement failed; reported inside the response like sqld's ``StmtError``."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        # Columns and rows produced before a failure in the middle of stepping (cursor).
        self.partial: tuple[list[ffi.Column], list[list[Any]]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "code": self.code}


_PARSE_MARKERS = ("syntax error", "incomplete input", "unrecognized token")


def stmt_error_from_sqlite(err: ffi.SqliteError, *, preparing: bool) -> StmtError:
    """Map a SQLite failure the way sqld does (primary code name, ``SQLite error:`` prefix)."""
    if preparing and any(marker in err.message for marker in _PARSE_MARKERS):
        return StmtError(f"SQL string could not be parsed: {err.message}", "SQL_PARSE_ERROR")
    return StmtError(f"SQLite error: {err.message}", err.code_name)


@dataclass
class StmtSpec:
    """One statement to run: text, positional or named arguments, whether rows are wanted."""

    sql: str
    args: list[Any] = field(default_factory=list)
    named_args: list[tuple[str, Any]] = field(default_factory=list)
    want_rows: bool = True


@dataclass
class StmtOutcome:
    cols: list[ffi.Column]
    rows: list[list[Any]]
    affected_row_count: int
    last_insert_rowid: int | None
    rows_read: int
    rows_written: int
    query_duration_ms: float


def _bind_args(stmt: ffi.Statement, spec: StmtSpec) -> None:
    """Bind arguments with sqld's rules (``Params::bind``), raising ARGS_INVALID."""
    if spec.args and spec.named_args:
        raise StmtError(
            "Specifying both positional and named arguments is not supported",
            "ARGS_BOTH_POSITIONAL_AND_NAMED",
        )
    count = stmt.parameter_count()
    supplied = len(spec.named_args) if spec.named_args else len(spec.args)
    if supplied > count:
        raise StmtError(
            f"Arguments do not match SQL parameters: too many parameters, expected {count} found {supplied}",
            "ARGS_INVALID",
        )
    named = dict(spec.named_args)
    missing = object()
    for index in range(1, count + 1):
        name = stmt.parameter_name(index)
        value: Any = missing
        if name is None:
            if not spec.named_args and index <= len(spec.args):
                value = spec.args[index - 1]
        elif name.startswith("?"):
            try:
                pos = int(name[1:])
            except ValueError:
                pos = -1
            if not spec.named_args and 1 <= pos <= len(spec.args):
                value = spec.args[pos - 1]
        elif spec.named_args:
            if name in named:
                value = named[name]
            elif name[1:] in named:
                value = named[name[1:]]
        if value is missing:
            if stmt.is_explain:
                return
            raise StmtError(
                f"Arguments do not match SQL parameters: value for parameter {name or index} not found",
                "ARGS_INVALID",
            )
        try:
            stmt.bind(index, value)
        except ffi.SqliteError as err:
            raise stmt_error_from_sqlite(err, preparing=False) from err


_CACHED_SQL_MAX = 4096  # longer texts (bulk literals) are classified afresh, never kept


@functools.lru_cache(maxsize=2048)
def _classify_cached(sql: str) -> tuple[str | None, bool, str, tuple[bool, bool]]:
    return (
        sqltext.attach_namespace(sql),
        sqltext.sqld_unsupported(sql),
        sqltext.main_keyword(sql),
        sqltext.statement_kind(sql),
    )


def classify(sql: str) -> tuple[str | None, bool, str, tuple[bool, bool]] | None:
    """``(attach namespace, refused by sqld, main keyword, (is_iud, is_insert))``, or None
    for a long text (classified afresh by each caller, never kept).

    A statement is classified up to three times per request (batch check, describe, run)
    and clients repeat the same texts, so short texts are remembered: tokenizing was an
    eighth of an autocommit insert's server time.
    """
    return _classify_cached(sql) if len(sql) <= _CACHED_SQL_MAX else None


def check_supported(sql: str) -> None:
    """Refuse what sqld's statement analysis refuses (temp tables, VACUUM, most PRAGMA writes)."""
    known = classify(sql)
    namespace = known[0] if known else sqltext.attach_namespace(sql)
    if namespace is not None:  # sqld's permission check fails the whole request (401)
        raise ProtocolError(
            f"Not authorized to execute query: Namespace `{namespace}` doesn't allow attach",
            "NOT_AUTHORIZED",
            401,
        )
    if known[1] if known else sqltext.sqld_unsupported(sql):
        raise StmtError(f"SQL string could not be parsed: unsupported statement: {sql.strip()}", "SQL_PARSE_ERROR")


def prepare_single(conn: ffi.Connection, sql: str) -> ffi.Statement:
    """Prepare exactly one statement, as sqld requires for execute/batch steps."""
    check_supported(sql)
    try:
        stmt = conn.prepare_cached(sql)
    except ffi.SqliteError as err:
        raise stmt_error_from_sqlite(err, preparing=True) from err
    if stmt is None:
        raise StmtError("SQL string does not contain any statement", "SQL_NO_STATEMENT")
    tail = sql.encode("utf-8", "surrogatepass")[stmt.tail_offset :].decode("utf-8", "replace")
    if not sqltext.is_blank(tail):
        stmt.finalize()
        raise StmtError("SQL string contains more than one statement", "SQL_MANY_STATEMENTS")
    return stmt


def transaction_timeout() -> StmtError:
    return StmtError("Transaction timed out", "TRANSACTION_TIMEOUT")


def response_too_large() -> StmtError:
    return StmtError("Response is too large", "RESPONSE_TOO_LARGE")


def _value_size(value: Any) -> int:
    """sqld's estimate of a value's JSON size (libsql-server/src/hrana/result_builder.rs)."""
    if value is None:
        return 15
    if isinstance(value, int):
        return 29 + len(str(value))
    if isinstance(value, float):
        return 26 + len(repr(value))
    if isinstance(value, str):
        return 26 + len(value.encode("utf-8", "surrogatepass"))
    return len(value)


def _cols_size(cols: list[ffi.Column]) -> int:
    return sum(25 + len((c.name or "").encode()) + len((c.decltype or "null").encode()) for c in cols)


class Program:
    """One sqld program (an ``execute``, a ``batch`` or a ``sequence``): once its write
    transaction has timed out, every later step fails with ``TRANSACTION_TIMEOUT``; its
    results share one response budget (``limit_response``; cursors stream, unlimited)."""

    def __init__(self, db: Database, conn: ffi.Connection, *, limit_response: bool = True) -> None:
        self.db, self.conn, self.timed_out = db, conn, False
        self.budget: int | None = db.max_response_size if limit_response else None

    def spend(self, size: int) -> None:
        if self.budget is not None:
            self.budget -= size
            if self.budget < 0:
                raise response_too_large()

    def check(self) -> None:
        if self.timed_out or self.db.txn.timed_out(self.conn):
            self.timed_out = True
            raise transaction_timeout()


def run_statement(db: Database, conn: ffi.Connection, spec: StmtSpec, program: Program | None = None) -> StmtOutcome:
    """Run one statement on a stream's connection; the only path SQL takes to SQLite."""
    started = time.perf_counter()
    program = program or Program(db, conn)
    program.check()
    state_before = conn.txn_state()
    try:
        return _run_prepared(db, conn, spec, started, program)
    finally:
        if not conn.closed:
            if conn.has_statements() and not _keeps_statements(spec.sql):
                conn.clear_statements()
            db.txn.after_step(conn, state_before)


# Statements after which prepared statements kept in a transaction stay valid: they change
# neither the schema nor how SQLite compiles (DDL, ROLLBACK TO and PRAGMAs may; kept
# statements would then describe what they were compiled against).
_DML = {"SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "VALUES", "EXPLAIN"}


def _keeps_statements(sql: str) -> bool:
    known = classify(sql)
    return (known[2] if known else sqltext.main_keyword(sql)) in _DML


def _run_prepared(db: Database, conn: ffi.Connection, spec: StmtSpec, started: float, program: Program) -> StmtOutcome:
    stmt = prepare_single(conn, spec.sql)
    with stmt:
        cols = stmt.columns()
        program.spend(_cols_size(cols))
        try:
            _bind_args(stmt, spec)
        except StmtError as error:
            error.partial = (cols, [])
            raise
        writes = _may_write(stmt, spec.sql)
        rows: list[list[Any]] = []
        stepped = 0
        try:
            while stmt.step():
                stepped += 1
                if spec.want_rows:
                    row = stmt.row(len(cols))
                    if program.budget is not None:
                        program.spend(sum(_value_size(v) for v in row))
                    rows.append(row)
        except ffi.SqliteError as err:
            failure = stmt_error_from_sqlite(err, preparing=False)
            failure.partial = (cols, rows)
            raise failure from err
        finally:
            if writes:
                _notify(db, conn)
        known = classify(spec.sql)
        is_iud, is_insert = known[3] if known else sqltext.statement_kind(spec.sql)
        affected = conn.changes() if is_iud else 0
        return StmtOutcome(
            cols=cols,
            rows=rows,
            affected_row_count=affected,
            last_insert_rowid=conn.last_insert_rowid() if is_insert else None,
            rows_read=stepped,
            rows_written=affected,
            query_duration_ms=(time.perf_counter() - started) * 1000.0,
        )


_TXN_END = {"COMMIT", "END", "RELEASE", "ROLLBACK"}


def _may_write(stmt: ffi.Statement, sql: str) -> bool:
    """Not read-only, or ends a transaction (SQLite calls COMMIT read-only)."""
    if stmt.readonly:
        known = classify(sql)
        return (known[2] if known else sqltext.main_keyword(sql)) in _TXN_END
    return True


@contextlib.contextmanager
def _after_step(db: Database, conn: ffi.Connection, state_before: int) -> Iterator[None]:
    try:
        yield
    finally:
        if not conn.closed:
            db.txn.after_step(conn, state_before)


def _notify(db: Database, conn: ffi.Connection) -> None:
    with db.lock:
        db.after_write(conn)


def run_sequence(db: Database, conn: ffi.Connection, sql: str) -> None:
    """Run ``;``-separated statements in order, stopping at the first error.

    Like sqld, every statement is vetted before the first one runs.
    """
    pieces = sqltext.split_statements(sql)
    for piece in pieces:
        check_supported(piece)
    for piece in pieces:
        check_syntax(piece)
    program = Program(db, conn)
    conn.clear_statements()  # a sequence may change the schema (see _DML)
    data = sql.encode("utf-8", "surrogatepass")
    pos = 0
    while pos < len(data):
        program.check()
        state_before = conn.txn_state()
        try:
            stmt = conn.prepare(sql, pos)
        except ffi.SqliteError as err:
            raise stmt_error_from_sqlite(err, preparing=True) from err
        if stmt is None:
            return
        with stmt, _after_step(db, conn, state_before):
            piece = data[pos : stmt.tail_offset].decode("utf-8", "replace")
            writes = _may_write(stmt, piece)
            try:
                while stmt.step():
                    pass
            except ffi.SqliteError as err:
                raise stmt_error_from_sqlite(err, preparing=False) from err
            finally:
                if writes:
                    _notify(db, conn)
            if stmt.tail_offset <= pos:
                return
            pos = stmt.tail_offset


_scratch = threading.local()


def check_syntax(sql: str) -> None:
    """Fail with SQL_PARSE_ERROR if SQLite's parser rejects ``sql``, without running it.

    sqld parses a whole ``sequence`` before the first statement runs, so a syntax error
    in the last statement means nothing ran. SQLite has no parse-only call; preparing on
    an empty in-memory database reports syntax errors and, for statements that name
    tables created earlier in the same text, "no such table" (ignored here).
    """
    conn = getattr(_scratch, "conn", None)
    if conn is None:
        conn = _scratch.conn = ffi.Connection(":memory:")
    try:
        stmt = conn.prepare(sql)
    except ffi.SqliteError as err:
        if any(marker in err.message for marker in _PARSE_MARKERS):
            raise stmt_error_from_sqlite(err, preparing=True) from err
        return
    if stmt is not None:
        stmt.finalize()


def describe(conn: ffi.Connection, sql: str) -> dict[str, Any]:
    """sqld's ``describe``: parameters, columns, explain/readonly flags of the first statement."""
    stmt = prepare_single(conn, sql)
    with stmt:
        params = [{"name": stmt.parameter_name(i)} for i in range(1, stmt.parameter_count() + 1)]
        cols = [{"name": c.name or "", "decltype": c.decltype} for c in stmt.columns()]
        return {
            "params": params,
            "cols": cols,
            "is_explain": stmt.is_explain,
            "is_readonly": stmt.readonly,
        }


def eval_cond(cond: Cond, outcomes: Sequence[bool | None], autocommit: bool) -> bool:
    """Evaluate a validated batch condition; ``outcomes[i]`` is True/False/None (skipped)."""
    kind = cond.kind
    if kind == "ok":
        return outcomes[cond.step] is True
    if kind == "error":
        return outcomes[cond.step] is False
    if kind == "not":
        return not eval_cond(cond.children[0], outcomes, autocommit)
    if kind == "and":
        return all(eval_cond(c, outcomes, autocommit) for c in cond.children)
    if kind == "or":
        return any(eval_cond(c, outcomes, autocommit) for c in cond.children)
    return autocommit  # is_autocommit


@dataclass
class Cond:
    kind: str
    step: int = 0
    children: list[Cond] = field(default_factory=list)
