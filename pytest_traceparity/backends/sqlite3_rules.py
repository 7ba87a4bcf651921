"""What ``sqlite3`` itself does, for the sqlite3-shaped facade (:mod:`.dbapi`) and the recorder.

The implicit ``BEGIN`` rule, parameter adaptation, isolation levels, which exception a
caller sees, and the ``sqlite3.Connection`` features no other backend can offer. Kept
apart from the facade so each stays one idea (and under the module size limit).
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from ..errors import DatabaseError, add_note
from .base import Params

_LEVELS = ("", "DEFERRED", "IMMEDIATE", "EXCLUSIVE")
_LEADING_NOISE = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$))*", re.DOTALL)
_DML = re.compile(r"(insert|update|delete|replace)\b", re.IGNORECASE)

# sqlite3.Connection features that run Python inside the SQLite library: no backend can.
_IN_PROCESS_ONLY = (
    "create_aggregate",
    "create_collation",
    "create_window_function",
    "set_authorizer",
    "enable_load_extension",
    "load_extension",
    "backup",
    "iterdump",
    "blobopen",
    "serialize",
    "deserialize",
    "getlimit",
    "setlimit",
    "interrupt",
)


def is_dml(sql: str) -> bool:
    """sqlite3's rule for an implicit BEGIN: the first keyword is INSERT/UPDATE/DELETE/REPLACE."""
    match = _LEADING_NOISE.match(sql)
    rest = sql[match.end() :] if match else sql
    return bool(_DML.match(rest))


def sqlite3_adapted(value: Any) -> tuple[bool, Any]:
    """``(True, adapted)`` when a registered ``sqlite3`` adapter or ``__conform__`` applies to ``value``.

    The one place that asks sqlite3's adaptation protocol; the facade and the recorder
    differ only in what they do with a value nothing adapts.
    """
    adapter = sqlite3.adapters.get((type(value), sqlite3.PrepareProtocol))
    if adapter is not None:
        return True, adapter(value)
    conform = getattr(value, "__conform__", None)
    if conform is not None:
        adapted = conform(sqlite3.PrepareProtocol)
        if adapted is not None:
            return True, adapted
    return False, value


def adapt(value: Any) -> Any:
    """What ``sqlite3`` binds for ``value``: registered adapters and ``__conform__`` applied."""
    if value is None or isinstance(value, (int, float, str, bytes)):
        return value
    found, adapted = sqlite3_adapted(value)
    if found:
        return adapted
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value  # the backend decides (and its error is the one the caller would get)


def adapt_params(params: Any) -> Params:
    if params is None:
        return ()
    if isinstance(params, dict):
        return {k: adapt(v) for k, v in params.items()}
    if isinstance(params, (str, bytes)):
        raise sqlite3.ProgrammingError("parameters are of unsupported type")
    if hasattr(params, "keys") and hasattr(params, "__getitem__") and not isinstance(params, sqlite3.Row):
        return {k: adapt(params[k]) for k in params.keys()}  # noqa: SIM118 - a mapping-like, not a dict
    return tuple(adapt(v) for v in params)


def reraise(exc: DatabaseError) -> BaseException:
    """The exception the caller would have seen from the backend's own client."""
    original = exc.original
    orig = getattr(original, "orig", None)  # SQLAlchemy wraps the driver's error
    if isinstance(orig, BaseException):
        original = orig
    if original is None:
        return sqlite3.NotSupportedError(str(exc))
    if exc.dbapi_class == type(original).__name__ and not isinstance(original, sqlite3.Error):
        add_note(
            original,
            f"[traceparity] raised by backend {exc.backend!r} (error kind {exc.kind}); sqlite3 raises a "
            "sqlite3.Error subclass here, so code catching sqlite3 exceptions will not catch this",
        )
    return original


def _check_level(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.upper() not in _LEVELS:
        raise ValueError("isolation_level string must be '', 'DEFERRED', 'IMMEDIATE', or 'EXCLUSIVE'")
    return value.upper() if value else value


def _in_process_message(what: str, backend_id: str) -> str:
    return (
        f"sqlite3 {what} runs Python inside the SQLite library; this connection runs on backend "
        f"{backend_id!r}, which cannot do that. Run this test without --traceparity-redirect, or mark it "
        "@pytest.mark.traceparity_no_redirect"
    )
