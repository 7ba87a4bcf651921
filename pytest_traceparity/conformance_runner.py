"""The conformance suite's engine, free of pytest: load cases, run them, compare, judge.

Cases are data (``conformance/cases/*.toml``) so that a downstream team can read what is
checked and a new backend runs exactly the same statements. Each case runs on a fresh
database; every step's :class:`~pytest_traceparity.compare.Outcome` is compared with the
reference backend's outcome for the same step, and the differences are judged by the
known-divergence registry under the subject ``conformance::<case id>``.

Case file format (TOML)::

    [[case]]
    id = "bind.int.i64_max"              # stable, dotted, [a-z0-9_.-]
    description = "largest i64 round-trips as INTEGER"
    setup = "CREATE TABLE t(x);"        # optional, run with executescript (compared too)
    requires = ["multi_connection"]      # optional backend capabilities

    [[case.step]]
    sql = "SELECT ?, typeof(?)"
    params = [9223372036854775807, 9223372036854775807]
    op = "execute"                       # execute|executemany|executescript|begin|commit|
                                         # rollback|in_transaction (default execute)
    conn = 1                             # 1 = the db's connection, 2 = a second one
    expect = { rows = [[9223372036854775807, "integer"]] }   # facts the reference must show

Values (in ``params`` and ``expect.rows``): TOML integers, floats (``inf``, ``nan``,
``-0.0``), strings and booleans stand for themselves; a one-key table is a typed value:
``{null = true}``, ``{int = "..."}``, ``{real = "..."}``, ``{text = "..."}``,
``{blob = "<base64>"}`` (the trace encoding, :func:`values.encode_value`), plus
``{hex = "00ff"}`` for a blob and ``{repeat = <value>, times = N}`` for a long text/blob.
``params`` as a table means named parameters. For ``executemany``, ``params`` is a list of
parameter lists. ``expect`` keys: ``rows``, ``columns``, ``rowcount``, ``lastrowid``,
``error`` (canonical kind), ``dbapi_class``.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .backends.base import BackendContext, Connection
from .backends.facade import DB
from .compare import (
    Difference,
    History,
    Outcome,
    StepContext,
    compare_outcomes,
    statement_context,
    transaction_after,
)
from .divergences import DivergenceRegistry, Verdict, root_causes, summarize
from .divergences.severity import RANK
from .errors import DatabaseError, UsageError
from .registry import BackendRegistry
from .values import canonical, decode_value, display

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

SUBJECT_PREFIX = "conformance::"
OPS = ("execute", "executemany", "executescript", "begin", "commit", "rollback", "in_transaction")
_SQL_OPS = ("execute", "executemany", "executescript")
_CASE_KEYS = {"id", "description", "setup", "requires", "step"}
_STEP_KEYS = {"sql", "params", "op", "conn", "expect", "mode"}
_EXPECT_KEYS = {"rows", "columns", "rowcount", "lastrowid", "error", "dbapi_class"}
_ID_RE = re.compile(r"^[a-z0-9_]+(?:[.-][a-z0-9_]+)+$")
_MAX_REPEAT = 64 * 1024 * 1024


class CaseError(UsageError):
    """A malformed case file; the message names the file and the case."""


@dataclass(frozen=True)
class Expect:
    """Absolute facts the reference backend must show for one step."""

    rows: tuple[tuple[Any, ...], ...] | None = None
    columns: tuple[str, ...] | None = None
    rowcount: int | None = None
    lastrowid: int | None = None
    has_lastrowid: bool = False
    error: str | None = None
    dbapi_class: str | None = None


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
            text += f"  params {_show_params(self.params, self.op == 'executemany')}"
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


# -- loading ----------------------------------------------------------------------------------


def default_cases_dir() -> Path:
    """``conformance/cases`` of the installed package (works from a wheel or a checkout)."""
    import conformance

    return Path(conformance.__file__).resolve().parent / "cases"


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
    unknown = set(raw) - _CASE_KEYS
    if unknown:
        raise CaseError(f"{where}: unknown key(s) {sorted(unknown)} (allowed: {sorted(_CASE_KEYS)})")
    description = raw.get("description")
    if not isinstance(description, str) or not description.strip():
        raise CaseError(f"{where}: 'description' is required (say what the case proves)")
    setup = raw.get("setup")
    if setup is not None and (not isinstance(setup, str) or not setup.strip()):
        raise CaseError(f"{where}: 'setup' must be a non-empty SQL script")
    requires = raw.get("requires", [])
    if not isinstance(requires, list) or not all(isinstance(r, str) and r for r in requires):
        raise CaseError(f"{where}: 'requires' must be a list of capability names")
    raw_steps = raw.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise CaseError(f"{where}: needs at least one [[case.step]]")
    steps = tuple(_parse_step(s, f"{where} step {i}", i) for i, s in enumerate(raw_steps, start=1))
    if any(s.conn == 2 for s in steps) and "multi_connection" not in requires:
        raise CaseError(f'{where}: uses conn = 2, so it must declare requires = ["multi_connection"]')
    return Case(
        id=case_id,
        description=description.strip(),
        steps=steps,
        source=source,
        requires=tuple(requires),
        setup=setup,
    )


def _parse_step(raw: Any, where: str, index: int) -> Step:
    if not isinstance(raw, dict):
        raise CaseError(f"{where} must be a table")
    unknown = set(raw) - _STEP_KEYS
    if unknown:
        raise CaseError(f"{where}: unknown key(s) {sorted(unknown)} (allowed: {sorted(_STEP_KEYS)})")
    op = raw.get("op", "execute")
    if op not in OPS:
        raise CaseError(f"{where}: op {op!r} is not one of {', '.join(OPS)}")
    sql = raw.get("sql", "")
    if op in _SQL_OPS:
        if not isinstance(sql, str) or not sql.strip():
            raise CaseError(f"{where}: op {op!r} needs non-empty 'sql'")
    elif "sql" in raw:
        raise CaseError(f"{where}: op {op!r} takes no 'sql' (use op = \"execute\" to run SQL text)")
    conn = raw.get("conn", 1)
    if conn not in (1, 2) or isinstance(conn, bool):
        raise CaseError(f"{where}: conn must be 1 or 2, got {conn!r}")
    mode = raw.get("mode", "DEFERRED")
    if op != "begin" and "mode" in raw:
        raise CaseError(f"{where}: 'mode' only applies to op = \"begin\"")
    if not isinstance(mode, str) or mode.upper() not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
        raise CaseError(f"{where}: mode must be DEFERRED, IMMEDIATE or EXCLUSIVE, got {mode!r}")
    params: Any = ()
    if "params" in raw:
        if op not in ("execute", "executemany"):
            raise CaseError(f"{where}: op {op!r} takes no 'params'")
        try:
            params = _parse_params(raw["params"], many=op == "executemany")
        except ValueError as exc:
            raise CaseError(f"{where}: params: {exc}") from None
    elif op == "executemany":
        raise CaseError(f"{where}: op 'executemany' needs 'params' (a list of parameter lists)")
    expect = _parse_expect(raw["expect"], where) if "expect" in raw else None
    return Step(index=index, op=op, sql=sql, params=params, conn=conn, mode=mode.upper(), expect=expect)


def parse_value(raw: Any) -> Any:
    """A case value: a TOML scalar as is, or a typed one-key table (see module docs)."""
    if isinstance(raw, (bool, int, float, str)):
        return raw
    if isinstance(raw, dict):
        if set(raw) == {"repeat", "times"}:
            unit = parse_value(raw["repeat"])
            times = raw["times"]
            if not isinstance(unit, (str, bytes)) or not isinstance(times, int) or isinstance(times, bool):
                raise ValueError(f"repeat needs a text/blob value and an integer 'times', got {raw!r}")
            if times < 0 or len(unit) * times > _MAX_REPEAT:
                raise ValueError(f"repeat size out of range (0..{_MAX_REPEAT} bytes): {raw!r}")
            return unit * times
        if set(raw) == {"hex"}:
            if not isinstance(raw["hex"], str):
                raise ValueError(f"'hex' must be a hex string, got {raw['hex']!r}")
            return bytes.fromhex(raw["hex"])
        return decode_value(raw)
    raise ValueError(f"unsupported value {raw!r} (use a scalar or a typed table such as {{null = true}})")


def _parse_params(raw: Any, *, many: bool) -> Any:
    if many:
        if not isinstance(raw, list):
            raise ValueError("executemany params must be a list of parameter lists/tables")
        return [_parse_params(p, many=False) for p in raw]
    if isinstance(raw, list):
        return tuple(parse_value(v) for v in raw)
    if isinstance(raw, dict):
        return {str(k): parse_value(v) for k, v in raw.items()}
    raise ValueError(f"params must be a list (positional) or a table (named), got {raw!r}")


def _parse_expect(raw: Any, where: str) -> Expect:
    if not isinstance(raw, dict):
        raise CaseError(f"{where}: 'expect' must be a table")
    unknown = set(raw) - _EXPECT_KEYS
    if unknown:
        raise CaseError(f"{where}: expect has unknown key(s) {sorted(unknown)} (allowed: {sorted(_EXPECT_KEYS)})")
    try:
        rows = None
        if "rows" in raw:
            if not isinstance(raw["rows"], list) or not all(isinstance(r, list) for r in raw["rows"]):
                raise ValueError("expect.rows must be a list of rows (lists)")
            rows = tuple(tuple(parse_value(v) for v in row) for row in raw["rows"])
    except ValueError as exc:
        raise CaseError(f"{where}: {exc}") from None
    columns = raw.get("columns")
    if columns is not None and (not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)):
        raise CaseError(f"{where}: expect.columns must be a list of strings")
    for key in ("rowcount", "lastrowid"):
        if key in raw and (not isinstance(raw[key], int) or isinstance(raw[key], bool)):
            raise CaseError(f"{where}: expect.{key} must be an integer")
    for key in ("error", "dbapi_class"):
        if key in raw and not isinstance(raw[key], str):
            raise CaseError(f"{where}: expect.{key} must be a string")
    if ("error" in raw or "dbapi_class" in raw) and set(raw) & {"rows", "columns", "rowcount", "lastrowid"}:
        raise CaseError(f"{where}: expect cannot ask for an error and a result at once")
    return Expect(
        rows=rows,
        columns=tuple(columns) if columns is not None else None,
        rowcount=raw.get("rowcount"),
        lastrowid=raw.get("lastrowid"),
        has_lastrowid="lastrowid" in raw,
        error=raw.get("error"),
        dbapi_class=raw.get("dbapi_class"),
    )


# -- running ----------------------------------------------------------------------------------


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


def run_case(case: Case, db: DB) -> CaseRun:
    """Run every step on ``db`` (a fresh database); errors are outcomes, not exceptions."""
    run = CaseRun(case=case, backend=db.backend_id, served_by=db.served_by)
    second: Connection | None = None
    refused: Outcome | None = None  # opening the second connection failed: each of its steps shows that error
    for step in case.all_steps():
        if step.conn == 2:
            if second is None and refused is None:
                try:
                    second = db.connect()
                except DatabaseError as exc:
                    refused = Outcome(error=exc)
            if refused is not None:
                run.steps.append(StepRun(step, refused))
                continue
            assert second is not None
            conn = second
        else:
            conn = db.connection
        run.steps.append(StepRun(step, Outcome.capture(_perform, conn, step)))
    return run


def _perform(conn: Connection, step: Step) -> Any:
    from .values import Result

    if step.op == "execute":
        return conn.execute(step.sql, step.params)
    if step.op == "executemany":
        return conn.executemany(step.sql, step.params)
    if step.op == "executescript":
        conn.executescript(step.sql)
        return None
    if step.op == "begin":
        conn.begin(step.mode)
        return None
    if step.op == "commit":
        conn.commit()
        return None
    if step.op == "rollback":
        conn.rollback()
        return None
    if step.op == "in_transaction":
        return Result(columns=("in_transaction",), rows=[(int(conn.in_transaction),)])
    raise AssertionError(f"unhandled op {step.op!r}")  # parse_case rejects unknown ops


@dataclass
class StepDifference:
    step: Step
    expected: Outcome
    actual: Outcome
    differences: list[Difference]


def step_context(step: Step, in_transaction: bool | None, history: History | None = None) -> StepContext:
    """What rules may match on besides the difference: statement kind, SQL, parameter shapes."""
    many = step.params if step.op == "executemany" else None
    prior = history.prior(None) if history is not None else frozenset()
    return statement_context(step.op, step.sql, step.params if many is None else (), many, in_transaction,
                             prior=prior)


def _note(history: History, step: Step) -> None:
    many = step.params if step.op == "executemany" else None
    history.note(None, step.op, step.sql, step.params if many is None else (), many)


def compare_runs(reference: CaseRun, actual: CaseRun) -> list[StepDifference]:
    """Step-by-step differences of ``actual`` from ``reference`` (empty when identical)."""
    out: list[StepDifference] = []
    in_tx: dict[int, bool] = {}
    history = History()
    for want, got in zip(reference.steps, actual.steps):
        diffs = compare_outcomes(
            want.outcome, got.outcome, sql=want.step.sql, executemany=want.step.op == "executemany"
        )
        before = in_tx.get(want.step.conn, False)
        in_tx[want.step.conn] = transaction_after(want.step.sql, want.step.op, before)
        if diffs:
            context = step_context(want.step, before, history)
            out.append(StepDifference(want.step, want.outcome, got.outcome, [d.with_context(context) for d in diffs]))
        _note(history, want.step)
    return out


def check_expectations(run: CaseRun) -> list[StepDifference]:
    """Where ``run`` contradicts the case's ``expect`` tables (aspects ``expect.<key>``)."""
    out: list[StepDifference] = []
    in_tx: dict[int, bool] = {}
    for sr in run.steps:
        before = in_tx.get(sr.step.conn, False)
        in_tx[sr.step.conn] = transaction_after(sr.step.sql, sr.step.op, before)
        exp = sr.step.expect
        if exp is None:
            continue
        diffs = _expect_diffs(exp, sr.outcome)
        if diffs:
            context = step_context(sr.step, before)
            out.append(StepDifference(sr.step, Outcome(), sr.outcome, [d.with_context(context) for d in diffs]))
    return out


def _expect_diffs(exp: Expect, outcome: Outcome) -> list[Difference]:
    diffs: list[Difference] = []
    if exp.error is not None or exp.dbapi_class is not None:
        if not outcome.failed:
            return [
                Difference("expect.error", f"expected error {exp.error or exp.dbapi_class}, got {outcome.summary()}")
            ]
        fields = outcome.error_fields()
        if exp.error is not None and fields.get("kind") != exp.error:
            diffs.append(Difference("expect.error", f"expected error kind {exp.error!r}, got {fields.get('kind')!r}"))
        if exp.dbapi_class is not None and fields.get("dbapi_class") != exp.dbapi_class:
            diffs.append(
                Difference(
                    "expect.dbapi_class",
                    f"expected {exp.dbapi_class}, got {fields.get('exc_type')} ({fields.get('dbapi_class')})",
                )
            )
        return diffs
    if outcome.failed or outcome.result is None:
        fields = outcome.error_fields()
        message = outcome.error.message if outcome.error is not None else ""
        return [Difference("expect.error", f"unexpected error {fields.get('kind')}: {message}")]
    result = outcome.result
    if exp.columns is not None and tuple(result.columns) != exp.columns:
        diffs.append(Difference("expect.columns", f"columns {list(exp.columns)} expected, got {list(result.columns)}"))
    if exp.rows is not None:
        want = [tuple(canonical(v) for v in row) for row in exp.rows]
        got = [tuple(canonical(v) for v in row) for row in result.rows]
        if len(want) != len(got):
            diffs.append(
                Difference("expect.rows", f"{len(want)} row(s) expected, got {len(got)}: {_show_rows(result.rows)}")
            )
        elif want != got:
            index = next(i for i, (w, g) in enumerate(zip(want, got)) if w != g)
            diffs.append(
                Difference(
                    "expect.rows",
                    f"row {index}: expected {_show_rows(exp.rows[index : index + 1])}, "
                    f"got {_show_rows(result.rows[index : index + 1])}",
                )
            )
    if exp.rowcount is not None and result.rowcount != exp.rowcount:
        diffs.append(Difference("expect.rowcount", f"rowcount {exp.rowcount} expected, got {result.rowcount}"))
    if exp.has_lastrowid and result.lastrowid != exp.lastrowid:
        diffs.append(Difference("expect.lastrowid", f"lastrowid {exp.lastrowid} expected, got {result.lastrowid}"))
    return diffs


def _show_rows(rows: Sequence[Sequence[Any]], limit: int = 5) -> str:
    shown = ["(" + ", ".join(display(v) for v in row) + ")" for row in rows[:limit]]
    more = f" ... +{len(rows) - limit} more" if len(rows) > limit else ""
    return "[" + ", ".join(shown) + more + "]"


def _show_value(value: Any) -> str:
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return display(value)


def _show_params(params: Any, many: bool) -> str:
    if many:
        items = list(params)
        shown = [_show_params(p, False) for p in items[:3]]
        return "[" + ", ".join(shown) + (f", ... {len(items)} sets" if len(items) > 3 else "") + "]"
    if isinstance(params, Mapping):
        return "{" + ", ".join(f"{k}: {_show_value(v)}" for k, v in params.items()) + "}"
    return "[" + ", ".join(_show_value(v) for v in params) + "]"


# -- judging ----------------------------------------------------------------------------------


@dataclass
class CaseVerdict:
    """What a test should do: pass, xfail (``known``), skip or fail, with the message."""

    status: str  # "same", "known", "diverged", "fixed", "expired", "skip"
    message: str = ""
    reason: str = ""
    verdict: Verdict | None = None
    step_differences: list[StepDifference] = field(default_factory=list)
    served_by: str = ""

    @property
    def passed(self) -> bool:
        return self.status in ("same", "known")

    def triage(self) -> dict[str, Any]:
        """Same shape as ``traceparity replay --json``; ``seq`` is the case's step number (0 = setup)."""
        if self.verdict is None or not self.verdict.attributions:
            return {}
        flat = [(sd.step, d) for sd in self.step_differences for d in sd.differences]
        pairs = [(step.index, a) for (step, _), a in zip(flat, self.verdict.attributions)]
        sql = {step.index: " ".join(step.sql.split())[:200] or step.op for step, _ in flat}
        return {
            "differences": [{"seq": seq, "aspect": a.difference.aspect, "severity": a.severity, "rule": a.rule_id,
                             "expected": a.difference.expected, "actual": a.difference.actual,
                             "relation": a.difference.relation, "sql": sql.get(seq)} for seq, a in pairs],
            "root_causes": root_causes(pairs),
        }


def flatten(step_diffs: Sequence[StepDifference]) -> list[Difference]:
    """Differences with the step named in the message; aspect, observations and context unchanged."""
    return [replace(d, message=f"{sd.step.label}: {d.message}") for sd in step_diffs for d in sd.differences]


def render(
    case: Case,
    backend: str,
    against: str,
    step_diffs: Sequence[StepDifference],
    *,
    title: str | None = None,
    verdict: Verdict | None = None,
) -> str:
    """A failure report: the case, its file, then each diverging step (most severe first) with
    its SQL, each difference's severity and rule (or "unknown"), expected and actual."""
    attributions = verdict.attributions if verdict is not None else []
    lines = [title or f"conformance case {case.id} on {backend} differs from the reference {against}"]
    if attributions:
        lines[0] += f": {summarize(attributions)}"
    lines.append(f"  case file: {case.source}")
    lines.append(f"  what it checks: {case.description}")
    labels: dict[int, list[tuple[int, int, str]]] = {}
    flat = [(sd, d) for sd in step_diffs for d in sd.differences]
    for (sd, d), a in zip(flat, attributions):
        rank = (RANK[a.severity], 0 if a.rule is None else 1)
        labels.setdefault(id(sd), []).append((*rank, f"    [{a.severity}; {a.rule_id or 'unknown'}] [{d.aspect}] "
                                                     f"{d.message}"))
    order = sorted(step_diffs, key=lambda sd: min(labels.get(id(sd), [(len(RANK), 1, "")]))[:2])
    for sd in order:
        lines.append(f"  {sd.step.describe()}")
        if id(sd) in labels:
            lines.extend(text for *_, text in sorted(labels[id(sd)], key=lambda x: x[:2]))
        else:
            lines.extend(f"    [{d.aspect}] {d.message}" for d in sd.differences)
        if sd.expected.result is not None or sd.expected.failed:
            lines.append(f"    expected ({against}): {sd.expected.summary()}")
        lines.append(f"    actual   ({backend}): {_summary(sd.actual)}")
    return "\n".join(lines)


def _summary(outcome: Outcome) -> str:
    if outcome.error is not None:
        return f"{outcome.summary()}: {outcome.error.exc_type}: {outcome.error.message}"
    return outcome.summary()


class ConformanceRunner:
    """Runs cases on backends; the reference's runs are computed once per case and cached."""

    def __init__(
        self,
        registry: BackendRegistry,
        reference: str,
        divergences: DivergenceRegistry,
        new_context: Callable[[str], BackendContext],
    ) -> None:
        self.registry = registry
        self.reference = reference
        self.divergences = divergences
        self.new_context = new_context
        self._reference_runs: dict[str, CaseRun] = {}

    def missing_requirements(self, case: Case, backend_id: str) -> str | None:
        """Why ``case`` cannot run on ``backend_id`` (``None`` when it can)."""
        for bid in dict.fromkeys([backend_id, self.reference]):
            backend = self.registry.get(bid)
            missing = [r for r in case.requires if not backend.has(r)]
            if missing:
                role = "the reference backend " if bid == self.reference and bid != backend_id else ""
                return (
                    f"case {case.id} requires {', '.join(missing)}, which {role}{bid} does not declare "
                    f"(its capabilities: {', '.join(sorted(backend.capabilities)) or 'none'})"
                )
        return None

    def run_on(self, case: Case, backend_id: str) -> CaseRun:
        backend = self.registry.get(backend_id)
        ctx = self.new_context(f"{case.id}-{backend_id}")
        db = DB(backend, ctx)
        try:
            return run_case(case, db)
        finally:
            db.close()

    def reference_run(self, case: Case) -> CaseRun:
        run = self._reference_runs.get(case.id)
        if run is None:
            run = self._reference_runs[case.id] = self.run_on(case, self.reference)
        return run

    def check(self, case: Case, backend_id: str) -> CaseVerdict:
        """Run ``case`` on ``backend_id`` and decide, via the registry, what the test does."""
        why = self.missing_requirements(case, backend_id)
        if why:
            return CaseVerdict("skip", message=why, reason=why)
        reference = self.reference_run(case)
        served_by = reference.served_by
        if backend_id == self.reference:
            step_diffs = check_expectations(reference)
            # The reference is only judged on its 'expect' facts: an entry whose backend glob
            # happens to match the reference (e.g. "*") but is about other aspects must not
            # turn a clean reference run into "no longer diverges".
            if not step_diffs and not any(
                a.startswith("expect.")
                for e in self.divergences.strict_for(backend_id, case.subject)
                for a in e.aspects
            ):
                return CaseVerdict("same", served_by=served_by)
            title = (
                f"conformance case {case.id}: the reference backend {backend_id} contradicts the case's "
                "'expect' (fix the case, or the reference changed behaviour)"
            )
        else:
            actual = self.run_on(case, backend_id)
            served_by = actual.served_by
            step_diffs = compare_runs(reference, actual)
            title = None
        verdict = self.divergences.judge(backend_id, case.subject, flatten(step_diffs))
        report = render(case, backend_id, self.reference, step_diffs, title=title, verdict=verdict) \
            if step_diffs else ""
        if verdict.status == "same":
            return CaseVerdict("same", verdict=verdict, served_by=served_by)
        if verdict.status == "known":
            return CaseVerdict(
                "known",
                message=report,
                reason=verdict.reason,
                verdict=verdict,
                step_differences=step_diffs,
                served_by=served_by,
            )
        if verdict.status == "diverged":
            message = report + (
                "\n  if this is a real, accepted difference, describe its cause as a rule in pyproject.toml "
                "([[tool.traceparity.rules]] with id, backend, aspects, expected/actual/relation, reason); "
                "first reduce it with: traceparity minimize"
            )
            return CaseVerdict(
                "diverged", message=message, verdict=verdict, step_differences=step_diffs, served_by=served_by
            )
        message = verdict.message + (("\n" + report) if report else "")
        return CaseVerdict(
            verdict.status, message=message, verdict=verdict, step_differences=step_diffs, served_by=served_by
        )
