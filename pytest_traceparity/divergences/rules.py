"""Root-cause rules: a known divergence described by what it is, not where it was first seen.

A rule matches one :class:`~pytest_traceparity.compare.Difference` and its step context::

    [[rule]]                                   # [[tool.traceparity.rules]] in pyproject.toml
    id = "libsql.int-outside-i32-bound-as-real" # stable; reports count hits by it
    backend = ["libsql-local", "sqld-*"]       # globs on backend ids
    severity = "data"                          # see severity.SCALE (default: each difference's aspect)
    aspects = ["rows.storage_class"]           # globs on Difference.aspect
    expected = ["integer"]                     # globs on the reference's observation
    actual = ["real"]                          # globs on the backend's observation
    relation = ["int-outside-i32-as-real"]     # how the two relate (compare.value_relation)
    kind = ["select"]                          # select|dml|ddl|pragma|transaction|script|other
    sql = '\bRETURNING\b'                      # regex (case-insensitive) on the normalized SQL
    message = 'json error'                     # regex on the difference's message
    params = ["dict"]                          # shapes all present: dict, int-outside-i32,
                                               # int-outside-i64, float-nonfinite, text-nul, blob
    params_over = 999                          # more than N parameters
    in_transaction = true
    after_kind = ["dml"]                       # a consequence: an earlier statement on the same database
    after_params = ["dict"]                    # of this kind, with these parameter shapes
    subjects = ["conformance::bind.named.dict"] # only where it truly depends on the case
    reason = "what the user sees, and what to do about it"
    until = 2027-03-31                         # plus reference_sqlite_below, reference_sqlalchemy_below,
                                               # python_below (version conditions)

A rule must say what it expects to observe (``expected``, ``actual`` or ``relation``) or
list exact subjects, so a *different* wrong value is a new divergence. The old
``[[known_divergences]]`` entry format still loads (ids ``<file>#<index>``).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import re
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..compare import Difference
from ..errors import UsageError
from .severity import check_severity

# "[" is not a wildcard here: pytest node ids contain "[backend]".
_GLOB_CHARS = set("*?")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*[a-z0-9]$")
KINDS = ("select", "dml", "ddl", "pragma", "transaction", "script", "other")
SHAPES = ("dict", "int-outside-i32", "int-outside-i64", "float-nonfinite", "text-nul", "blob")
_RULE_KEYS = {
    "id",
    "backend",
    "severity",
    "aspects",
    "expected",
    "actual",
    "relation",
    "kind",
    "sql",
    "params",
    "params_over",
    "in_transaction",
    "subjects",
    "reason",
    "until",
    "message",
    "after_kind",
    "after_params",
    "reference_sqlite_below",
    "reference_sqlalchemy_below",
    "python_below",
}
_LEGACY_KEYS = {
    "backend",
    "reason",
    "subjects",
    "aspects",
    "until",
    "reference_sqlite_below",
    "reference_sqlalchemy_below",
    "python_below",
}


@dataclass(eq=False)
class Rule:
    id: str
    backends: tuple[str, ...]
    reason: str
    severity: str | None  # None: the severity of each difference's aspect
    aspects: tuple[str, ...] = ("*",)
    expected: tuple[str, ...] | None = None
    actual: tuple[str, ...] | None = None
    relation: tuple[str, ...] | None = None
    kinds: tuple[str, ...] | None = None
    sql: re.Pattern[str] | None = None
    message: re.Pattern[str] | None = None
    params: frozenset[str] = frozenset()
    params_over: int | None = None
    in_transaction: bool | None = None
    after_kind: tuple[str, ...] | None = None
    after_params: frozenset[str] = frozenset()
    subjects: tuple[str, ...] = ()  # empty: any subject
    until: dt.date | None = None
    reference_sqlite_below: tuple[int, ...] | None = None
    reference_sqlalchemy_below: tuple[int, ...] | None = None
    python_below: tuple[int, ...] | None = None
    origin: str = "?"
    project: bool = False  # from the project's pyproject (beats the shipped rules)
    index: int = 0
    legacy: bool = False
    _exact: frozenset[str] = field(default=frozenset(), repr=False)

    def __post_init__(self) -> None:
        self._exact = frozenset(s for s in self.subjects if not (_GLOB_CHARS & set(s)))

    @property
    def backend(self) -> str | tuple[str, ...]:
        return self.backends[0] if len(self.backends) == 1 else self.backends

    @property
    def strict(self) -> bool:
        """Exact subjects only: the rule fails a listed subject that stops showing it."""
        return bool(self.subjects) and len(self._exact) == len(self.subjects)

    @property
    def precedence(self) -> tuple[int, int, int, int]:
        """Lower sorts first: project rules, then more conditions (a subject list counts as one), then
        rules with subjects, then file order. So a precise cause beats a case's catch-all rule."""
        conditions = sum(
            x is not None
            for x in (
                self.expected,
                self.actual,
                self.relation,
                self.kinds,
                self.sql,
                self.message,
                self.params_over,
                self.in_transaction,
                self.after_kind,
            )
        )
        conditions += len(self.params) + len(self.after_params) + (1 if self.subjects else 0)
        return (0 if self.project else 1, -conditions, 0 if self.subjects else 1, self.index)

    def active(self) -> bool:
        """Version conditions: the rule only exists while they hold."""
        if self.reference_sqlite_below is not None and sqlite3.sqlite_version_info >= self.reference_sqlite_below:
            return False
        if self.reference_sqlalchemy_below is not None and _sqlalchemy_version() >= self.reference_sqlalchemy_below:
            return False
        return not (self.python_below is not None and sys.version_info[:3] >= self.python_below)

    def applies_backend(self, backend: str) -> bool:
        return any(fnmatch.fnmatchcase(backend, b) for b in self.backends)

    def applies_to(self, backend: str, subject: str) -> bool:
        return self.active() and self.applies_backend(backend) and self.matches_subject(subject)

    def matches_subject(self, subject: str) -> bool:
        if not self.subjects or subject in self._exact:
            return True
        return any(_GLOB_CHARS & set(s) and fnmatch.fnmatchcase(subject, s.replace("[", "[[]")) for s in self.subjects)

    def covers(self, aspect: str) -> bool:
        return any(fnmatch.fnmatchcase(aspect, a) for a in self.aspects)

    def matches(self, diff: Difference) -> bool:
        """Observation and statement conditions (backend, aspect and subject are checked by the caller)."""
        if self.expected is not None and not _any_glob(diff.expected, self.expected):
            return False
        if self.actual is not None and not _any_glob(diff.actual, self.actual):
            return False
        if self.relation is not None and diff.relation not in self.relation:
            return False
        if self.message is not None and not self.message.search(diff.message):
            return False
        if (
            self.kinds is None
            and self.sql is None
            and not self.params
            and self.params_over is None
            and self.in_transaction is None
            and not self.after_params
            and self.after_kind is None
        ):
            return True
        ctx = diff.context
        if ctx is None:
            return False
        if self.kinds is not None and ctx.kind not in self.kinds:
            return False
        if self.sql is not None and not self.sql.search(ctx.sql):
            return False
        if self.params and not self.params <= ctx.shapes:
            return False
        if self.params_over is not None and ctx.param_count <= self.params_over:
            return False
        if self.in_transaction is not None and ctx.in_transaction is not self.in_transaction:
            return False
        if self.after_params or self.after_kind is not None:
            return any(
                (self.after_kind is None or kind in self.after_kind)
                and self.after_params <= shapes
                and (ctx.table is None or table is None or table == ctx.table)
                for kind, shapes, table in ctx.prior
            )
        return True

    def expired(self, today: dt.date | None = None) -> bool:
        return self.until is not None and (today or dt.date.today()) > self.until


def _any_glob(value: str | None, patterns: tuple[str, ...]) -> bool:
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)


@functools.lru_cache(maxsize=1)
def _sqlalchemy_version() -> tuple[int, ...]:
    """Installed SQLAlchemy as numbers (the reference backend's behaviour moved between 2.0 and 2.1)."""
    from importlib import metadata

    try:
        text = metadata.version("sqlalchemy")
    except metadata.PackageNotFoundError:
        return (0,)
    return version_tuple(text)


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3]) or (0,)


def _str_tuple(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{where} must be a non-empty list of strings")
    return tuple(value)


def _common(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Keys both formats share: backend, reason, until and the version conditions."""
    if not isinstance(item.get("reason"), str) or not item["reason"].strip():
        raise UsageError(f"{where}: 'reason' is required and must be a non-empty string")
    if "backend" not in item:
        raise UsageError(f"{where}: 'backend' is required (an id, a glob, or a list of them)")
    out: dict[str, Any] = {
        "backends": _str_tuple(item["backend"], f"{where}.backend"),
        "reason": item["reason"].strip(),
    }
    for key in ("reference_sqlite_below", "reference_sqlalchemy_below", "python_below"):
        bound = item.get(key)
        if bound is not None and (not isinstance(bound, str) or not re.fullmatch(r"\d+(\.\d+)*", bound)):
            raise UsageError(f'{where}: {key} must be a version string like "3.45.0"')
        out[key] = version_tuple(bound) if bound else None
    until = item.get("until")
    if isinstance(until, str):
        try:
            until = dt.date.fromisoformat(until)
        except ValueError:
            raise UsageError(f"{where}: until={until!r} is not a YYYY-MM-DD date") from None
    elif until is not None and not isinstance(until, dt.date):
        raise UsageError(f"{where}: until must be a YYYY-MM-DD date")
    out["until"] = until
    return out


def parse_rules(raw: Any, origin: str, *, project: bool = False, start: int = 0) -> list[Rule]:
    """Validate ``[[rule]]`` tables; errors name the file, the index and the id."""
    if not isinstance(raw, list):
        raise UsageError(f"{origin}: rules must be an array of tables ([[rule]])")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"{origin}: rules[{index}]"
        if not isinstance(item, dict):
            raise UsageError(f"{where} must be a table")
        rule_id = item.get("id")
        if not isinstance(rule_id, str) or not _ID_RE.match(rule_id):
            raise UsageError(
                f"{where}: 'id' must be a stable dotted id like 'libsql.dict-params-refused', got {rule_id!r}"
            )
        where = f"{origin}: rule {rule_id!r}"
        if rule_id in seen:
            raise UsageError(f"{where}: id defined twice; rule ids must be unique")
        seen.add(rule_id)
        unknown = set(item) - _RULE_KEYS
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {sorted(unknown)} (allowed: {sorted(_RULE_KEYS)})")
        common = _common(item, where)
        aspects = _str_tuple(item.get("aspects", ["*"]), f"{where}.aspects")
        subjects = _str_tuple(item["subjects"], f"{where}.subjects") if "subjects" in item else ()
        if any(s.strip("*") == "" for s in subjects):
            raise UsageError(
                f"{where}: subjects = [\"*\"] matches everything; leave 'subjects' out and describe "
                "the cause with expected/actual/relation/kind/sql/params instead"
            )
        expected, actual, relation = (
            _str_tuple(item[k], f"{where}.{k}") if k in item else None for k in ("expected", "actual", "relation")
        )
        kinds = _str_tuple(item["kind"], f"{where}.kind") if "kind" in item else None
        if kinds and set(kinds) - set(KINDS):
            raise UsageError(f"{where}: kind must be among {', '.join(KINDS)}, got {list(kinds)}")
        params, after_params = (
            frozenset(_str_tuple(item[k], f"{where}.{k}")) if k in item else frozenset()
            for k in ("params", "after_params")
        )
        if (params | after_params) - set(SHAPES):
            raise UsageError(
                f"{where}: params shapes must be among {', '.join(SHAPES)}, got {sorted(params | after_params)}"
            )
        after_kind = _str_tuple(item["after_kind"], f"{where}.after_kind") if "after_kind" in item else None
        if after_kind and set(after_kind) - set(KINDS):
            raise UsageError(f"{where}: after_kind must be among {', '.join(KINDS)}, got {list(after_kind)}")
        if (
            expected is None
            and actual is None
            and relation is None
            and not subjects
            and not params
            and not after_params
            and "message" not in item
        ):
            raise UsageError(
                f"{where}: a rule must say what it expects to observe (expected, actual, relation, "
                "message or params) or list exact subjects, so a different wrong value is not taken "
                "for this one"
            )
        sql, message = (_regex(item, key, where) for key in ("sql", "message"))
        over = item.get("params_over")
        if over is not None and (not isinstance(over, int) or isinstance(over, bool) or over < 0):
            raise UsageError(f"{where}: params_over must be a non-negative integer")
        in_tx = item.get("in_transaction")
        if in_tx is not None and not isinstance(in_tx, bool):
            raise UsageError(f"{where}: in_transaction must be true or false")
        severity = check_severity(item["severity"], f"{where}.severity") if "severity" in item else None
        rules.append(
            Rule(
                id=rule_id,
                severity=severity,
                aspects=aspects,
                expected=expected,
                actual=actual,
                relation=relation,
                kinds=kinds,
                sql=sql,
                message=message,
                params=params,
                after_kind=after_kind,
                after_params=after_params,
                params_over=over,
                in_transaction=in_tx,
                subjects=subjects,
                origin=f"{origin} rule {rule_id}",
                project=project,
                index=start + index,
                **common,
            )
        )
    return rules


def _regex(item: Mapping[str, Any], key: str, where: str) -> re.Pattern[str] | None:
    if key not in item:
        return None
    try:
        return re.compile(str(item[key]), re.IGNORECASE | re.DOTALL)
    except re.error as exc:
        raise UsageError(f"{where}: {key} is not a valid regex ({exc})") from None


def parse_entries(raw: Any, origin: str, *, project: bool = True, start: int = 0) -> list[Rule]:
    """The old ``[[known_divergences]]`` format (subject globs, aspects only), kept loadable."""
    if not isinstance(raw, list):
        raise UsageError(f"{origin}: known_divergences must be an array of tables")
    rules = []
    for index, item in enumerate(raw):
        where = f"{origin}: known_divergences[{index}]"
        if not isinstance(item, dict):
            raise UsageError(f"{where} must be a table")
        unknown = set(item) - _LEGACY_KEYS
        if unknown:
            hint = (
                " (that key belongs to the rule format: use [[tool.traceparity.rules]] with an 'id')"
                if unknown & _RULE_KEYS
                else ""
            )
            raise UsageError(f"{where}: unknown key(s) {sorted(unknown)}{hint}")
        common = _common(item, where)
        aspects = _str_tuple(item.get("aspects", ["*"]), f"{where}.aspects")
        subjects = _str_tuple(item.get("subjects", ["*"]), f"{where}.subjects")
        short = origin.rsplit("/", 1)[-1]
        rules.append(
            Rule(
                id=f"{short}#{index}",
                severity=None,
                aspects=aspects,
                subjects=() if subjects == ("*",) else subjects,
                origin=f"{origin} #{index}",
                project=project,
                index=start + index,
                legacy=True,
                **common,
            )
        )
    return rules


def marker_decision(
    backend: str, args: Sequence[Any], kwargs: Mapping[str, Any], today: dt.date, *, where: str
) -> tuple[str, str] | None:
    """What ``@known_divergence(backend, reason, until=)`` means for one backend.

    ``("xfail", reason)`` on a matching backend, ``("error", message)`` for a malformed or
    expired marker, ``None`` when it does not concern this backend.
    """
    pattern = kwargs.get("backend", args[0] if args else None)
    reason = kwargs.get("reason", args[1] if len(args) > 1 else None)
    if not pattern or not reason:
        return "error", f"{where}: known_divergence needs backend= and reason="
    if not fnmatch.fnmatchcase(backend, str(pattern)):
        return None
    until = kwargs.get("until")
    if until is not None:
        try:
            until_date = until if isinstance(until, dt.date) else dt.date.fromisoformat(str(until))
        except ValueError:
            return "error", f"{where}: known_divergence until={until!r} is not a YYYY-MM-DD date"
        if today > until_date:
            return "error", (
                f"known divergence on {backend} expired on {until_date} ({reason}); re-check "
                "the behaviour, then remove the marker or move 'until' forward"
            )
    return "xfail", f"known divergence on {backend}: {reason}"
