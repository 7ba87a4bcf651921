"""A minimal ctypes binding to the SQLite C library.

Why not the :mod:`sqlite3` module: sqld answers things the module cannot tell us —
column decltypes, parameter names, ``sqlite3_stmt_readonly``/``isexplain`` for
``describe``, the primary error code of a failure — and it executes statements one at a
time on a connection whose transaction survives across HTTP requests. We load the very
library the :mod:`sqlite3` module is linked against, so both agree on the SQLite version.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

SQLITE_OK = 0
SQLITE_ROW = 100
SQLITE_DONE = 101
SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB, SQLITE_NULL = 1, 2, 3, 4, 5
SQLITE_OPEN_READWRITE = 0x2
SQLITE_OPEN_CREATE = 0x4
SQLITE_OPEN_URI = 0x40
SQLITE_OPEN_FULLMUTEX = 0x10000
SQLITE_TRANSIENT = ctypes.c_void_p(-1)
SQLITE_LIMIT_ATTACHED = 7

# Primary result codes, named the way sqld names them in Hrana errors.
PRIMARY_CODE_NAMES = {
    1: "SQLITE_ERROR",
    2: "SQLITE_INTERNAL",
    3: "SQLITE_PERM",
    4: "SQLITE_ABORT",
    5: "SQLITE_BUSY",
    6: "SQLITE_LOCKED",
    7: "SQLITE_NOMEM",
    8: "SQLITE_READONLY",
    9: "SQLITE_INTERRUPT",
    10: "SQLITE_IOERR",
    11: "SQLITE_CORRUPT",
    12: "SQLITE_NOTFOUND",
    13: "SQLITE_FULL",
    14: "SQLITE_CANTOPEN",
    15: "SQLITE_PROTOCOL",
    17: "SQLITE_SCHEMA",
    18: "SQLITE_TOOBIG",
    19: "SQLITE_CONSTRAINT",
    20: "SQLITE_MISMATCH",
    21: "SQLITE_MISUSE",
    22: "SQLITE_NOLFS",
    23: "SQLITE_AUTH",
    25: "SQLITE_RANGE",
    26: "SQLITE_NOTADB",
}

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


class SqliteError(Exception):
    """A failure reported by SQLite, with its primary and extended result codes."""

    def __init__(self, message: str, code: int, extended_code: int, offset: int = -1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.extended_code = extended_code
        self.offset = offset

    @property
    def code_name(self) -> str:
        return PRIMARY_CODE_NAMES.get(self.code & 0xFF, "SQLITE_UNKNOWN")


class SqliteLibraryError(RuntimeError):
    """No loadable SQLite library is the one :mod:`sqlite3` uses; the message says what was tried."""


def _candidate_paths() -> list[str]:
    """Where the SQLite library used by this Python's ``_sqlite3`` module lives, best first.

    First the extension itself: symbols looked up through its handle come from the
    extension when SQLite is linked in statically, else from the very library it was
    linked against (dlsym searches an object's dependencies), so this one candidate covers
    both without guessing file names. Then the ``libsqlite3`` files mapped into the process
    after importing it, the copy shipped beside Python on Windows, and ``find_library``
    last: a library found by name may be a second SQLite in the same process.
    """
    paths: list[str] = []
    try:
        import _sqlite3

        if getattr(_sqlite3, "__file__", None):
            paths.append(_sqlite3.__file__)
    except ImportError:
        pass
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.rsplit(" ", 1)[-1].strip()
                if os.path.basename(path).startswith("libsqlite3") and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    if sys.platform == "win32":
        paths.append(os.path.join(sys.base_prefix, "DLLs", "sqlite3.dll"))
    found = ctypes.util.find_library("sqlite3")
    if found and found not in paths:
        paths.append(found)
    return paths


def _bind(lib: ctypes.CDLL) -> None:
    vp, ip, c_int, c_i64, c_dbl, c_char_p = (
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_int,
        ctypes.c_int64,
        ctypes.c_double,
        ctypes.c_char_p,
    )
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "sqlite3_open_v2": (c_int, [c_char_p, ip, c_int, c_char_p]),
        "sqlite3_close_v2": (c_int, [vp]),
        "sqlite3_errmsg": (c_char_p, [vp]),
        "sqlite3_extended_errcode": (c_int, [vp]),
        "sqlite3_extended_result_codes": (c_int, [vp, c_int]),
        "sqlite3_busy_timeout": (c_int, [vp, c_int]),
        "sqlite3_prepare_v2": (c_int, [vp, vp, c_int, ip, ip]),
        "sqlite3_finalize": (c_int, [vp]),
        "sqlite3_step": (c_int, [vp]),
        "sqlite3_reset": (c_int, [vp]),
        "sqlite3_bind_parameter_count": (c_int, [vp]),
        "sqlite3_bind_parameter_name": (c_char_p, [vp, c_int]),
        "sqlite3_bind_null": (c_int, [vp, c_int]),
        "sqlite3_bind_int64": (c_int, [vp, c_int, c_i64]),
        "sqlite3_bind_double": (c_int, [vp, c_int, c_dbl]),
        "sqlite3_bind_text": (c_int, [vp, c_int, c_char_p, c_int, vp]),
        "sqlite3_bind_blob": (c_int, [vp, c_int, c_char_p, c_int, vp]),
        "sqlite3_column_count": (c_int, [vp]),
        "sqlite3_column_name": (c_char_p, [vp, c_int]),
        "sqlite3_column_decltype": (c_char_p, [vp, c_int]),
        "sqlite3_column_type": (c_int, [vp, c_int]),
        "sqlite3_column_int64": (c_i64, [vp, c_int]),
        "sqlite3_column_double": (c_dbl, [vp, c_int]),
        "sqlite3_column_text": (vp, [vp, c_int]),
        "sqlite3_column_blob": (vp, [vp, c_int]),
        "sqlite3_column_bytes": (c_int, [vp, c_int]),
        "sqlite3_changes": (c_int, [vp]),
        "sqlite3_last_insert_rowid": (c_i64, [vp]),
        "sqlite3_get_autocommit": (c_int, [vp]),
        "sqlite3_stmt_readonly": (c_int, [vp]),
        "sqlite3_stmt_isexplain": (c_int, [vp]),
        "sqlite3_libversion": (c_char_p, []),
        "sqlite3_interrupt": (None, [vp]),
        "sqlite3_limit": (c_int, [vp, c_int, c_int]),
        "sqlite3_busy_handler": (c_int, [vp, vp, vp]),
        "sqlite3_exec": (c_int, [vp, c_char_p, vp, vp, vp]),
        "sqlite3_wal_autocheckpoint": (c_int, [vp, c_int]),
        "sqlite3_wal_hook": (vp, [vp, vp, vp]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    if hasattr(lib, "sqlite3_error_offset"):
        lib.sqlite3_error_offset.restype = c_int
        lib.sqlite3_error_offset.argtypes = [vp]
    for name in ("sqlite3_clear_bindings", "sqlite3_expired"):  # for the statement cache
        if hasattr(lib, name):
            getattr(lib, name).restype = c_int
            getattr(lib, name).argtypes = [vp]
    if hasattr(lib, "sqlite3_txn_state"):  # SQLite 3.34+
        lib.sqlite3_txn_state.restype = c_int
        lib.sqlite3_txn_state.argtypes = [vp, c_char_p]


# Calls that only read or set a field of a connection or statement: through a PyDLL they
# keep the GIL. Through the CDLL every call released and re-took it, and with several
# request threads each release let another thread in: thread switches per column read.
# Everything that may do I/O, wait or run long (open, close, prepare, step, exec,
# finalize, interrupt) still releases it.
_QUICK_CALLS = (
    "sqlite3_errmsg",
    "sqlite3_extended_errcode",
    "sqlite3_extended_result_codes",
    "sqlite3_busy_timeout",
    "sqlite3_bind_parameter_count",
    "sqlite3_bind_parameter_name",
    "sqlite3_bind_null",
    "sqlite3_bind_int64",
    "sqlite3_bind_double",
    "sqlite3_bind_text",
    "sqlite3_bind_blob",
    "sqlite3_column_count",
    "sqlite3_column_name",
    "sqlite3_column_decltype",
    "sqlite3_column_type",
    "sqlite3_column_int64",
    "sqlite3_column_double",
    "sqlite3_column_text",
    "sqlite3_column_blob",
    "sqlite3_column_bytes",
    "sqlite3_changes",
    "sqlite3_last_insert_rowid",
    "sqlite3_get_autocommit",
    "sqlite3_stmt_readonly",
    "sqlite3_stmt_isexplain",
    "sqlite3_limit",
    "sqlite3_busy_handler",
    "sqlite3_wal_autocheckpoint",
    "sqlite3_wal_hook",
    "sqlite3_error_offset",
    "sqlite3_txn_state",
    "sqlite3_clear_bindings",
    "sqlite3_expired",
    "sqlite3_reset",
)


def _keep_gil_for_quick_calls(lib: ctypes.CDLL, path: str) -> None:
    try:
        quick = ctypes.PyDLL(path)
        _bind(quick)
    except (OSError, AttributeError):  # keep the GIL-releasing functions
        return
    for name in _QUICK_CALLS:
        if hasattr(lib, name) and hasattr(quick, name):
            setattr(lib, name, getattr(quick, name))


STMT_CACHE_SIZE = 16  # statements kept per connection
STMT_CACHE_TEXT_MAX = 4096  # longer texts (bulk literals) are never kept
_CACHE_STATEMENTS = True  # off when the library lacks sqlite3_expired (see library())

BUSY_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
WAL_HOOK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int)


def load_library(candidates: Sequence[str], expected_version: str) -> ctypes.CDLL:
    """The first candidate that loads, binds and reports ``expected_version``.

    A library with another version is refused rather than used: the stand-in would then
    run a different SQLite from the :mod:`sqlite3` module in the same process (and from
    the reference backend), and results would differ for that reason alone.
    """
    problems: list[str] = []
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
            _bind(lib)
        except (OSError, AttributeError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        version = (lib.sqlite3_libversion() or b"?").decode()
        if version != expected_version:
            problems.append(f"{path}: SQLite {version}, but Python's sqlite3 module uses {expected_version}")
            continue
        _keep_gil_for_quick_calls(lib, path)
        return lib
    raise SqliteLibraryError(
        "traceparity stand-in: cannot load the SQLite C library that Python's sqlite3 module uses "
        f"(SQLite {expected_version}) through ctypes (tried: {'; '.join(problems) or 'nothing found'}); "
        "use a Python whose _sqlite3 links SQLite dynamically or exports its symbols, "
        "or a real sqld with --sqld=binary/docker/url"
    )


def library() -> ctypes.CDLL:
    """Load (once) the SQLite library :mod:`sqlite3` uses; explain what to do when that fails."""
    global _lib, _CACHE_STATEMENTS
    with _lib_lock:
        if _lib is None:
            import sqlite3

            _lib = load_library(_candidate_paths(), sqlite3.sqlite_version)
            _CACHE_STATEMENTS = hasattr(_lib, "sqlite3_expired") and hasattr(_lib, "sqlite3_clear_bindings")
        return _lib


def sqlite_version() -> str:
    return (library().sqlite3_libversion() or b"?").decode()


class Column:
    __slots__ = ("decltype", "name")

    def __init__(self, name: str | None, decltype: str | None) -> None:
        self.name = name
        self.decltype = decltype


class Statement:
    """One prepared statement; always finalize it (use it as a context manager)."""

    def __init__(self, conn: Connection, handle: ctypes.c_void_p, tail_offset: int) -> None:
        self.conn = conn
        self.handle = handle
        self.tail_offset = tail_offset
        self.cache_key: str | None = None  # set by Connection.prepare_cached

    def __enter__(self) -> Statement:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finalize()

    def finalize(self) -> None:
        """Done with the statement: a cached one is reset and kept for its SQL text."""
        if not self.handle:
            return
        if self.cache_key is not None and self.conn.keep(self):
            return
        self.conn.lib.sqlite3_finalize(self.handle)
        self.handle = ctypes.c_void_p()

    @property
    def readonly(self) -> bool:
        return bool(self.conn.lib.sqlite3_stmt_readonly(self.handle))

    @property
    def is_explain(self) -> bool:
        return bool(self.conn.lib.sqlite3_stmt_isexplain(self.handle))

    def parameter_count(self) -> int:
        return int(self.conn.lib.sqlite3_bind_parameter_count(self.handle))

    def parameter_name(self, index: int) -> str | None:
        raw = self.conn.lib.sqlite3_bind_parameter_name(self.handle, index)
        return None if raw is None else raw.decode("utf-8", "replace")

    def columns(self) -> list[Column]:
        lib = self.conn.lib
        cols = []
        for i in range(lib.sqlite3_column_count(self.handle)):
            name = lib.sqlite3_column_name(self.handle, i)
            decl = lib.sqlite3_column_decltype(self.handle, i)
            cols.append(
                Column(
                    None if name is None else name.decode("utf-8", "replace"),
                    None if decl is None else decl.decode("utf-8", "replace"),
                )
            )
        return cols

    def bind(self, index: int, value: Any) -> None:
        lib, h = self.conn.lib, self.handle
        if value is None:
            rc = lib.sqlite3_bind_null(h, index)
        elif isinstance(value, bool):
            rc = lib.sqlite3_bind_int64(h, index, int(value))
        elif isinstance(value, int):
            rc = lib.sqlite3_bind_int64(h, index, value)
        elif isinstance(value, float):
            rc = lib.sqlite3_bind_double(h, index, value)
        elif isinstance(value, str):
            data = value.encode("utf-8", "surrogatepass")
            rc = lib.sqlite3_bind_text(h, index, data, len(data), SQLITE_TRANSIENT)
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            rc = lib.sqlite3_bind_blob(h, index, data, len(data), SQLITE_TRANSIENT)
        else:  # pragma: no cover - callers only pass the five SQLite types
            raise TypeError(f"cannot bind {type(value).__name__}")
        if rc != SQLITE_OK:
            raise self.conn.error(rc)

    def step(self) -> bool:
        """Advance; True when a row is available, False when done."""
        if not self.handle or self.conn.closed:
            raise SqliteError("statement used after its connection was closed", 21, 21)
        rc = self.conn.lib.sqlite3_step(self.handle)
        if rc == SQLITE_ROW:
            return True
        if rc == SQLITE_DONE:
            return False
        raise self.conn.error(rc)

    def row(self, ncols: int) -> list[Any]:
        lib, h = self.conn.lib, self.handle
        out: list[Any] = []
        for i in range(ncols):
            kind = lib.sqlite3_column_type(h, i)
            if kind == SQLITE_INTEGER:
                out.append(int(lib.sqlite3_column_int64(h, i)))
            elif kind == SQLITE_FLOAT:
                out.append(float(lib.sqlite3_column_double(h, i)))
            elif kind == SQLITE_TEXT:
                ptr = lib.sqlite3_column_text(h, i)
                size = lib.sqlite3_column_bytes(h, i)
                raw = ctypes.string_at(ptr, size) if ptr else b""
                out.append(raw.decode("utf-8", "replace"))
            elif kind == SQLITE_BLOB:
                ptr = lib.sqlite3_column_blob(h, i)
                size = lib.sqlite3_column_bytes(h, i)
                out.append(ctypes.string_at(ptr, size) if ptr else b"")
            else:
                out.append(None)
        return out


class ConnectionClosed(SqliteError):
    """The connection was closed (by its owner or by a namespace delete)."""

    def __init__(self) -> None:
        super().__init__("database connection is closed", 21, 21)


class Connection:
    """One SQLite connection (a Hrana stream owns exactly one).

    Only one thread uses a connection at a time (the stand-in's stream ownership
    guarantees it); :meth:`close` and :meth:`interrupt` are the two calls another thread
    may make, and they are serialized on ``_life`` so that neither ever touches a freed
    handle, and a second close is a no-op instead of a double free.
    """

    def __init__(self, path: str, busy_timeout_ms: int = 5000) -> None:
        self.lib = library()
        self._life = threading.Lock()
        # Held by whoever runs statements on this connection (a request, or a thief rolling
        # back an expired write transaction); reentrant so the owner may close it.
        self.use_lock = threading.RLock()
        self.txn_slot: Any = None  # the write-lock slot this connection holds (txn.py)
        self._busy_cb: Any = None
        self._stmt_cache: dict[str, Statement] = {}
        self._wal_cb: Any = None
        self.handle = ctypes.c_void_p()
        flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_URI
        rc = self.lib.sqlite3_open_v2(os.fsencode(path), ctypes.byref(self.handle), flags, None)
        if rc != SQLITE_OK:
            err = self.error(rc)
            self.close()
            raise err
        self.lib.sqlite3_extended_result_codes(self.handle, 1)
        self.lib.sqlite3_busy_timeout(self.handle, busy_timeout_ms)
        # Safety net under the SQL gate: SQLite refuses any ATTACH before opening a file.
        self.lib.sqlite3_limit(self.handle, SQLITE_LIMIT_ATTACHED, 0)

    def close(self) -> None:
        with self.use_lock, self._life:
            self.clear_statements()
            handle, self.handle = self.handle, ctypes.c_void_p()
            if handle:
                # close_v2: statements still alive keep a zombie connection until finalized
                self.lib.sqlite3_close_v2(handle)

    def set_busy_handler(self, handler: Any) -> None:
        """``handler(retries) -> int`` replaces the busy timeout (1 = retry, 0 = SQLITE_BUSY)."""

        def trampoline(_arg: Any, retries: int) -> int:
            try:
                return int(handler(retries))
            except Exception:  # never let an exception cross the C boundary
                return 0

        self._busy_cb = BUSY_HANDLER(trampoline)  # kept alive as long as the connection
        self.lib.sqlite3_busy_handler(self._live(), ctypes.cast(self._busy_cb, ctypes.c_void_p), None)

    def set_wal_hook(self, handler: Any) -> None:
        """``handler(frames)`` runs after each commit with the number of frames in the WAL.

        It replaces SQLite's own autocheckpoint hook (``wal_autocheckpoint``) on this connection.
        """

        def trampoline(_arg: Any, _db: Any, _name: Any, frames: int) -> int:
            with contextlib.suppress(Exception):  # never let an exception cross the C boundary
                handler(frames)
            return SQLITE_OK

        self._wal_cb = WAL_HOOK(trampoline)
        self.lib.sqlite3_wal_hook(self._live(), ctypes.cast(self._wal_cb, ctypes.c_void_p), None)

    def wal_autocheckpoint(self, frames: int) -> None:
        """``PRAGMA wal_autocheckpoint`` without preparing a statement."""
        rc = self.lib.sqlite3_wal_autocheckpoint(self._live(), frames)
        if rc != SQLITE_OK:
            raise self.error(rc)

    def exec(self, sql: str) -> None:
        """Run statements that return nothing (settings), in one call into SQLite."""
        rc = self.lib.sqlite3_exec(self._live(), sql.encode("utf-8"), None, None, None)
        if rc != SQLITE_OK:
            raise self.error(rc)

    def txn_state(self) -> int:
        """0 none, 1 read, 2 write (``sqlite3_txn_state`` on ``main``); -1 if unknown."""
        fn = getattr(self.lib, "sqlite3_txn_state", None)
        if fn is None:
            return -1
        return int(fn(self._live(), b"main"))

    def interrupt(self) -> None:
        """Make the statement running on this connection (in another thread) stop soon."""
        with self._life:
            if self.handle:
                self.lib.sqlite3_interrupt(self.handle)

    @property
    def closed(self) -> bool:
        return not self.handle

    def _live(self) -> ctypes.c_void_p:
        handle = self.handle
        if not handle:
            raise ConnectionClosed()
        return handle

    def error(self, rc: int) -> SqliteError:
        if not self.handle:
            return SqliteError("database connection is closed", rc & 0xFF, rc)
        msg = (self.lib.sqlite3_errmsg(self.handle) or b"").decode("utf-8", "replace")
        ext = int(self.lib.sqlite3_extended_errcode(self.handle)) or rc
        offset = -1
        if hasattr(self.lib, "sqlite3_error_offset"):
            offset = int(self.lib.sqlite3_error_offset(self.handle))
        return SqliteError(msg, ext & 0xFF, ext, offset)

    def prepare(self, sql: str, start: int = 0) -> Statement | None:
        """Prepare the first statement of ``sql[start:]`` (byte offsets); None if only blanks."""
        data = sql.encode("utf-8", "surrogatepass")
        # the bytes object's own buffer (NUL-terminated, alive while ``data`` is): no copy
        base: int = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0
        handle = ctypes.c_void_p()
        tail = ctypes.c_void_p()
        rc = self.lib.sqlite3_prepare_v2(
            self._live(), base + start, len(data) - start, ctypes.byref(handle), ctypes.byref(tail)
        )
        if rc != SQLITE_OK:
            raise self.error(rc)
        tail_offset = (tail.value - base) if tail.value else len(data)
        if not handle.value:
            return None
        return Statement(self, handle, tail_offset)

    def prepare_cached(self, sql: str) -> Statement | None:
        """Like :meth:`prepare`, reusing this connection's statement for the same text
        within one explicit transaction.

        A client repeats texts in a transaction (``describe`` then run, a loop); preparing
        was a fifth of such a statement's server time. Reuse must be invisible, so
        statements are kept only while a transaction has its snapshot (``txn_state`` read
        or write): no other connection's schema change can reach this connection's schema
        then, and its own DDL, a ROLLBACK TO undoing DDL or a PRAGMA changing code
        generation make SQLite expire the statement (prepared anew here). The cache is
        emptied when the transaction ends (:meth:`clear_statements`): outside a transaction
        a connection notices another's schema change only at its next read, without
        expiring its statements, so a kept one could describe a stale schema.
        """
        cache = self._stmt_cache
        if cache:
            stmt = cache.pop(sql, None)
            if stmt is not None:
                if not self.lib.sqlite3_expired(stmt.handle):
                    return stmt
                stmt.cache_key = None
                stmt.finalize()
        stmt = self.prepare(sql)
        if stmt is not None and _CACHE_STATEMENTS and len(sql) <= STMT_CACHE_TEXT_MAX:
            stmt.cache_key = sql
        return stmt

    def has_statements(self) -> bool:
        return bool(self._stmt_cache)

    def clear_statements(self) -> None:
        """Finalize every kept statement (the transaction ended, or the connection closes)."""
        cached, self._stmt_cache = self._stmt_cache, {}
        for stmt in cached.values():
            stmt.cache_key = None
            stmt.finalize()

    def keep(self, stmt: Statement) -> bool:
        """Put a statement back into the cache (reset); False when it must be finalized."""
        key = stmt.cache_key
        if key is None or not self.handle or key in self._stmt_cache or self.txn_state() < 1:
            return False
        if len(self._stmt_cache) >= STMT_CACHE_SIZE:
            oldest = next(iter(self._stmt_cache))
            evicted = self._stmt_cache.pop(oldest)
            evicted.cache_key = None
            evicted.finalize()
        self.lib.sqlite3_reset(stmt.handle)
        self.lib.sqlite3_clear_bindings(stmt.handle)
        self._stmt_cache[key] = stmt
        return True

    def changes(self) -> int:
        return int(self.lib.sqlite3_changes(self._live()))

    def last_insert_rowid(self) -> int:
        return int(self.lib.sqlite3_last_insert_rowid(self._live()))

    @property
    def autocommit(self) -> bool:
        return bool(self.lib.sqlite3_get_autocommit(self._live()))

    def execute_simple(self, sql: str, params: Sequence[Any] = ()) -> list[list[Any]]:
        """Run one statement to completion and return its rows (for internal housekeeping)."""
        stmt = self.prepare(sql)
        if stmt is None:
            return []
        with stmt:
            for i, value in enumerate(params, start=1):
                stmt.bind(i, value)
            ncols = len(stmt.columns())
            rows = []
            while stmt.step():
                rows.append(stmt.row(ncols))
            return rows
