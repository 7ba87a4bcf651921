"""One exception family for every backend, with a canonical error kind.

Two backends "fail the same way" when both the canonical kind (what went wrong) and the
DB-API class the caller can catch agree. The class is kept, never papered over: code
that catches ``sqlite3.IntegrityError`` breaks when a backend raises ``ValueError``.
"""

from __future__ import annotations

import os
import re
from typing import Any

ERROR_KINDS = (
    "constraint.unique",
    "constraint.primarykey",
    "constraint.notnull",
    "constraint.foreign_key",
    "constraint.check",
    "constraint.datatype",
    "constraint.trigger",
    "constraint.other",
    "no_such_table",
    "no_such_column",
    "no_such_function",
    "no_such_index",
    "already_exists",
    "syntax",
    "busy",
    "readonly",
    "misuse",
    "mismatch",
    "range",
    "toobig",
    "overflow",
    "interrupt",
    "transaction",
    "binding",
    "unsupported",
    "empty_statement",
    "protocol",
    "connection",
    "other",
)

# Order matters: the first pattern that matches the driver's message decides the kind.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE))
    for kind, pattern in (
        # Transport-level failures of a remote client come first: their text may quote SQL.
        ("protocol", r"api error: `status=4\d\d|JSON_DESERIALIZE|json error|Cannot deserialize"),
        # sqld refuses statements its analyser has no kind for (temp objects, VACUUM, PRAGMA
        # writes) with SQL_PARSE_ERROR "unsupported statement"; any other SQL_PARSE_ERROR is
        # a statement sqld's parser could not parse, i.e. a syntax error.
        ("unsupported", r"unsupported statement"),
        ("syntax", r"SQL_PARSE_ERROR|SQL string could not be parsed"),
        ("empty_statement", r"does not contain any statement|SQL_NO_STATEMENT"),
        ("constraint.unique", r"UNIQUE constraint failed"),
        ("constraint.primarykey", r"PRIMARY KEY constraint failed|PRIMARY KEY must be unique"),
        ("constraint.notnull", r"NOT NULL constraint failed|may not be NULL"),
        ("constraint.foreign_key", r"FOREIGN KEY constraint failed"),
        ("constraint.check", r"CHECK constraint failed"),
        ("constraint.datatype", r"cannot store \w+ value in \w+ column"),
        ("constraint.trigger", r"SQLITE_CONSTRAINT_TRIGGER|^RAISE\b"),
        ("no_such_table", r"no such table"),
        ("no_such_column", r"no such column|has no column named"),
        ("no_such_function", r"no such function|wrong number of arguments to function"),
        ("no_such_index", r"no such index|no such view|no such trigger"),
        ("already_exists", r"already exists"),
        # "sqlite3 parser error": libsql's client-side parser (embedded replicas parse before sending).
        ("syntax", r"syntax error|incomplete input|unrecognized token|near \".*\":|sqlite3 parser error"),
        ("busy", r"database is locked|database table is locked|SQLITE_BUSY"),
        ("readonly", r"readonly database|attempt to write a readonly|SQLITE_READONLY"),
        ("misuse", r"bad parameter or other API misuse|SQLITE_MISUSE|closed"),
        ("mismatch", r"datatype mismatch|SQLITE_MISMATCH"),
        ("range", r"column index out of range|SQLITE_RANGE|bind.*out of range"),
        ("toobig", r"string or blob too big|too big|SQLITE_TOOBIG"),
        ("overflow", r"integer overflow|too large to convert|Python int too large|out of range for i64"),
        ("interrupt", r"interrupted"),
        (
            "transaction",
            r"cannot (start|commit|rollback) .*transaction|no transaction is active"
            r"|within a transaction|cannot (commit|rollback) - no transaction|no such savepoint"
            # libsql's client-side transaction state machine (COMMIT without BEGIN, nested BEGIN...)
            r"|connection has reached an invalid state",
        ),
        ("binding", r"Incorrect number of bindings|parameters|binding parameter|type .* is not supported"),
        ("constraint.other", r"constraint failed|SQLITE_CONSTRAINT"),
        (
            "connection",
            r"connection refused|error sending request|failed to connect|connection reset|stream expired"
            r"|timed out|broken pipe",
        ),
    )
)


def classify_message(message: str) -> str:
    """Canonical kind for a driver's error message (``other`` when none fits)."""
    for kind, pattern in _PATTERNS:
        if pattern.search(message):
            return kind
    return "other"


def qualified_type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    if module in ("builtins", "__builtin__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def dbapi_class(exc: BaseException) -> str:
    """The PEP 249 class a caller would catch (``IntegrityError``...), else the raw type name.

    SQLAlchemy wraps the driver error; its own class mirrors the PEP 249 name, so both
    ``sqlite3.IntegrityError`` and ``sqlalchemy.exc.IntegrityError`` map to ``IntegrityError``.
    """
    pep249 = (
        "IntegrityError",
        "OperationalError",
        "ProgrammingError",
        "DataError",
        "NotSupportedError",
        "InternalError",
        "InterfaceError",
        "DatabaseError",
        "Warning",
    )
    for cls in type(exc).__mro__:
        if cls.__name__ in pep249:
            return cls.__name__
    return type(exc).__name__


class TraceparityError(Exception):
    """Base of every error this plugin raises on purpose."""


class UsageError(TraceparityError):
    """A configuration or command-line mistake the user can fix; shown without a traceback."""


class BackendUnavailable(TraceparityError):
    """A backend cannot run here (missing server, missing package); says why and what to do."""


class SqldUnavailable(BackendUnavailable):
    """The requested way to get an sqld server cannot work here; the message says why."""


class ResetRefused(BackendUnavailable):
    """Refusing to wipe a database the harness did not create."""


class CaseError(UsageError):
    """A malformed conformance case file; the message names the file and the case."""


class RedirectError(TraceparityError):
    """A connection the test asked for cannot be routed to its backend; says why and what to do."""


class UnfaithfulReplay(TraceparityError):
    """The reference replay departs from the program in a way no documented cause explains."""


REGENERATE_HINT = "re-record it with: traceparity record -o FILE -- CMD ..."


class TraceFormatError(TraceparityError):
    """A trace file that cannot be replayed; names the file, line and field."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        line: int | None,
        message: str,
        *,
        field_name: str | None = None,
        hint: str = REGENERATE_HINT,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.field_name = field_name
        self.hint = hint
        where = f"{self.path}:{line}" if line is not None else self.path
        what = f"field '{field_name}': " if field_name else ""
        super().__init__(f"{where}: {what}{message}; {hint}")


class ReplayError(TraceparityError):
    """The replay itself could not go on (not a divergence)."""


class GoldenError(TraceparityError):
    """A golden that is missing, unreadable or does not belong to its trace."""


class DatabaseError(TraceparityError):
    """An SQL statement failed on some backend.

    ``kind`` is the canonical class, ``dbapi_class`` the PEP 249 class the caller would
    catch, ``exc_type`` the fully qualified type that was raised, ``original`` the
    exception itself.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        backend: str,
        exc_type: str,
        dbapi_class: str,
        original: BaseException | None = None,
        sql: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.backend = backend
        self.exc_type = exc_type
        self.dbapi_class = dbapi_class
        self.original = original
        self.sql = sql

    def __str__(self) -> str:
        where = f" [{self.backend}]" if self.backend else ""
        return f"{self.kind}{where}: {self.message} (raised {self.exc_type})"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "dbapi_class": self.dbapi_class, "exc_type": self.exc_type}


def _driver_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError keeps the driver's error here
    if isinstance(orig, BaseException):
        return str(orig)
    return str(exc)


def wrap_error(exc: BaseException, *, backend: str, sql: str | None = None) -> DatabaseError:
    """Turn any driver exception into a :class:`DatabaseError` with a canonical kind."""
    if isinstance(exc, DatabaseError):
        return exc
    message = _driver_message(exc)
    errorname = getattr(getattr(exc, "orig", exc), "sqlite_errorname", None)
    kind = classify_message(message)
    if kind == "other" and isinstance(errorname, str):
        kind = classify_message(errorname)
    return DatabaseError(
        message,
        kind=kind,
        backend=backend,
        exc_type=qualified_type_name(exc),
        dbapi_class=dbapi_class(exc),
        original=exc,
        sql=sql,
    )


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)``, also on Python 3.10 (no ``add_note`` there; the note is kept in ``__notes__``)."""
    notes = getattr(exc, "__notes__", None)
    if not isinstance(notes, list):
        notes = []
        exc.__notes__ = notes  # type: ignore[attr-defined]
    notes.append(note)


def no_sync_error(backend_id: str) -> DatabaseError:
    """``sync()`` on a backend that has no primary to pull from."""
    return DatabaseError(
        f"backend {backend_id!r} has no sync(); only replica backends do",
        kind="misuse",
        backend=backend_id,
        exc_type="NotImplementedError",
        dbapi_class="NotSupportedError",
    )
