"""Deciding whether two backends did "the same thing" for one statement.

An :class:`Outcome` is what a statement produced: a result or an error. Comparing two
outcomes yields :class:`Difference` records, each tagged with an *aspect* (``rows.value``,
``error.dbapi_class``, ``rowcount.select`` ...). Known divergences are declared per
aspect, so a registry entry for one quirk can never hide a different one.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .backends.errors import DatabaseError
from .backends.values import Result, canonical, display


@dataclass
class Outcome:
    """A statement's result, or the error it raised."""

    result: Result | None = None
    error: DatabaseError | None = None
    # Present when decoded from JSON (golden/trace) rather than raised live.
    error_json: dict[str, Any] | None = None

    @classmethod
    def capture(cls, fn: Any, *args: Any, **kwargs: Any) -> Outcome:
        try:
            value = fn(*args, **kwargs)
        except DatabaseError as exc:
            return cls(error=exc)
        return cls(result=value if isinstance(value, Result) else Result())

    @property
    def failed(self) -> bool:
        return self.error is not None or self.error_json is not None

    def error_fields(self) -> dict[str, Any]:
        if self.error is not None:
            return self.error.to_json()
        return dict(self.error_json or {})

    def to_json(self) -> dict[str, Any]:
        if self.failed:
            return {"error": self.error_fields()}
        assert self.result is not None
        return {"result": self.result.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        if "error" in data:
            return cls(error_json=dict(data["error"]))
        if "result" in data:
            return cls(result=Result.from_json(data["result"]))
        raise ValueError(f"outcome must have 'result' or 'error', got keys {sorted(data)}")

    def summary(self) -> str:
        if self.failed:
            fields = self.error_fields()
            return f"error {fields.get('kind')} ({fields.get('dbapi_class')})"
        assert self.result is not None
        r = self.result
        return f"{len(r.rows)} row(s), rowcount={r.rowcount}, lastrowid={r.lastrowid}"


@dataclass(frozen=True)
class Difference:
    aspect: str
    message: str

    def __str__(self) -> str:
        return f"[{self.aspect}] {self.message}"


_STRIP = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.DOTALL)


def is_ordered_query(sql: str) -> bool:
    """True when the outermost statement has ORDER BY (rows then compare in order)."""
    text = _STRIP.sub(" ", sql)
    depth = 0
    for match in re.finditer(r"[()]|\border\s+by\b", text, re.IGNORECASE):
        token = match.group(0)
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif depth == 0:
            return True
    return False


def statement_kind(sql: str) -> str:
    """``select`` for row-returning reads, ``dml`` for writes, ``other`` for DDL and the rest."""
    text = _STRIP.sub(" ", sql).strip().lower()
    head = text.split(None, 1)[0] if text else ""
    if head in ("select", "values", "with", "pragma", "explain"):
        if head == "with" and re.search(r"\b(insert|update|delete|replace)\b", text):
            return "dml"
        return "select"
    if head in ("insert", "update", "delete", "replace"):
        return "dml"
    return "other"


def compare_outcomes(
    expected: Outcome, actual: Outcome, *, sql: str = "", executemany: bool = False
) -> list[Difference]:
    """Every way ``actual`` differs from ``expected`` (empty when they match)."""
    if expected.failed or actual.failed:
        return _compare_errors(expected, actual)
    assert expected.result is not None and actual.result is not None
    return compare_results(expected.result, actual.result, sql=sql, executemany=executemany)


def _compare_errors(expected: Outcome, actual: Outcome) -> list[Difference]:
    if expected.failed and not actual.failed:
        fields = expected.error_fields()
        return [Difference("error.missing", f"expected error {fields.get('kind')}, got {actual.summary()}")]
    if actual.failed and not expected.failed:
        fields = actual.error_fields()
        message = actual.error.message if actual.error is not None else ""
        return [
            Difference(
                "error.unexpected",
                f"unexpected error {fields.get('kind')} ({fields.get('exc_type')}: {message})",
            )
        ]
    want, got = expected.error_fields(), actual.error_fields()
    diffs = []
    if want.get("kind") != got.get("kind"):
        diffs.append(Difference("error.kind", f"error kind {want.get('kind')!r} != {got.get('kind')!r}"))
    if want.get("dbapi_class") != got.get("dbapi_class"):
        diffs.append(
            Difference(
                "error.dbapi_class",
                f"raises {got.get('exc_type')} (catchable as {got.get('dbapi_class')}) where the "
                f"reference raises {want.get('exc_type')} ({want.get('dbapi_class')})",
            )
        )
    return diffs


def compare_results(
    expected: Result, actual: Result, *, sql: str = "", executemany: bool = False
) -> list[Difference]:
    diffs: list[Difference] = []
    kind = "executemany" if executemany else statement_kind(sql)
    if expected.columns != actual.columns:
        diffs.append(Difference("columns", f"columns {list(expected.columns)} != {list(actual.columns)}"))
    diffs.extend(_compare_rows(expected, actual, ordered=is_ordered_query(sql)))
    if expected.rowcount != actual.rowcount:
        diffs.append(Difference(f"rowcount.{kind}", f"rowcount {expected.rowcount} != {actual.rowcount}"))
    if expected.lastrowid != actual.lastrowid:
        diffs.append(Difference(f"lastrowid.{kind}", f"lastrowid {expected.lastrowid} != {actual.lastrowid}"))
    return diffs


def _compare_rows(expected: Result, actual: Result, *, ordered: bool) -> list[Difference]:
    want = [tuple(canonical(v) for v in row) for row in expected.rows]
    got = [tuple(canonical(v) for v in row) for row in actual.rows]
    if len(want) != len(got):
        return [Difference("rows.count", f"{len(want)} row(s) expected, got {len(got)}")]
    if not ordered:
        if Counter(want) == Counter(got):
            return []
        want, got = sorted(want, key=repr), sorted(got, key=repr)
        expected_rows = sorted(expected.rows, key=lambda r: repr(tuple(canonical(v) for v in r)))
        actual_rows = sorted(actual.rows, key=lambda r: repr(tuple(canonical(v) for v in r)))
    else:
        expected_rows, actual_rows = expected.rows, actual.rows
    for index, (w, g) in enumerate(zip(want, got)):
        if w == g:
            continue
        for col, (wv, gv) in enumerate(zip(w, g)):
            if wv == gv:
                continue
            aspect = "rows.storage_class" if wv[0] != gv[0] else "rows.value"
            name = expected.columns[col] if col < len(expected.columns) else f"#{col}"
            where = f"row {index}" if ordered else f"row {index} (sorted; no ORDER BY)"
            return [
                Difference(
                    aspect,
                    f"{where}, column {name!r}: expected {display(expected_rows[index][col])}, "
                    f"got {display(actual_rows[index][col])}",
                )
            ]
        return [Difference("rows.shape", f"row {index}: {len(w)} values expected, got {len(g)}")]
    return []
