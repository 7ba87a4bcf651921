"""The recording sink: numbering of connections and databases, redaction, event writing.

Every interception (:mod:`.intercept_sqlite3`, :mod:`.intercept_libsql`,
:mod:`.intercept_sqlalchemy`) calls :func:`run_call` / :func:`end_call` around a driver
call; they decide which transaction boundaries to write (see :mod:`.recorder`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from ..backends.dbapi import sqlite3_adapted
from ..errors import dbapi_class, qualified_type_name, wrap_error
from ..sqltext import is_transaction_control, statement_kind, words
from ..values import encode_value
from .format import TraceWriter
from .seed import capture_seed

ENV_START = "TRACEPARITY_RECORD_START"


# -- redaction ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RedactionRule:
    """Replace parameter values before they are written.

    ``sql``: regex searched in the statement (``None``: every statement); ``params``:
    positions (0-based) or names to redact, empty = all; ``value``: regex a text value
    must match (e.g. an e-mail pattern), ``None`` = any value. Redacted values become a
    stable hash of the same storage class, so equal values stay equal and joins,
    uniqueness and ``GROUP BY`` still replay the same way.
    """

    sql: str | None = None
    params: tuple[int | str, ...] = ()
    value: str | None = None

    @classmethod
    def parse(cls, spec: str) -> RedactionRule:
        """Command-line form: ``sql=REGEX;params=0,email;value=REGEX`` (each part optional).

        A spec without ``=`` is taken as ``sql=SPEC`` (every parameter of matching statements).
        """
        if "=" not in spec.split(";", 1)[0]:
            spec = f"sql={spec}"
        fields: dict[str, str] = {}
        for part in spec.split(";"):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in ("sql", "params", "value"):
                raise ValueError(f"expected sql=REGEX, params=P1,P2 or value=REGEX, got {part!r}")
            fields[key] = value
        for key in ("sql", "value"):
            if key in fields:
                re.compile(fields[key])
        params: list[int | str] = []
        for item in filter(None, (p.strip() for p in fields.get("params", "").split(","))):
            params.append(int(item) if item.lstrip("-").isdigit() else item.lstrip(":@$"))
        return cls(sql=fields.get("sql") or None, params=tuple(params), value=fields.get("value") or None)

    def spec(self) -> str:
        parts = []
        if self.sql is not None:
            parts.append(f"sql={self.sql}")
        if self.params:
            parts.append("params=" + ",".join(map(str, self.params)))
        if self.value is not None:
            parts.append(f"value={self.value}")
        return ";".join(parts) or "sql=."


def _hashed(value: Any) -> Any:
    digest = hashlib.sha256(repr((type(value).__name__, value)).encode("utf-8", "surrogatepass")).digest()
    if isinstance(value, (bool, int)):
        return int.from_bytes(digest[:6], "big")
    if isinstance(value, float):
        return float(int.from_bytes(digest[:6], "big")) / 1024
    if isinstance(value, str):
        return f"redacted:{digest[:8].hex()}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return digest[:16]
    return value


class Redactor:
    def __init__(self, rules: Iterable[RedactionRule] = ()) -> None:
        self.rules = list(rules)
        self._sql = [
            (r, re.compile(r.sql) if r.sql else None, re.compile(r.value) if r.value else None) for r in self.rules
        ]

    def __bool__(self) -> bool:
        return bool(self.rules)

    def apply(self, sql: str, params: Any) -> Any:
        if not self.rules or params is None:
            return params
        active = [(r, v) for r, s, v in self._sql if s is None or s.search(sql)]
        if not active:
            return params
        if isinstance(params, dict):
            return {k: self._one(k, None, v, active) for k, v in params.items()}
        return [self._one(None, i, v, active) for i, v in enumerate(params)]

    @staticmethod
    def _one(name: str | None, index: int | None, value: Any, active: list[Any]) -> Any:
        for rule, value_re in active:
            if rule.params and index not in rule.params and name not in rule.params:
                continue
            if value_re is not None and not (isinstance(value, str) and value_re.search(value)):
                continue
            return _hashed(value)
        return value


# -- the sink ------------------------------------------------------------------------------
def _adapt(value: Any) -> Any:
    """What sqlite3 would bind: registered adapters and ``__conform__`` applied (else its text)."""
    if value is None or isinstance(value, (int, float, str, bytes, bytearray, memoryview)):
        return value
    found, adapted = sqlite3_adapted(value)
    return adapted if found else str(value)


def _encode_params(params: Any) -> Any:
    if params is None:
        return []
    if isinstance(params, dict):
        return {str(k): encode_value(_adapt(v)) for k, v in params.items()}
    if isinstance(params, (str, bytes)):
        raise TypeError("parameters must be a sequence or a mapping, not a string")
    return [encode_value(_adapt(v)) for v in params]


def _error_json(exc: BaseException) -> dict[str, Any]:
    orig = getattr(exc, "orig", exc)
    kind = wrap_error(exc, backend="recorder").kind  # the backends' own classification (error names too)
    data: dict[str, Any] = {"kind": kind, "dbapi_class": dbapi_class(exc), "exc_type": qualified_type_name(exc)}
    if "statements in progress" in str(orig):  # cursor lifetime: the replay marks this step
        data["in_progress"] = True
    return data


class Recorder:
    """Numbers connections and databases and writes events, one line each, thread-safe."""

    def __init__(
        self, writer: TraceWriter, *, redactor: Redactor | None = None, base_dir: str | None = None, stamp: bool = False
    ) -> None:
        self.writer = writer
        self.stamp = stamp  # part files of a multi-process recording carry a merge key (stripped on merge)
        self.redactor = redactor or Redactor()
        self.base_dir = os.path.realpath(base_dir or os.getcwd())
        self._lock = threading.RLock()
        self._conns = 0
        self._dbs: dict[str, tuple[str, str]] = {}
        self._labels: set[str] = set()
        self._ndb = 0
        self._temp_dirs: dict[str, str] = {}
        self._new_file: str | None = None  # real path of a file database seen for the first time
        self.started = float(os.environ.get(ENV_START) or time.time())
        self.closed = False

    # databases -------------------------------------------------------------------------
    def _database(self, database: Any, uri: bool) -> tuple[str, str, str | None]:
        """(db id, label, key) for what ``connect()`` opened; each private memory db is new.

        ``key`` identifies the file across processes (a digest of its real path, never
        written to the final trace); ``label`` is the path relative to the recording's
        directory, or the base name, made unique when two files would share it.
        """
        text = os.fsdecode(database) if isinstance(database, (bytes, os.PathLike)) else str(database)
        if "://" in text:  # a remote URL: its query (?authToken=...) and user info never reach the trace
            parts = urllib.parse.urlsplit(text)
            text = urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
        path, memory = text, text in ("", ":memory:")
        if uri or text.startswith("file:"):
            body, _, query = text[len("file:") :].partition("?") if text.startswith("file:") else (text, "", "")
            shared = "cache=shared" in query
            memory = "mode=memory" in query or body in ("", ":memory:")
            if memory and shared:
                label = f"file:{body}?mode=memory&cache=shared"
                return (*self._db_for(f"memory:{body}", label), f"memory:{body}")
            path = body
        if memory:
            db_id, label = self._db_for(None, ":memory:")
            return db_id, label, None
        real = os.path.realpath(path)
        key = hashlib.sha256(real.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        if key not in self._dbs:
            self._new_file = real
        return (*self._db_for(key, self._label(real)), key)

    def _label(self, real: str) -> str:
        """A name that does not change between recordings: relative to the recording's directory,
        or ``tmpN/...`` for files under the temporary root (``N`` numbers their directories by
        first appearance, so random directory names never reach the trace), else the base name."""
        try:
            label = os.path.relpath(real, self.base_dir)
        except ValueError:
            label = ".."
        if label.startswith(".."):
            temp = os.path.realpath(tempfile.gettempdir())
            parent = os.path.dirname(real)
            if real.startswith(temp + os.sep):
                if parent not in self._temp_dirs:
                    self._temp_dirs[parent] = f"tmp{len(self._temp_dirs) + 1}"
                label = f"{self._temp_dirs[parent]}/{os.path.basename(real)}"
            else:
                label = os.path.basename(real)
        return label.replace(os.sep, "/")

    def _db_for(self, key: str | None, label: str) -> tuple[str, str]:
        if key is not None and key in self._dbs:
            return self._dbs[key]
        self._ndb += 1
        db_id = f"db{self._ndb}"
        if key is not None:
            if not self.stamp:  # parts of a multi-process recording are made unique when merged
                label = unique_label(label, self._labels)
            self._dbs[key] = (db_id, label)
        return db_id, label

    def open(self, driver: str, database: Any, *, uri: bool = False, existed: bool | None = None) -> int:
        """``existed``: whether the file was there (non-empty) just before ``connect()``; a known
        database file that is gone again was deleted by the program, so the replay starts it afresh."""
        with self._lock:
            self._conns += 1
            conn = self._conns
            self._new_file = None
            db_id, label, key = self._database(database, uri)
            fresh = True if existed is False and key is not None and self._new_file is None else None
            seed = None
            if self._new_file is not None and _existed_before(self._new_file, self.started):
                seed = capture_seed(self._new_file)
                if seed and "skipped" in seed:
                    sys.stderr.write(f"traceparity record: {label}: {seed['skipped']}\n")
            self._write(
                "open",
                conn,
                db=db_id,
                target=label,
                driver=driver,
                seed=seed,
                fresh=fresh,
                key=key if self.stamp else None,
            )
            return conn

    # events ------------------------------------------------------------------------------
    def _write(self, op: str, conn: int, **fields: Any) -> None:
        if self.closed:
            return
        if self.stamp:
            fields["t"] = time.monotonic_ns()
            # pytest-xdist names its workers only after start-up: the merge orders parts by that name.
            fields["w"] = os.environ.get("PYTEST_XDIST_WORKER")
        self.writer.write_event(op, conn, **fields)

    def statement(
        self,
        conn: int,
        op: str,
        sql: str,
        params: Any,
        *,
        began: bool,
        rowcount: int | None = None,
        ended: str | None = None,
        error: BaseException | None = None,
        mode: str = "DEFERRED",
    ) -> None:
        """Write one statement, preceded by the implicit ``begin`` the driver issued for it."""
        if op == "executemany":
            encoded = [_encode_params(self.redactor.apply(sql, p)) for p in params]
        elif op == "executescript":
            encoded = None
        else:
            encoded = _encode_params(self.redactor.apply(sql, params))
        with self._lock:
            if ended:
                self._write(ended, conn)
            if began:
                self._write("begin", conn, mode=mode)
            self._write(
                op, conn, sql=sql, params=encoded, error=_error_json(error) if error else None, rowcount=rowcount
            )

    def simple(self, conn: int, op: str, **fields: Any) -> None:
        with self._lock:
            self._write(op, conn, **fields)

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                self.writer.close()


def file_exists_now(database: Any, uri: bool = False) -> bool | None:
    """Is the database file ``connect(database)`` would open there (``None``: not a file)?"""
    try:
        text = os.fsdecode(database) if isinstance(database, (bytes, os.PathLike)) else str(database)
    except (TypeError, ValueError):
        return None
    if "://" in text or text in ("", ":memory:"):
        return None
    if uri or text.startswith("file:"):
        body, _, query = text[len("file:") :].partition("?") if text.startswith("file:") else (text, "", "")
        if "mode=memory" in query or body in ("", ":memory:"):
            return None
        text = body
    return os.path.exists(text)


def _existed_before(path: str, started: float) -> bool:
    """True for a non-empty file last written before the recording started."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_size > 0 and st.st_mtime < started - 0.01  # the kernel's file clock is coarse


def unique_label(label: str, used: set[str]) -> str:
    """``label``, or ``label~2``, ``label~3`` ... when another database already has it."""
    candidate, n = label, 1
    while candidate in used:
        n += 1
        candidate = f"{label}~{n}"
    used.add(candidate)
    return candidate


def _in_tx(conn: Any) -> bool:
    try:
        return bool(conn.in_transaction)
    except Exception:
        return False


def _begin_mode(conn: Any) -> str:
    level = getattr(conn, "isolation_level", "DEFERRED")
    return str(level).upper() if str(level).upper() in ("IMMEDIATE", "EXCLUSIVE") else "DEFERRED"


def _run(
    rec: Recorder,
    owner: Any,
    conn_id: int,
    op: str,
    sql: str,
    params: Any,
    call: Callable[[], Any],
    *,
    script_commits: bool = False,
) -> Any:
    """Run one driver call and record it with the transaction transition it caused.

    ``script_commits``: the driver COMMITs a pending transaction before ``executescript``
    (``sqlite3`` does), so that commit is recorded first.
    """
    before = _in_tx(owner)
    error: Exception | None = None
    result: Any = None
    try:
        result = call()
        return result
    except Exception as exc:
        error = exc
        raise
    finally:
        after = _in_tx(owner)
        script = op == "executescript"
        rec.statement(
            conn_id,
            op,
            sql,
            params,
            error=error,
            mode=_begin_mode(owner),
            began=not script and _implicit_begin(sql, before, after),
            ended="commit" if script and script_commits and before else None,
            rowcount=None if script or error else dml_rowcount(sql, result),
        )


def dml_rowcount(sql: str, cursor: Any) -> int | None:
    """What the program saw as rowcount after INSERT/UPDATE/DELETE/REPLACE (the faithfulness
    check compares it); ``None`` for other statements and for RETURNING (counted while fetched)."""
    if statement_kind(sql) not in ("INSERT", "UPDATE", "DELETE", "REPLACE") or "RETURNING" in words(sql):
        return None
    count = getattr(cursor, "rowcount", None)
    return count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None


def _implicit_begin(sql: str, before: bool, after: bool) -> bool:
    return not before and after and not is_transaction_control(sql)


def _end(rec: Recorder, owner: Any, conn_id: int, op: str, call: Callable[[], Any]) -> Any:
    """commit()/rollback(): recorded only when a transaction was open; a driver that opens
    the next one at once (``sqlite3`` with ``autocommit=False``) gets that ``begin`` recorded."""
    before = _in_tx(owner)
    result = call()
    if before:
        rec.simple(conn_id, op)
        if _in_tx(owner):
            rec.simple(conn_id, "begin", mode=_begin_mode(owner))
    return result


class _Active:
    recorder: Recorder | None = None
