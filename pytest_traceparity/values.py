"""The one value model every backend's output is normalized into.

Backends hand back Python values that look alike but are not (a REAL that prints like an
INTEGER, ``-0.0`` vs ``0.0``, ``memoryview`` vs ``bytes``). Comparing them exactly needs a
canonical, typed form that also survives JSON for traces and goldens.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SqlValue = None | int | float | str | bytes
"""A value as SQLite stores it: NULL, INTEGER, REAL, TEXT or BLOB."""

Params = Sequence[Any] | Mapping[str, Any]
"""A statement's parameters: positional (``?``) or named (``:name``)."""

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1


def storage_class(value: Any) -> str:
    """SQLite storage class of a Python value returned by a driver."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "integer"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "real"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "blob"
    raise TypeError(f"not an SQL value: {type(value).__name__} {value!r}")


def plain(value: Any) -> SqlValue:
    """Coerce driver-specific value types to plain Python (``memoryview`` -> ``bytes``)."""
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, bool):
        return int(value)
    return value  # type: ignore[no-any-return]


def encode_value(value: Any) -> dict[str, Any]:
    """Typed JSON encoding: exact for i64 beyond 2**53, blobs and non-finite floats."""
    kind = storage_class(value)
    if kind == "null":
        return {"null": True}
    if kind == "integer":
        return {"int": str(int(value))}
    if kind == "real":
        return {"real": float_repr(value)}
    if kind == "text":
        return {"text": value}
    return {"blob": base64.b64encode(bytes(value)).decode("ascii")}


def decode_value(encoded: Any) -> SqlValue:
    """Inverse of :func:`encode_value`; raises ``ValueError`` naming what is wrong."""
    if not isinstance(encoded, dict) or len(encoded) != 1:
        raise ValueError(f"typed value must be an object with one key, got {encoded!r}")
    ((key, raw),) = encoded.items()
    if key == "null":
        return None
    if key == "int":
        if not isinstance(raw, str):
            raise ValueError(f"'int' must be a decimal string, got {raw!r}")
        return int(raw)
    if key == "real":
        if not isinstance(raw, str):
            raise ValueError(f"'real' must be a float repr string, got {raw!r}")
        return float(raw)
    if key == "text":
        if not isinstance(raw, str):
            raise ValueError(f"'text' must be a string, got {raw!r}")
        return raw
    if key == "blob":
        if not isinstance(raw, str):
            raise ValueError(f"'blob' must be base64 text, got {raw!r}")
        return base64.b64decode(raw, validate=True)
    raise ValueError(f"unknown typed value key {key!r} (expected null/int/real/text/blob)")


def float_repr(value: float) -> str:
    """Exact, round-trippable text for a float, keeping -0.0, inf and nan apart."""
    if math.isnan(value):
        return "nan"
    return repr(float(value))


def canonical(value: Any) -> tuple[str, Any]:
    """A hashable, exactly comparable form: storage class plus an exact payload."""
    kind = storage_class(value)
    if kind == "real":
        return ("real", float_repr(value))
    if kind == "blob":
        return ("blob", bytes(value))
    if kind == "integer":
        return ("integer", int(value))
    return (kind, value)


def display(value: Any) -> str:
    """Short human text for diffs: shows the storage class so 1 and 1.0 differ visibly."""
    kind = storage_class(value)
    if kind == "null":
        return "NULL"
    if kind == "integer":
        return f"{int(value)} (integer)"
    if kind == "real":
        return f"{float_repr(value)} (real)"
    if kind == "text":
        text = value if len(value) <= 60 else value[:57] + "..."
        return f"{text!r} (text)"
    data = bytes(value)
    head = data[:16].hex()
    return f"x'{head}{'...' if len(data) > 16 else ''}' ({len(data)} bytes, blob)"


Row = tuple[SqlValue, ...]


@dataclass
class Result:
    """What one statement produced, as the uniform ``db`` API returns it."""

    columns: tuple[str, ...] = ()
    rows: list[Row] = field(default_factory=list)
    rowcount: int = -1
    lastrowid: int | None = None

    def scalar(self) -> SqlValue:
        """First column of the first row (``None`` when there is no row)."""
        return self.rows[0][0] if self.rows and self.rows[0] else None

    def as_dicts(self) -> list[dict[str, SqlValue]]:
        return [dict(zip(self.columns, row)) for row in self.rows]

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "rows": [[encode_value(v) for v in row] for row in self.rows],
            "rowcount": self.rowcount,
            "lastrowid": self.lastrowid,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        return cls(
            columns=tuple(data.get("columns", ())),
            rows=[tuple(decode_value(v) for v in row) for row in data.get("rows", [])],
            rowcount=int(data.get("rowcount", -1)),
            lastrowid=data.get("lastrowid"),
        )


def encode_params(params: Any) -> Any:
    """Typed encoding of statement parameters (sequence or mapping)."""
    if params is None:
        return []
    if isinstance(params, dict):
        return {str(k): encode_value(v) for k, v in params.items()}
    return [encode_value(v) for v in params]


def decode_params(encoded: Any) -> tuple[SqlValue, ...] | dict[str, SqlValue]:
    if isinstance(encoded, dict):
        return {k: decode_value(v) for k, v in encoded.items()}
    if isinstance(encoded, list):
        return tuple(decode_value(v) for v in encoded)
    raise ValueError(f"params must be a list or an object, got {type(encoded).__name__}")
