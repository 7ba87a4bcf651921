"""Does a replayed step's outcome equal its golden? Answered on the golden's raw JSON.

Why: on a long trace nearly every step equals its golden, and decoding each golden step
into an :class:`~pytest_traceparity.compare.Outcome` only to find no difference cost more
than running the statement. Here the backend's values are encoded the way the golden
writer encodes them and compared with the JSON as read. A ``True`` answer is exact (the
golden decodes to the same canonical values, so :func:`~pytest_traceparity.compare.compare_outcomes`
would find nothing); anything unusual (an error, a value type the golden writer would
coerce, a golden written by hand) answers ``False`` and the caller takes the full path.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

from ..compare import (
    Difference,
    Outcome,
    StepContext,
    count_differences,
    param_shapes,
    statement_context,
    statement_kind,
)
from ..values import Result, float_repr


def _blob(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


# the golden's typed encoding (values.encode_value) for each plain value type
_ENCODE: dict[type, tuple[str, Callable[[Any], Any]]] = {
    int: ("int", str),
    str: ("text", str),
    float: ("real", float_repr),
    bytes: ("blob", _blob),
    type(None): ("null", lambda _: True),
}


EQUAL = "equal"


def raw_match(raw: Any, outcome: Outcome) -> str | tuple[int, Any] | None:
    """One look at the golden's ``outcome`` object ``raw``: :data:`EQUAL` when ``outcome`` is a result equal
    to it; the golden's ``(rowcount, lastrowid)`` when only those differ; ``None`` for anything else."""
    result = outcome.result
    if result is None or outcome.error is not None or outcome.error_json is not None or type(raw) is not dict:
        return None
    want = raw.get("result")
    if type(want) is not dict or "error" in raw or not _rows_match(want, result):
        return None
    rowcount, lastrowid = want.get("rowcount", -1), want.get("lastrowid")
    if rowcount == result.rowcount and lastrowid == result.lastrowid:
        return EQUAL
    return (rowcount, lastrowid) if type(rowcount) is int else None


def outcome_matches(raw: Any, outcome: Outcome) -> bool:
    """True when ``outcome`` is a result equal to the golden's ``outcome`` object ``raw``."""
    return raw_match(raw, outcome) is EQUAL


def counts_differ(raw: Any, outcome: Outcome, *, sql: str = "", executemany: bool = False) -> list[Difference] | None:
    """The differences of a result that equals the golden's in columns and rows but not in
    rowcount/lastrowid (libsql's rowcount after a SELECT, say), exactly as
    :func:`~pytest_traceparity.compare.compare_outcomes` states them; ``None`` for anything else."""
    match = raw_match(raw, outcome)
    if match is None:
        return None
    if match is EQUAL:
        return []
    assert type(match) is tuple
    return match_differences(match, outcome, sql=sql, executemany=executemany)


def match_differences(
    match: tuple[int, Any], outcome: Outcome, *, sql: str = "", executemany: bool = False
) -> list[Difference]:
    """The rowcount/lastrowid differences of a result :func:`raw_match` found equal to the golden's but for the
    golden's ``match`` = ``(rowcount, lastrowid)``."""
    assert outcome.result is not None
    kind = "executemany" if executemany else statement_kind(sql)
    return count_differences(kind, match[0], outcome.result.rowcount, match[1], outcome.result.lastrowid)


def _rows_match(want: dict[str, Any], result: Result) -> bool:
    """The golden result's columns and rows equal ``result``'s (its counts are :func:`raw_match`'s business)."""
    columns = want.get("columns", ())
    if type(columns) is not list or tuple(columns) != result.columns:
        return False
    rows = want.get("rows", ())
    got = result.rows
    if type(rows) is not list or len(rows) != len(got):
        return False
    for wrow, grow in zip(rows, got):
        if type(wrow) is not list or len(wrow) != len(grow):
            return False
        for wvalue, gvalue in zip(wrow, grow):
            encoding = _ENCODE.get(type(gvalue))
            if encoding is None or type(wvalue) is not dict or len(wvalue) != 1:
                return False
            key, encode = encoding
            if key not in wvalue or wvalue[key] != encode(gvalue):
                return False
    return True


# -- the same question on the golden's line text, before any JSON is decoded ---------------------------
# The golden writer's line for a step is canonical: ``{"seq":S,"conn":C,"op":"O"[,"sql":Q][,"params_sha256":H],
# "outcome":{...}}``. A line equal to the text the writer would produce for this step and this outcome decodes
# to exactly the golden this step equals; any other text (an older writer, a hand edit, an error, a row) is
# not matched here and the caller decodes the line as before.

_QUOTE: Callable[[str], str] = json.encoder.encode_basestring  # as dumps(ensure_ascii=False)
_SQL_TEXT: dict[str, str] = {}
_COLUMNS_TEXT: dict[tuple[str, ...], str] = {}
_MIDDLE = re.compile(r'(?:,"params_sha256":"[0-9a-f]{16}")?')


def line_head(seq: int, conn: int, op: str, sql: str | None) -> str:
    """The start of the golden line the writer makes for this step (up to and including its SQL)."""
    if sql is None:
        return f'{{"seq":{seq},"conn":{conn},"op":"{op}"'
    text = _SQL_TEXT.get(sql)
    if text is None:
        if len(_SQL_TEXT) >= 4096:
            _SQL_TEXT.clear()
        text = _SQL_TEXT[sql] = ',"sql":' + _QUOTE(sql)
    return f'{{"seq":{seq},"conn":{conn},"op":"{op}"{text}'


def rowless_tail(result: Result) -> str | None:
    """The end of the golden line (from ``,"outcome":``) for a result without rows; ``None`` when it has rows."""
    if result.rows:
        return None
    columns = result.columns
    if columns:
        ctext = _COLUMNS_TEXT.get(columns)
        if ctext is None:
            if len(_COLUMNS_TEXT) >= 4096:
                _COLUMNS_TEXT.clear()
            ctext = _COLUMNS_TEXT[columns] = ",".join(map(_QUOTE, columns))
    else:
        ctext = ""
    lastrowid = result.lastrowid
    if type(result.rowcount) is not int or (lastrowid is not None and type(lastrowid) is not int):
        return None
    last = "null" if lastrowid is None else lastrowid
    counts = f'"rowcount":{result.rowcount},"lastrowid":{last}'
    return f',"outcome":{{"result":{{"columns":[{ctext}],"rows":[],{counts}}}}}}}\n'


def rowless_matches(text: str, head: str, result: Result) -> bool:
    """True when ``text`` is exactly ``head``, an optional parameter digest, then :func:`rowless_tail` of
    ``result``: the golden line of a step equal to this rowless result (``False`` when it has rows)."""
    tail = rowless_tail(result)
    if tail is None or not text.endswith(tail) or not text.startswith(head):
        return False
    end = len(text) - len(tail)
    return end >= len(head) and _MIDDLE.fullmatch(text, len(head), end) is not None


def raw_summary(raw: dict[str, Any]) -> str:
    """:meth:`Outcome.summary` of a golden outcome :func:`counts_differ` accepted (so well formed)."""
    want = raw["result"]
    return f"{len(want.get('rows', ()))} row(s), rowcount={want.get('rowcount', -1)}, lastrowid={want.get('lastrowid')}"


class Contexts:
    """:func:`~pytest_traceparity.compare.statement_context`, made once per (op, SQL, parameter shapes,
    transaction state, database, prior statements) and shared: a long trace repeats a known difference
    on the same statement thousands of times, and sharing the context lets the verdict be looked up
    by its identity."""

    def __init__(self) -> None:
        self._cache: dict[Any, StepContext] = {}

    def get(
        self,
        op: str,
        sql: str | None,
        params: Any,
        many: Any,
        before: bool,
        db: str | None,
        prior: frozenset[Any],
        shaped: tuple[frozenset[str], int] | None = None,
    ) -> StepContext:
        """``shaped``: :func:`param_shapes` of ``params``, when the caller has it already."""
        if many is not None:
            return statement_context(op, sql, params, many, before, db, prior)
        key = (op, sql, shaped if shaped is not None else param_shapes(params), before, db, prior)
        context = self._cache.get(key)
        if context is None:
            if len(self._cache) >= 4096:
                self._cache.clear()
            context = self._cache[key] = statement_context(op, sql, params, None, before, db, prior)
        return context
