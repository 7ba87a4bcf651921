"""Conformance cases as data: the model, and loading/validating ``cases/*.toml`` files.

Validation is a table per level (:data:`CASE_FIELDS`, :data:`STEP_FIELDS`; ``expect``
keys live in :mod:`.expectations`) so that every rule a case file must follow is written
once, with the message a case author sees.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compare import Difference, Outcome
from ..errors import CaseError as CaseError
from .expectations import Expect, parse_expect
from .values import parse_params, show_params

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

SUBJECT_PREFIX = "conformance::"
OPS = ("execute", "executemany", "executescript", "begin", "commit", "rollback", "in_transaction")
SQL_OPS = ("execute", "executemany", "executescript")
MODES = ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")
_ID_RE = re.compile(r"^[a-z0-9_]+(?:[.-][a-z0-9_]+)+$")


@dataclass(frozen=True)
class Step:
    index: int  # 0 is the setup script, steps count from 1
    op: str
    sql: str = ""
    params: Any = ()
    conn: int = 1
    mode: str = "DEFERRED"
    expect: Expect | None = None

    @property
    def label(self) -> str:
        return "setup" if self.index == 0 else f"step {self.index}"

    def describe(self) -> str:
        """``op/conn`` plus the SQL and a short rendering of the parameters."""
        head = f"{self.label} ({self.op}" + (f", conn {self.conn}" if self.conn != 1 else "") + ")"
        sql = " ".join(self.sql.split())
        if len(sql) > 200:
            sql = sql[:197] + "..."
        text = f"{head}: {sql}" if sql else head
        if self.params not in ((), [], {}, None):
            text += f"  params {show_params(self.params, self.op == 'executemany')}"
        return text


@dataclass(frozen=True)
class Case:
    id: str
    description: str
    steps: tuple[Step, ...]
    source: str
    requires: tuple[str, ...] = ()
    setup: str | None = None

    @property
    def subject(self) -> str:
        return SUBJECT_PREFIX + self.id

    def all_steps(self) -> list[Step]:
        """The setup script (as step 0) followed by the steps."""
        head = [Step(index=0, op="executescript", sql=self.setup)] if self.setup else []
        return [*head, *self.steps]


@dataclass
class StepRun:
    step: Step
    outcome: Outcome


@dataclass
class CaseRun:
    case: Case
    backend: str
    served_by: str = ""
    steps: list[StepRun] = field(default_factory=list)


@dataclass
class StepDifference:
    step: Step
    expected: Outcome
    actual: Outcome
    differences: list[Difference]


# -- validation tables: (key, check(value, whole table) -> problem or None) ----------------

Check = Callable[[Any, dict[str, Any]], str | None]


def _description(value: Any, raw: dict[str, Any]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "'description' is required (say what the case proves)"
    return None


def _setup(value: Any, raw: dict[str, Any]) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        return "'setup' must be a non-empty SQL script"
    return None


def _requires(value: Any, raw: dict[str, Any]) -> str | None:
    if not isinstance(value, list) or not all(isinstance(r, str) and r for r in value):
        return "'requires' must be a list of capability names"
    return None


def _steps(value: Any, raw: dict[str, Any]) -> str | None:
    if not isinstance(value, list) or not value:
        return "needs at least one [[case.step]]"
    return None


CASE_FIELDS: dict[str, tuple[Any, Check | None]] = {
    # key: (default, check); "id" is checked first, before the case has a name
    "id": (None, None),
    "description": (None, _description),
    "setup": (None, _setup),
    "requires": ([], _requires),
    "step": (None, _steps),
}


def _op(value: Any, raw: dict[str, Any]) -> str | None:
    return None if value in OPS else f"op {value!r} is not one of {', '.join(OPS)}"


def _sql(value: Any, raw: dict[str, Any]) -> str | None:
    op = raw.get("op", "execute")
    if op in SQL_OPS:
        return None if isinstance(value, str) and value.strip() else f"op {op!r} needs non-empty 'sql'"
    if "sql" in raw:
        return f"op {op!r} takes no 'sql' (use op = \"execute\" to run SQL text)"
    return None


def _conn(value: Any, raw: dict[str, Any]) -> str | None:
    return None if value in (1, 2) and not isinstance(value, bool) else f"conn must be 1 or 2, got {value!r}"


def _mode(value: Any, raw: dict[str, Any]) -> str | None:
    if raw.get("op", "execute") != "begin" and "mode" in raw:
        return "'mode' only applies to op = \"begin\""
    if not isinstance(value, str) or value.upper() not in MODES:
        return f"mode must be DEFERRED, IMMEDIATE or EXCLUSIVE, got {value!r}"
    return None


def _params(value: Any, raw: dict[str, Any]) -> str | None:
    op = raw.get("op", "execute")
    if "params" in raw and op not in ("execute", "executemany"):
        return f"op {op!r} takes no 'params'"
    if "params" not in raw and op == "executemany":
        return "op 'executemany' needs 'params' (a list of parameter lists)"
    return None


STEP_FIELDS: dict[str, tuple[Any, Check | None]] = {
    "op": ("execute", _op),
    "sql": ("", _sql),
    "conn": (1, _conn),
    "mode": ("DEFERRED", _mode),
    "params": ((), _params),
    "expect": (None, None),
}


def _validated(raw: Any, fields: dict[str, tuple[Any, Check | None]], where: str) -> dict[str, Any]:
    """``raw`` with defaults filled in, after every field's check; raises :class:`CaseError`."""
    if not isinstance(raw, dict):
        raise CaseError(f"{where} must be a table")
    unknown = set(raw) - set(fields)
    if unknown:
        raise CaseError(f"{where}: unknown key(s) {sorted(unknown)} (allowed: {sorted(fields)})")
    values = {key: raw.get(key, default) for key, (default, _) in fields.items()}
    for key, (_, check) in fields.items():
        problem = check(values[key], raw) if check is not None else None
        if problem:
            raise CaseError(f"{where}: {problem}")
    return values


# -- loading ----------------------------------------------------------------------------------


def default_cases_dir() -> Path:
    """The shipped cases, ``pytest_traceparity/conformance/cases`` (from a wheel or a checkout)."""
    return Path(__file__).resolve().parent / "cases"


def load_cases(paths: Iterable[Path] | Path | None = None) -> list[Case]:
    """Every case from the given files/directories (default: the shipped suite), sorted by id.

    Raises :class:`CaseError` for malformed files and for ids defined twice.
    """
    if paths is None:
        paths = [default_cases_dir()]
    elif isinstance(paths, Path):
        paths = [paths]
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.toml")))
        elif path.is_file():
            files.append(path)
        else:
            raise CaseError(f"{path}: no such case file or directory")
    cases: dict[str, Case] = {}
    for file in files:
        for case in load_case_file(file):
            if case.id in cases:
                raise CaseError(
                    f"{file}: case id {case.id!r} is already defined in {cases[case.id].source}; "
                    "case ids must be unique across the suite"
                )
            cases[case.id] = case
    return [cases[k] for k in sorted(cases)]


def load_case_file(path: Path) -> list[Case]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(f"{path}: not valid TOML ({exc}); fix the file") from None
    unknown = set(data) - {"case"}
    if unknown:
        raise CaseError(f"{path}: unknown top-level key(s) {sorted(unknown)}; cases go in [[case]] tables")
    raw_cases = data.get("case", [])
    if not isinstance(raw_cases, list):
        raise CaseError(f"{path}: 'case' must be an array of tables ([[case]])")
    return [parse_case(raw, str(path), index) for index, raw in enumerate(raw_cases)]


def parse_case(raw: Any, source: str, index: int = 0) -> Case:
    """Validate one ``[[case]]`` table; errors name the file and the case id (or index)."""
    where = f"{source}: case #{index}"
    if not isinstance(raw, dict):
        raise CaseError(f"{where} must be a table")
    case_id = raw.get("id")
    if not isinstance(case_id, str) or not _ID_RE.match(case_id):
        raise CaseError(f"{where}: 'id' must be a dotted lowercase id like 'bind.int.i64_max', got {case_id!r}")
    where = f"{source}: case {case_id!r}"
    values = _validated(raw, CASE_FIELDS, where)
    steps = tuple(_parse_step(s, f"{where} step {i}", i) for i, s in enumerate(values["step"], start=1))
    if any(s.conn == 2 for s in steps) and "multi_connection" not in values["requires"]:
        raise CaseError(f'{where}: uses conn = 2, so it must declare requires = ["multi_connection"]')
    return Case(
        id=case_id,
        description=values["description"].strip(),
        steps=steps,
        source=source,
        requires=tuple(values["requires"]),
        setup=values["setup"],
    )


def _parse_step(raw: Any, where: str, index: int) -> Step:
    values = _validated(raw, STEP_FIELDS, where)
    op = values["op"]
    try:
        params = parse_params(values["params"], many=op == "executemany") if "params" in raw else ()
    except ValueError as exc:
        raise CaseError(f"{where}: params: {exc}") from None
    try:
        expect = parse_expect(values["expect"]) if "expect" in raw else None
    except ValueError as exc:
        raise CaseError(f"{where}: {exc}") from None
    return Step(
        index=index,
        op=op,
        sql=values["sql"],
        params=params,
        conn=values["conn"],
        mode=values["mode"].upper(),
        expect=expect,
    )
