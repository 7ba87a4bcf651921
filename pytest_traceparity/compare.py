"""Deciding whether two backends did "the same thing" for one statement.

An :class:`Outcome` is what a statement produced: a result or an error. Comparing two
outcomes yields :class:`Difference` records, each tagged with an *aspect* (``rows.value``,
``error.dbapi_class``, ``rowcount.select`` ...). Known divergences are declared per
aspect, so a registry entry for one quirk can never hide a different one.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import sqltext
from .errors import DatabaseError
from .values import Result, canonical, display


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
class StepContext:
    """What the rules may look at besides the difference itself: the statement and its parameters."""

    op: str = "execute"
    kind: str = "other"  # select | dml | ddl | pragma | transaction | script | other
    sql: str = ""  # normalized: comments dropped, whitespace collapsed
    shapes: frozenset[str] = frozenset()
    param_count: int = 0
    in_transaction: bool | None = None
    db: str | None = None
    # (kind, parameter shapes, table written) of earlier statements on the same database that had
    # notable parameters: lets a rule explain a later consequence (a row never written, a REAL stored).
    prior: frozenset[tuple[str, frozenset[str], str | None]] = frozenset()
    table: str | None = None  # for final-state differences: the table whose content differs


@dataclass(frozen=True)
class Difference:
    """One way a backend differed; ``expected``/``actual`` are short observations rules match on.

    ``relation`` names how the two observations relate when that is recognisable
    (``int-outside-i32-as-real``, ``text-cut-at-nul``, ``float-last-digits``, ``text-spacing`` ...).
    """

    aspect: str
    message: str
    expected: str | None = None
    actual: str | None = None
    relation: str | None = None
    context: StepContext | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"[{self.aspect}] {self.message}"

    def with_context(self, context: StepContext | None) -> Difference:
        return Difference(self.aspect, self.message, self.expected, self.actual, self.relation, context)


_STRIP = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.DOTALL)


@functools.lru_cache(maxsize=4096)  # pure in the SQL text, asked once per replayed step
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


@functools.lru_cache(maxsize=4096)  # pure in the SQL text, asked once per replayed step
def statement_kind(sql: str) -> str:
    """``select`` for row-returning reads, ``dml`` for writes, ``other`` for DDL and the rest."""
    kind = sql_kind(sql)
    if kind in ("select", "dml"):
        return kind
    return "select" if kind == "pragma" else "other"


_KIND_HEADS = {
    "select": "select",
    "values": "select",
    "explain": "select",
    "insert": "dml",
    "update": "dml",
    "delete": "dml",
    "replace": "dml",
    "create": "ddl",
    "drop": "ddl",
    "alter": "ddl",
    "reindex": "ddl",
    "analyze": "ddl",
    "pragma": "pragma",
    "begin": "transaction",
    "commit": "transaction",
    "end": "transaction",
    "rollback": "transaction",
    "savepoint": "transaction",
    "release": "transaction",
}
_I32 = (-(2**31), 2**31 - 1)
_I64 = (-(2**63), 2**63 - 1)
_I32_LO, _I32_HI = _I32
_SHAPES: dict[frozenset[str], frozenset[str]] = {}  # a handful of shape combinations, so bounded


@functools.lru_cache(maxsize=4096)  # pure in the SQL text, asked once per replayed step
def normalize_sql(sql: str) -> str:
    """Comments dropped (string literals kept), whitespace collapsed: what rule regexes see."""

    def keep_literals(match: re.Match[str]) -> str:
        text = match.group(0)
        return text if text[0] in "'\"" else " "

    return " ".join(_STRIP.sub(keep_literals, sql).split())


@functools.lru_cache(maxsize=4096)  # pure in the SQL text, asked once per replayed step
def sql_kind(sql: str, op: str = "execute") -> str:
    """The statement's kind for rules: select, dml, ddl, pragma, transaction, script or other."""
    if op == "executescript":
        return "script"
    if op in ("begin", "commit", "rollback"):
        return "transaction"
    if op not in ("execute", "executemany"):
        return "other"
    head = sqltext.statement_kind(sql).lower()
    if head == "with":
        return "dml" if sqltext.WRITE_KINDS.intersection(sqltext.words(sql)) else "select"
    return _KIND_HEADS.get(head, "other")


def _value_shapes(value: Any, out: set[str]) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if not _I32[0] <= value <= _I32[1]:
            out.add("int-outside-i32")
        if not _I64[0] <= value <= _I64[1]:
            out.add("int-outside-i64")
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            out.add("float-nonfinite")
    elif isinstance(value, str):
        if "\x00" in value:
            out.add("text-nul")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        out.add("blob")


def param_shapes(params: Any) -> tuple[frozenset[str], int]:
    """Shapes of one parameter set (``dict``, ``int-outside-i32``, ``text-nul``...) and its size."""
    out: set[str] = set()
    values: Sequence[Any]
    if isinstance(params, dict):
        out.add("dict")
        values = list(params.values())
    else:
        values = params if type(params) is tuple else list(params or ())
    for value in values:
        kind = type(value)  # the usual plain values inline (a finite float: x - x == 0); the rest below
        if (
            value is None
            or (kind is str and "\x00" not in value)
            or (kind is int and _I32_LO <= value <= _I32_HI)
            or (kind is float and value - value == 0.0)
        ):
            continue
        if kind is bytes:
            out.add("blob")
            continue
        _value_shapes(value, out)
    if not out:
        return _NO_SHAPES, len(values)
    shapes = frozenset(out)
    return _SHAPES.setdefault(shapes, shapes), len(values)  # one shared set per shape: cheap to hash again


_NO_SHAPES: frozenset[str] = frozenset()


def statement_context(
    op: str,
    sql: str | None,
    params: Any = (),
    many: Any = None,
    in_transaction: bool | None = None,
    db: str | None = None,
    prior: frozenset[tuple[str, frozenset[str], str | None]] = frozenset(),
) -> StepContext:
    """The :class:`StepContext` of one step (executemany: the union of its parameter sets' shapes)."""
    if many is not None:
        shapes: set[str] = set()
        count = 0
        for item in many:
            found, n = param_shapes(item)
            shapes |= found
            count = max(count, n)
        frozen = frozenset(shapes)
    else:
        frozen, count = param_shapes(params)
    return StepContext(
        op=op,
        kind=sql_kind(sql or "", op),
        sql=normalize_sql(sql or ""),
        shapes=frozen,
        param_count=count,
        in_transaction=in_transaction,
        db=db,
        prior=prior,
    )


class History:
    """Per database, the (kind, shapes) of statements with notable parameters seen so far."""

    def __init__(self) -> None:
        self._seen: dict[str | None, set[tuple[str, frozenset[str], str | None]]] = {}
        self._frozen: dict[str | None, frozenset[tuple[str, frozenset[str], str | None]]] = {}

    def prior(self, db: str | None) -> frozenset[tuple[str, frozenset[str], str | None]]:
        frozen = self._frozen.get(db)
        if frozen is None:
            frozen = self._frozen[db] = frozenset(self._seen.get(db, ()))
        return frozen

    def note(
        self,
        db: str | None,
        op: str,
        sql: str | None,
        params: Any = (),
        many: Any = None,
        shaped: tuple[frozenset[str], int] | None = None,
    ) -> None:
        """``shaped``: :func:`param_shapes` of ``params``, when the caller has it already."""
        if op not in ("execute", "executemany"):
            return
        if many is not None:
            shapes: frozenset[str] = frozenset().union(*(param_shapes(p)[0] for p in many)) if many else frozenset()
        else:
            shapes = (shaped if shaped is not None else param_shapes(params))[0]
        if not shapes:
            return
        kind, table = _written(sql or "", op)
        item = (kind, shapes, table)
        seen = self._seen.get(db)
        if seen is None:
            seen = self._seen[db] = set()
        if item not in seen:
            seen.add(item)
            self._frozen.pop(db, None)


@functools.lru_cache(maxsize=4096)
def _written(sql: str, op: str) -> tuple[str, str | None]:
    """(statement kind, table it writes) of ``sql``: pure in the text, so asked once per text."""
    match = _WRITTEN.match(_STRIP.sub(" ", sql))
    return sql_kind(sql, op), (match.group(1).strip('"`[]').lower() if match else None)


_WRITTEN = re.compile(
    r"\s*(?:WITH\b.*?\)\s*)?(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)"
    r"\s+((?:\"[^\"]+\"|`[^`]+`|\[[^\]]+\]|[\w.]+))",
    re.IGNORECASE | re.DOTALL,
)


def transaction_after(sql: str, op: str, before: bool) -> bool:
    """Whether a connection is inside a transaction after this step (tracked from the statements)."""
    if op == "begin":
        return True
    if op in ("commit", "rollback"):
        return False
    if op == "executescript":
        return False if not re.search(r"\bbegin\b", sql, re.IGNORECASE) else before
    if op != "execute":
        return before
    change = transaction_change(sql)
    return before if change is None else change


@functools.lru_cache(maxsize=4096)
def transaction_change(sql: str) -> bool | None:
    """True: ``sql`` opens a transaction; False: it ends one; None: neither (asked once per SQL text)."""
    head = sql.lstrip()[:1].lower()
    if head not in ("b", "c", "e", "r", "s", "-", "/"):  # cheap exit for the usual SELECT/INSERT/UPDATE...
        return None
    text = _STRIP.sub(" ", sql).strip().lower()
    if re.match(r"(begin|savepoint)\b", text):
        return True
    if re.match(r"(commit|end)\b", text) or (re.match(r"rollback\b", text) and not re.search(r"\bto\b", text)):
        return False
    return None


def value_relation(want: Any, got: Any) -> str | None:
    """How two differing plain values relate, when that is a recognisable pattern."""
    if isinstance(want, bool) or isinstance(got, bool):
        return None
    if isinstance(want, int) and isinstance(got, float):
        if got == float(want):
            return "int-outside-i32-as-real" if not _I32[0] <= want <= _I32[1] else "int-as-real"
        return None
    if isinstance(want, str) and isinstance(got, str):
        if "\x00" in want and got == want.split("\x00", 1)[0]:
            return "text-cut-at-nul"
        if _squash_text(want) == _squash_text(got):
            return "text-spacing"
        return None
    if isinstance(want, float) and isinstance(got, float) and math.isfinite(want) and math.isfinite(got):
        scale = max(abs(want), abs(got))
        if abs(want - got) <= 1e-12 * scale:
            return "float-last-digits"
        places = (_decimals(want), _decimals(got))
        decimals = max(places) if None not in places else None  # type: ignore[type-var]
        if decimals is not None and abs(want - got) <= 1.0000001 * 10.0 ** (-decimals):
            return "float-last-decimal"
    return None


def _decimals(value: float) -> int | None:
    text = repr(value)
    if "e" in text or "n" in text:
        return None
    return len(text.split(".", 1)[1]) if "." in text else 0


def _squash_text(text: str) -> str:
    return re.sub(r"[\s;]+", "", text).lower()


def _observe(value: Any, aspect: str) -> str:
    """The storage class for ``rows.storage_class``; the value as short text for ``rows.value``."""
    kind, payload = canonical(value)
    if aspect == "rows.storage_class":
        return kind
    if kind == "null":
        return "NULL"
    if kind == "blob":
        return "x'" + bytes(payload).hex()[:64] + "'"
    return str(payload)[:120]


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
        return [
            Difference(
                "error.missing",
                f"expected error {fields.get('kind')}, got {actual.summary()}",
                expected=fields.get("kind"),
                actual="none",
            )
        ]
    if actual.failed and not expected.failed:
        fields = actual.error_fields()
        message = actual.error.message if actual.error is not None else ""
        return [
            Difference(
                "error.unexpected",
                f"unexpected error {fields.get('kind')} ({fields.get('exc_type')}: {message})",
                expected="none",
                actual=fields.get("kind"),
            )
        ]
    want, got = expected.error_fields(), actual.error_fields()
    diffs = []
    if want.get("kind") != got.get("kind"):
        diffs.append(
            Difference(
                "error.kind",
                f"error kind {want.get('kind')!r} != {got.get('kind')!r}",
                expected=want.get("kind"),
                actual=got.get("kind"),
            )
        )
    if want.get("dbapi_class") != got.get("dbapi_class"):
        diffs.append(
            Difference(
                "error.dbapi_class",
                f"raises {got.get('exc_type')} (catchable as {got.get('dbapi_class')}) where the "
                f"reference raises {want.get('exc_type')} ({want.get('dbapi_class')})",
                expected=want.get("dbapi_class"),
                actual=_short_type(got.get("exc_type")),
            )
        )
    return diffs


def _short_type(name: Any) -> str | None:
    return str(name).rsplit(".", 1)[-1] if name else None


def compare_results(expected: Result, actual: Result, *, sql: str = "", executemany: bool = False) -> list[Difference]:
    diffs: list[Difference] = []
    kind = "executemany" if executemany else statement_kind(sql)
    if expected.columns != actual.columns:
        diffs.append(
            Difference(
                "columns",
                f"columns {list(expected.columns)} != {list(actual.columns)}",
                expected=str(len(expected.columns)),
                actual=str(len(actual.columns)),
            )
        )
    diffs.extend(_compare_rows(expected, actual, ordered=is_ordered_query(sql)))
    diffs.extend(count_differences(kind, expected.rowcount, actual.rowcount, expected.lastrowid, actual.lastrowid))
    return diffs


def count_differences(
    kind: str, rowcount: int, actual_rowcount: int, lastrowid: int | None, actual_lastrowid: int | None
) -> list[Difference]:
    """The ``rowcount.KIND`` / ``lastrowid.KIND`` differences of a statement of this kind: one wording for
    the full comparison and the replay's fast path (rules match on these aspects and observations)."""
    diffs = []
    for name, want, got in (("rowcount", rowcount, actual_rowcount), ("lastrowid", lastrowid, actual_lastrowid)):
        if want != got:
            diffs.append(Difference(f"{name}.{kind}", f"{name} {want} != {got}", expected=str(want), actual=str(got)))
    return diffs


def _compare_rows(expected: Result, actual: Result, *, ordered: bool) -> list[Difference]:
    want = [tuple(canonical(v) for v in row) for row in expected.rows]
    got = [tuple(canonical(v) for v in row) for row in actual.rows]
    if len(want) != len(got):
        return [
            Difference(
                "rows.count",
                f"{len(want)} row(s) expected, got {len(got)}",
                expected=str(len(want)),
                actual=str(len(got)),
            )
        ]
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
            raw_want, raw_got = expected_rows[index][col], actual_rows[index][col]
            return [
                Difference(
                    aspect,
                    f"{where}, column {name!r}: expected {display(raw_want)}, got {display(raw_got)}",
                    expected=_observe(raw_want, aspect),
                    actual=_observe(raw_got, aspect),
                    relation=value_relation(raw_want, raw_got),
                )
            ]
        return [Difference("rows.shape", f"row {index}: {len(w)} values expected, got {len(g)}")]
    return []
