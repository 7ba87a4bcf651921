"""The cross-backend SQL-semantics conformance suite: its engine (free of pytest) and cases.

Cases are data (``cases/*.toml``, shipped with the package) so that a downstream team can
read what is checked and a new backend runs exactly the same statements. Run them with
``traceparity conformance --backends=all`` (``pytest --pyargs
pytest_traceparity.pytest_glue.conformance_suite``). Modules: :mod:`.case` (model, loading,
validation), :mod:`.expectations` (the ``expect`` keys), :mod:`.runner` (run, compare,
judge), :mod:`.render` (failure reports), :mod:`.values` (how cases spell values).

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
``error`` (a canonical kind from :data:`pytest_traceparity.errors.ERROR_KINDS`),
``dbapi_class``.
"""

from __future__ import annotations

from .case import (
    SUBJECT_PREFIX,
    Case,
    CaseError,
    CaseRun,
    Step,
    StepDifference,
    StepRun,
    default_cases_dir,
    load_case_file,
    load_cases,
    parse_case,
)
from .expectations import Expect, expect_diffs, parse_expect
from .render import flatten, render
from .runner import CaseVerdict, ConformanceRunner, check_expectations, compare_runs, run_case, step_context
from .values import parse_value

__all__ = [
    "SUBJECT_PREFIX",
    "Case",
    "CaseError",
    "CaseRun",
    "CaseVerdict",
    "ConformanceRunner",
    "Expect",
    "Step",
    "StepDifference",
    "StepRun",
    "check_expectations",
    "compare_runs",
    "default_cases_dir",
    "expect_diffs",
    "flatten",
    "load_case_file",
    "load_cases",
    "parse_case",
    "parse_expect",
    "parse_value",
    "render",
    "run_case",
    "step_context",
]
