"""A case step's ``expect`` table: absolute facts the reference backend must show.

Each key is one row of :data:`KEYS`: how its TOML value is parsed, whether the outcome
holds it, and what to say when it does not. Keys about an error (``error``,
``dbapi_class``) and keys about a result (``rows``, ``columns``, ``rowcount``,
``lastrowid``) never mix in one table. A difference's aspect is ``expect.<key>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..compare import Difference, Outcome
from ..errors import ERROR_KINDS
from ..values import Result, canonical
from .values import parse_value, show_rows


def _integer(key: str) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise ValueError(f"expect.{key} must be an integer")
        return raw

    return parse


def _string(key: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if not isinstance(raw, str):
            raise ValueError(f"expect.{key} must be a string")
        return raw

    return parse


def _parse_rows(raw: Any) -> tuple[tuple[Any, ...], ...]:
    if not isinstance(raw, list) or not all(isinstance(r, list) for r in raw):
        raise ValueError("expect.rows must be a list of rows (lists)")
    return tuple(tuple(parse_value(v) for v in row) for row in raw)


def _parse_columns(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise ValueError("expect.columns must be a list of strings")
    return tuple(raw)


def _parse_error(raw: Any) -> str:
    kind = _string("error")(raw)
    if kind not in ERROR_KINDS:
        raise ValueError(f"expect.error {kind!r} is not a canonical error kind (one of: {', '.join(ERROR_KINDS)})")
    return kind


def _canonical_rows(rows: Any) -> list[tuple[Any, ...]]:
    return [tuple(canonical(v) for v in row) for row in rows]


def _rows_message(want: tuple[tuple[Any, ...], ...], result: Result) -> str:
    got = _canonical_rows(result.rows)
    if len(want) != len(got):
        return f"{len(want)} row(s) expected, got {len(got)}: {show_rows(result.rows)}"
    index = next(i for i, (w, g) in enumerate(zip(_canonical_rows(want), got)) if w != g)
    expected, actual = show_rows(want[index : index + 1]), show_rows(result.rows[index : index + 1])
    return f"row {index}: expected {expected}, got {actual}"


@dataclass(frozen=True)
class ExpectKey:
    """One ``expect`` key: parse its TOML value, check it against an outcome, explain a miss."""

    key: str
    parse: Callable[[Any], Any]
    holds: Callable[[Any, Outcome], bool]
    message: Callable[[Any, Outcome], str]
    about_error: bool = False


def _raised(outcome: Outcome) -> str:
    fields = outcome.error_fields()
    return f"{fields.get('exc_type')} ({fields.get('dbapi_class')})"


def _result(outcome: Outcome) -> Result:
    assert outcome.result is not None  # result keys are only checked on a successful outcome
    return outcome.result


KEYS: tuple[ExpectKey, ...] = (
    ExpectKey(
        "columns",
        _parse_columns,
        lambda want, o: tuple(_result(o).columns) == want,
        lambda want, o: f"columns {list(want)} expected, got {list(_result(o).columns)}",
    ),
    ExpectKey(
        "rows",
        _parse_rows,
        lambda want, o: _canonical_rows(want) == _canonical_rows(_result(o).rows),
        lambda want, o: _rows_message(want, _result(o)),
    ),
    ExpectKey(
        "rowcount",
        _integer("rowcount"),
        lambda want, o: _result(o).rowcount == want,
        lambda want, o: f"rowcount {want} expected, got {_result(o).rowcount}",
    ),
    ExpectKey(
        "lastrowid",
        _integer("lastrowid"),
        lambda want, o: _result(o).lastrowid == want,
        lambda want, o: f"lastrowid {want} expected, got {_result(o).lastrowid}",
    ),
    ExpectKey(
        "error",
        _parse_error,
        lambda want, o: o.error_fields().get("kind") == want,
        lambda want, o: f"expected error kind {want!r}, got {o.error_fields().get('kind')!r}",
        about_error=True,
    ),
    ExpectKey(
        "dbapi_class",
        _string("dbapi_class"),
        lambda want, o: o.error_fields().get("dbapi_class") == want,
        lambda want, o: f"expected {want}, got {_raised(o)}",
        about_error=True,
    ),
)
BY_KEY: Mapping[str, ExpectKey] = {k.key: k for k in KEYS}


@dataclass(frozen=True)
class Expect:
    """The parsed facts of one ``expect`` table, by key (in :data:`KEYS` order)."""

    facts: tuple[tuple[str, Any], ...] = ()

    def __getitem__(self, key: str) -> Any:
        return dict(self.facts)[key]

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self.facts)

    @property
    def about_error(self) -> bool:
        return any(BY_KEY[k].about_error for k, _ in self.facts)


def parse_expect(raw: Any) -> Expect:
    """Validate an ``expect`` table; raises ``ValueError`` with a message naming the key."""
    if not isinstance(raw, dict):
        raise ValueError("'expect' must be a table")
    unknown = set(raw) - set(BY_KEY)
    if unknown:
        raise ValueError(f"expect has unknown key(s) {sorted(unknown)} (allowed: {sorted(BY_KEY)})")
    kinds = {BY_KEY[k].about_error for k in raw}
    if len(kinds) > 1:
        raise ValueError("expect cannot ask for an error and a result at once")
    return Expect(tuple((k.key, k.parse(raw[k.key])) for k in KEYS if k.key in raw))


def expect_diffs(expect: Expect, outcome: Outcome) -> list[Difference]:
    """Every fact of ``expect`` that ``outcome`` contradicts, as ``expect.<key>`` differences."""
    if expect.about_error and not outcome.failed:
        wanted = next(value for _, value in expect.facts)
        return [Difference("expect.error", f"expected error {wanted}, got {outcome.summary()}")]
    if not expect.about_error and (outcome.failed or outcome.result is None):
        message = outcome.error.message if outcome.error is not None else ""
        return [Difference("expect.error", f"unexpected error {outcome.error_fields().get('kind')}: {message}")]
    return [
        Difference(f"expect.{key}", BY_KEY[key].message(want, outcome))
        for key, want in expect.facts
        if not BY_KEY[key].holds(want, outcome)
    ]
