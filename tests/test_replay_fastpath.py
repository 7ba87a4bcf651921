"""The replay's fast paths must agree exactly with the full comparison they skip.

Why: verify_trace answers "equal to the golden?" on the golden's raw JSON and states
rowcount-only differences without decoding it; a wrong shortcut would hide a divergence
or invent one. These checks run the shortcut and the full path on the same inputs.
"""

from __future__ import annotations

import importlib
import io
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from replay_contexts import contexts

from pytest_traceparity.backends.base import BackendContext
from pytest_traceparity.compare import Outcome, compare_outcomes
from pytest_traceparity.divergences import Verdict
from pytest_traceparity.golden.fastcheck import counts_differ, outcome_matches, raw_summary
from pytest_traceparity.golden.store import GoldenHeader
from pytest_traceparity.registry import standalone_registry
from pytest_traceparity.values import Result

fingerprint = importlib.import_module("pytest_traceparity.fingerprint")

_VALUES: list[Any] = [
    None,
    0,
    1,
    -1,
    2**31,
    -(2**63),
    2**63 - 1,
    0.0,
    -0.0,
    1.5,
    float("inf"),
    float("nan"),
    "",
    "a",
    "a\x00b",
    "ünï",
    b"",
    b"\x00\xff",
    1e300,
]


def _result(rnd: random.Random) -> Result:
    width = rnd.randrange(0, 4)
    rows = [tuple(rnd.choice(_VALUES) for _ in range(width)) for _ in range(rnd.randrange(0, 4))]
    return Result(
        columns=tuple(f"c{i}" for i in range(width)),
        rows=rows,
        rowcount=rnd.choice([-1, 0, 1, 3]),
        lastrowid=rnd.choice([None, 0, 7]),
    )


def _variant(rnd: random.Random, result: Result) -> Result:
    """The same result, or one changed in one place (a value, a type, a count, a column)."""
    rows = [list(r) for r in result.rows]
    change = rnd.randrange(6)
    if change == 1 and rows and rows[0]:
        rows[0][0] = rnd.choice(_VALUES)
    elif change == 2:
        rows = rows[::-1]
    elif change == 3:
        return Result(result.columns, [tuple(r) for r in rows], rnd.choice([-1, 0, 5]), result.lastrowid)
    elif change == 4:
        return Result(result.columns, [tuple(r) for r in rows], result.rowcount, rnd.choice([None, 1, 9]))
    elif change == 5 and rows:
        rows.pop()
    return Result(result.columns, [tuple(r) for r in rows], result.rowcount, result.lastrowid)


def _golden_json(rnd: random.Random, result: Result) -> dict[str, Any]:
    data = Outcome(result=result).to_json()
    if rnd.random() < 0.2 and data["result"]["rows"] and data["result"]["rows"][0]:  # a hand-written golden
        cell = data["result"]["rows"][0][0]
        if "int" in cell:
            cell["int"] = "0" + cell["int"].lstrip("-")
        elif "real" in cell:
            cell["real"] = cell["real"] + "0" if "." in cell["real"] else cell["real"]
    return data


def _new_trace(tmp_path: Path, name: str) -> tuple[Path, Path, Any]:
    """``(trace, golden, writer)``: a trace to write under ``traces/`` and where its golden goes."""
    from pytest_traceparity.trace.format import TraceWriter

    trace, golden = tmp_path / "traces" / f"{name}.jsonl", tmp_path / "golden" / f"{name}.golden.jsonl"
    trace.parent.mkdir()
    return trace, golden, TraceWriter(trace)


def _golden_from_reference(tmp_path: Path, trace: Path, golden: Path, writer: Any) -> tuple[Any, Any]:
    """Close the trace ``writer``, make its golden on the reference backend: ``(context factory, registry)``."""
    from pytest_traceparity.golden import verify

    writer.close()
    make = contexts(tmp_path)
    registry = standalone_registry()
    verify.update_golden(trace, registry.get("sqlalchemy-sqlite"), make, golden=golden)
    return make, registry


def _selects_trace(tmp_path: Path, name: str, count: int) -> tuple[Path, Path, Any, Any]:
    """A trace of ``count`` statements ``SELECT i`` on one connection, with its golden from the reference:
    ``(trace, golden, context factory, registry)``."""
    trace, golden, writer = _new_trace(tmp_path, name)
    writer.write_event("open", 1, db="db1", target=f"{name}.db", driver="sqlite3")
    for i in range(count):
        writer.write_event("execute", 1, sql=f"SELECT {i}", params=[], flush=False)
    writer.write_event("close", 1)
    make, registry = _golden_from_reference(tmp_path, trace, golden, writer)
    return trace, golden, make, registry


def test_fast_answers_agree_with_the_full_comparison() -> None:
    rnd = random.Random(15)
    checked = {"equal": 0, "counts": 0}
    for _ in range(4000):
        golden = _result(rnd)
        raw = _golden_json(rnd, golden)
        actual = Outcome(result=_variant(rnd, golden))
        sql = rnd.choice(["SELECT a FROM t", "SELECT a FROM t ORDER BY a", "INSERT INTO t VALUES (1)", ""])
        full = compare_outcomes(Outcome.from_json(raw), actual, sql=sql)
        if outcome_matches(raw, actual):
            checked["equal"] += 1
            assert full == [], (raw, actual)
        counted = counts_differ(raw, actual, sql=sql)
        if counted is not None:
            checked["counts"] += 1
            assert [(d.aspect, d.message, d.expected, d.actual) for d in counted] == [
                (d.aspect, d.message, d.expected, d.actual) for d in full
            ]
            assert raw_summary(raw) == Outcome.from_json(raw).summary()
    assert checked["equal"] > 500 and checked["counts"] > 500  # both shortcuts were really exercised


def test_errors_never_take_the_fast_path() -> None:
    error = Outcome(error_json={"kind": "constraint.unique", "dbapi_class": "IntegrityError"})
    ok = Outcome(result=Result())
    assert not outcome_matches(error.to_json(), ok)
    assert not outcome_matches(ok.to_json(), error)
    assert counts_differ(error.to_json(), ok) is None


def test_streamed_snapshot_equals_the_whole_table_snapshot(tmp_path: Path) -> None:
    """Connection.stream (fetchmany chunks) digests exactly what one SELECT * does."""
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE t (a INTEGER, b TEXT, c REAL, d BLOB)")
        raw.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?)", [(i, f"r{i}", i / 3, bytes([i % 256])) for i in range(1300)]
        )
    for backend_id in ("libsql-local", "sqlalchemy-sqlite"):
        backend = standalone_registry().get(backend_id)
        database = backend.create_database(BackendContext(workdir=tmp_path / backend_id, name="copy"))
        conn = database.connect()
        try:
            conn.execute(f"ATTACH DATABASE '{path}' AS src")
            conn.execute("CREATE TABLE t AS SELECT * FROM src.t")
            conn.execute("DETACH DATABASE src")
            whole = fingerprint.safe_snapshot(lambda sql, c=conn: c.execute(sql))
            chunks = list(conn.stream("SELECT * FROM t", 500))
            streamed = fingerprint.safe_snapshot(
                lambda sql, c=conn: c.execute(sql), None, lambda sql, c=conn: c.stream(sql, 500)
            )
        finally:
            conn.close()
            database.close()
        assert streamed == whole and whole["content"]["t"]["rows"] == 1300
        if backend_id == "libsql-local":
            assert [len(c) for c in chunks] == [500, 500, 300]  # really read in chunks


def _registry(*subjects: str) -> Any:
    from pytest_traceparity.divergences import DivergenceRegistry
    from pytest_traceparity.divergences.rules import parse_rules

    rules = [
        {
            "id": "t.rowcount-after-select",
            "backend": ["libsql-local"],
            "aspects": ["rowcount.select"],
            "expected": ["-1"],
            "reason": "libsql counts rows after a SELECT",
            "severity": "metadata",
        }
    ]
    if subjects:
        rules.append(
            {
                "id": "t.one-case",
                "backend": ["libsql-local"],
                "subjects": list(subjects),
                "reason": "only where a case says so",
            }
        )
    return DivergenceRegistry(parse_rules(rules, "test"))


def test_a_remembered_verdict_is_the_verdict_and_still_counts_hits() -> None:
    from pytest_traceparity.compare import Difference, statement_context

    context = statement_context("execute", "SELECT 1", ())
    diffs = [Difference("rowcount.select", "rowcount -1 != 1", "-1", "1").with_context(context)]
    registry = _registry()
    memo: dict[Any, Verdict] = {}
    first = registry.judge_alike("libsql-local", "trace::t#1", diffs, memo)
    again = registry.judge_alike("libsql-local", "trace::t#2", diffs, memo)
    fresh = _registry().judge("libsql-local", "trace::t#2", diffs)
    assert again is first and again.status == fresh.status == "known"
    assert [(a.rule_id, a.severity, a.difference) for a in again.attributions] == [
        (a.rule_id, a.severity, a.difference) for a in fresh.attributions
    ]
    assert [e.id for e in again.entries] == [e.id for e in fresh.entries]
    assert registry.hits["t.rowcount-after-select"] == 2  # counted per step, as judge() does
    assert again.subject == "trace::t#1" and fresh.message == "trace::t#2" + again.message[len("trace::t#1") :]


def test_verdicts_are_not_shared_where_a_rule_names_subjects() -> None:
    assert not _registry().subjects_matter("libsql-local", "trace::t#")
    assert not _registry("conformance::bind.*").subjects_matter("libsql-local", "trace::t#")
    assert _registry("trace::t#12").subjects_matter("libsql-local", "trace::t#")
    assert _registry("*::t#*").subjects_matter("libsql-local", "trace::t#")
    assert _registry("trace::*").subjects_matter("libsql-local", "trace::t#")
    assert not _registry("trace::*").subjects_matter("sqld-http", "trace::t#")  # rule not on that backend


def test_inlined_dbapi_execute_equals_the_generic_path(tmp_path: Path) -> None:
    """DBAPIConnection.execute (inlined) returns and raises exactly what Connection.execute's
    _execute -> _result -> _normalized path does, on the real libsql and sqlite3 clients."""
    import libsql

    from pytest_traceparity.backends.base import Connection
    from pytest_traceparity.backends.dbapi import DBAPIConnection, GuardedDBAPIConnection
    from pytest_traceparity.errors import DatabaseError

    statements: list[tuple[str, tuple[Any, ...]]] = [
        ("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT, c REAL, d BLOB)", ()),
        ("INSERT INTO t (b, c, d) VALUES (?, ?, ?)", ("x", 1.5, b"\x00")),
        ("INSERT INTO t (b, c, d) VALUES (?, ?, ?)", (None, float("inf"), None)),
        ("SELECT * FROM t ORDER BY a", ()),
        ("SELECT count(*), 'ü' FROM t", ()),
        ("UPDATE t SET c = c + 1 WHERE a = ?", (1,)),
        ("SELECT * FROM t WHERE a > 99", ()),
        ("INSERT INTO t (a) VALUES (1)", ()),
        ("SELECT nope FROM t", ()),
        ("SELEC 1", ()),
    ]
    for name, connect in (
        ("libsql", lambda p: libsql.connect(p, isolation_level=None)),
        ("sqlite3", lambda p: sqlite3.connect(p, isolation_level=None)),
    ):
        fast = DBAPIConnection(connect(str(tmp_path / f"{name}-fast.db")), name)
        slow = DBAPIConnection(connect(str(tmp_path / f"{name}-slow.db")), name)
        for sql, params in statements:
            answers: list[tuple[str, Any]] = []
            for run in (fast.execute, lambda s, p, c=slow: Connection.execute(c, s, p)):
                try:
                    answers.append(("ok", run(sql, params)))
                except DatabaseError as exc:
                    answers.append(("error", exc.to_json()))
            assert answers[0] == answers[1], (name, sql)
        fast.close()
        slow.close()
    assert GuardedDBAPIConnection.execute is Connection.execute  # a guarded connection keeps its _run wrapper


def test_replayer_fast_step_equals_the_full_dispatch(tmp_path: Path) -> None:
    """Replayer.step's direct execute gives _step's outcome, and still marks what _step marks."""

    from pytest_traceparity.trace.format import Event
    from pytest_traceparity.trace.replayer import Replayer

    make = contexts(tmp_path)
    events = [
        Event(1, 1, "open", db="db1", target="a.db", driver="sqlite3"),
        Event(2, 1, "execute", "CREATE TABLE t (a INTEGER, b TEXT)", ()),
        Event(3, 1, "execute", "INSERT INTO t VALUES (?, ?)", (1, "x")),
        Event(4, 1, "execute", "SELECT * FROM t", ()),
        Event(5, 1, "execute", "SELECT * FROM nope", ()),
        Event(6, 1, "execute", "SELECT 1", (), error={"in_progress": True, "kind": "other"}),
        Event(7, 1, "register", kind="function", name="f", arity=1),
        Event(8, 1, "execute", "SELECT f(a) FROM t", ()),
    ]
    backend = standalone_registry().get("libsql-local")
    with Replayer(backend, make, "t") as fast, Replayer(backend, make, "u") as full:
        for event in events:
            got, want = fast.step(event), full._step(event)
            assert got.to_json() == want.to_json(), event
        assert fast.stats.excluded == full.stats.excluded and len(fast.stats.excluded) == 2


def test_folded_known_steps_equal_the_judged_ones(tmp_path: Path, monkeypatch: Any) -> None:
    """Past KEEP_KNOWN a remembered known verdict is folded before contexts are attached: the report
    and the rule hits must equal those of judging every step in full."""

    from pytest_traceparity.divergences import DivergenceRegistry, builtin_entries
    from pytest_traceparity.golden import steps, verify

    trace, golden, writer = _new_trace(tmp_path, "k")
    writer.write_event("open", 1, db="db1", target="k.db", driver="sqlite3")
    writer.write_event("execute", 1, sql="CREATE TABLE t (a INTEGER)", params=[])
    for i in range(60):
        writer.write_event("execute", 1, sql="INSERT INTO t VALUES (?)", params=[{"int": str(i)}], flush=False)
        writer.write_event("execute", 1, sql="SELECT count(*) FROM t", params=[], flush=False)
    writer.write_event("close", 1)
    make, registry = _golden_from_reference(tmp_path, trace, golden, writer)
    monkeypatch.setattr(steps, "KEEP_KNOWN", 5)  # where the judging reads it
    results = []
    for remember in (True, False):
        rules = DivergenceRegistry(builtin_entries())
        if not remember:
            monkeypatch.setattr(rules, "remembered", lambda memo, key: None)  # judge every step in full
            monkeypatch.setattr(rules, "judge_alike", lambda b, s, d, memo, key=None, r=rules: r.judge(b, s, d))
        report = verify.verify_trace(trace, registry.get("libsql-local"), make, rules, golden=golden)
        results.append((report.to_json(), report.summary(), report.xfail_reason(), dict(rules.hits)))
    assert results[0] == results[1]
    assert results[0][0]["known_not_listed"] > 50  # the fold really ran


def test_param_shapes_inline_cases_equal_the_value_by_value_rules() -> None:
    """param_shapes' inlined fast cases (plain int/str/None, finite float, bytes) give what
    _value_shapes says for every value, and equal shapes come back as one shared set."""
    from pytest_traceparity.compare import _value_shapes, param_shapes

    values: list[Any] = [
        *_VALUES,
        True,
        False,
        2**40,
        -(2**31) - 1,
        2**64,
        float("-inf"),
        -0.0,
        5e-324,
        bytearray(b"x"),
        memoryview(b"y"),
        "nul\x00",
        3,
    ]
    rnd = random.Random(7)
    for _ in range(3000):
        params = tuple(rnd.choice(values) for _ in range(rnd.randrange(0, 5)))
        expected: set[str] = set()
        for value in params:
            _value_shapes(value, expected)
        shapes, size = param_shapes(params)
        assert (shapes, size) == (frozenset(expected), len(params)), params
        assert param_shapes(list(params))[0] is shapes


def test_short_texts_equal_their_collapsed_form() -> None:
    """verify._short returns a text unchanged only where collapsing its whitespace would not change it."""
    from pytest_traceparity.golden.verify import _short

    pieces = ["a", "b", " ", "  ", "\n", "\t", "\xa0", "\u2003", "\x1f", "\x85", "é", "'", "x" * 90]
    rnd = random.Random(3)
    for _ in range(5000):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(0, 8)))
        collapsed = " ".join(text.split())
        want = collapsed if len(collapsed) <= 200 else collapsed[:197] + "..."
        assert _short(text) == want, repr(text)


def _rowless(rnd: random.Random) -> Result:
    columns = rnd.choice([(), ("a",), ("id", "näme"), ('q"x', "b\\c")])
    return Result(columns, [], rnd.choice([-1, 0, 1, 7]), rnd.choice([None, 0, 3]))


def test_a_golden_line_matched_on_its_text_decodes_to_an_equal_step() -> None:
    """``rowless_matches`` may say "equal" only where the decoded line has this step's seq, op and SQL and an
    outcome the full comparison finds equal; canonical lines must really match, edited ones never wrongly."""
    from pytest_traceparity.golden.fastcheck import line_head, rowless_matches, rowless_tail
    from pytest_traceparity.golden.store import GoldenWriter
    from pytest_traceparity.trace.format import Event

    rnd = random.Random(16)
    matched = edited = 0
    for _ in range(3000):
        golden = _rowless(rnd) if rnd.random() < 0.7 else _result(rnd)
        sql = rnd.choice(["SELECT a FROM t", 'INSERT INTO "t" VALUES (?)', "UPDATE t SET a = 'é\n'", None])
        op = "execute" if sql is not None else rnd.choice(["begin", "commit", "open"])
        params = (rnd.choice(_VALUES),) if sql and "?" in sql else ()
        event = Event(seq=rnd.randrange(1, 99), conn=rnd.randrange(1, 3), op=op, sql=sql, params=params)
        out = io.StringIO()
        writer = GoldenWriter(out, GoldenHeader(trace="t", trace_sha256=None, reference="sqlite"))
        writer.step(event, Outcome(result=golden))
        text = out.getvalue().splitlines(keepends=True)[1]
        canonical = text
        if rnd.random() < 0.3:  # a hand edit: one character changed, dropped or added
            at = rnd.randrange(len(text) - 1)
            text = text[:at] + rnd.choice(["", "x", " ", '"', "}", "0"]) + text[at + rnd.randrange(2) :]
            edited += text != canonical
        actual = golden if rnd.random() < 0.6 else _variant(rnd, golden)
        tail = rowless_tail(actual)
        if not rowless_matches(text, line_head(event.seq, event.conn, op, sql), actual):
            if text == canonical and tail is not None and actual == golden:
                raise AssertionError(f"a canonical line for an equal rowless step was not matched: {text!r}")
            continue
        matched += 1
        data = json.loads(text)
        assert (data["seq"], data["conn"], data["op"], data.get("sql")) == (event.seq, event.conn, op, sql), text
        assert set(data) <= {"seq", "conn", "op", "sql", "params_sha256", "outcome"}, text
        assert compare_outcomes(Outcome.from_json(data["outcome"]), Outcome(result=actual), sql=sql or "") == [], text
    assert matched > 1000 and edited > 500  # both kinds of line were really exercised


def test_block_size_does_not_change_a_replay(tmp_path: Path, monkeypatch: Any) -> None:
    """Steps run in blocks, then are judged: the report must not depend on where the blocks fall."""
    from pytest_traceparity.divergences import DivergenceRegistry, builtin_entries
    from pytest_traceparity.golden import verify

    trace, golden, writer = _new_trace(tmp_path, "b")
    writer.write_event("open", 1, db="db1", target="b.db", driver="sqlite3")
    writer.write_event("open", 2, db="db1", target="b.db", driver="sqlite3")
    writer.write_event("execute", 1, sql="CREATE TABLE t (a INTEGER, b)", params=[])
    for i in range(150):
        writer.write_event(
            "execute",
            1,
            sql="INSERT INTO t VALUES (?, ?)",
            params=[{"int": str(i % 140)}, {"int": str(2**40 + i)}],
            flush=False,
        )
        if i % 7 == 0:
            writer.write_event("begin", 2, mode="IMMEDIATE", flush=False)
            writer.write_event(
                "execute", 2, sql="SELECT b + 0.5 FROM t WHERE a = ?", params=[{"int": str(i)}], flush=False
            )
            writer.write_event("commit", 2, flush=False)
    writer.write_event("close", 2)
    writer.write_event("close", 1)
    make, registry = _golden_from_reference(tmp_path, trace, golden, writer)
    reports = []
    for size in (1, 3, 64, 10_000):
        monkeypatch.setattr(verify, "BLOCK", size)
        report = verify.verify_trace(
            trace, registry.get("libsql-local"), make, DivergenceRegistry(builtin_entries()), golden=golden
        )
        reports.append((size, report.to_json(), report.summary(), report.xfail_reason(), report.steps))
    assert reports[0][1]["known"] or reports[0][1]["failures"]  # the trace really differs somewhere
    for size, *rest in reports[1:]:
        assert tuple(rest) == reports[0][1:], f"block size {size} changed the report"


def test_an_out_of_step_golden_is_reported_after_the_steps_before_it(tmp_path: Path, monkeypatch: Any) -> None:
    """Inside a block, a golden line that is not this step's still raises the same error, naming the step."""
    from pytest_traceparity.golden import verify
    from pytest_traceparity.golden.store import GoldenError

    trace, golden, make, registry = _selects_trace(tmp_path, "o", 10)
    lines = golden.read_text().splitlines(keepends=True)
    lines[7] = lines[7].replace("SELECT 5", "SELECT 55")  # seq 7's SQL no longer agrees
    golden.write_text("".join(lines))
    from pytest_traceparity.divergences import DivergenceRegistry, builtin_entries

    with pytest.raises(GoldenError, match=r"o\.jsonl:8: trace and golden are out of step at seq 7 .*SELECT 55"):
        verify.verify_trace(
            trace, registry.get("libsql-local"), make, DivergenceRegistry(builtin_entries()), golden=golden
        )


def test_the_golden_carries_each_databases_last_use(tmp_path: Path) -> None:
    """update_golden writes where each database is used last; a replay of the same trace bytes takes it
    from there instead of reading the trace twice, and the report is the same either way."""
    from pytest_traceparity.divergences import DivergenceRegistry, builtin_entries
    from pytest_traceparity.golden import verify
    from pytest_traceparity.golden.store import GoldenReader
    from pytest_traceparity.trace.replayer import last_uses

    trace, golden, writer = _new_trace(tmp_path, "l")
    writer.write_event("open", 1, db="db1", target="a.db", driver="sqlite3")
    writer.write_event("open", 2, db="db2", target="b.db", driver="sqlite3")
    writer.write_event("execute", 1, sql="CREATE TABLE t (a)", params=[])
    writer.write_event("execute", 2, sql="CREATE TABLE u (b)", params=[])
    writer.write_event("execute", 1, sql="INSERT INTO t VALUES (?)", params=[{"int": str(2**40)}])
    writer.write_event("close", 1)
    writer.write_event("execute", 2, sql="INSERT INTO u VALUES (1.5)", params=[])
    writer.write_event("close", 2)
    make, registry = _golden_from_reference(tmp_path, trace, golden, writer)
    with GoldenReader(golden, trace) as reader:
        assert reader.header.last_use == last_uses(trace) == {"db1": 6, "db2": 8}
    with_hint = verify.verify_trace(
        trace, registry.get("libsql-local"), make, DivergenceRegistry(builtin_entries()), golden=golden
    )
    lines = golden.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    del header["last_use"]
    golden.write_text(json.dumps(header, separators=(",", ":")) + "\n" + "".join(lines[1:]))
    without = verify.verify_trace(
        trace, registry.get("libsql-local"), make, DivergenceRegistry(builtin_entries()), golden=golden
    )
    assert with_hint.to_json() == without.to_json() and with_hint.known


def test_loads_line_equals_json_loads_where_a_fast_parser_could_differ() -> None:
    """Lines are parsed by msgspec when it is installed; where such a parser could differ from ``json.loads``
    (ints past 64 bits, NaN, lone surrogates, duplicate keys, whitespace) values and errors must be the stdlib's."""
    from pytest_traceparity.trace import format as trace_format

    assert trace_format._fast_loads is not None, "msgspec is a dependency: the fast parser must be in use"
    lines = [
        '{"seq":1,"conn":1,"op":"execute","sql":"SELECT ?","params":[{"int":"5"}]}\n',
        '{"a":' + str(2**70) + "}\n",
        '{"a":-' + str(2**64) + "}\n",
        '{"a":NaN,"b":Infinity,"c":-Infinity}\n',
        '{"a":"\\ud800"}\n',
        '{"a":1,"a":2}\n',
        '  {"a": [1, 2.5e300, 1e-320, -0.0, "\\u00e9"]}  \n',
        '{"a":1.7976931348623157e309}\n',
        '{"a":"x\\u0000y"}\n',
    ]
    for line in lines:
        got, want = trace_format.loads_line(line), json.loads(line)
        assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True), line
        assert type(got) is type(want) and repr(got) == repr(want), line
    for bad in ["{", '{"a":1}{"b":2}\n', "[1,]\n", "\n", '{"a":01}\n']:
        with pytest.raises(json.JSONDecodeError) as raised:
            trace_format.loads_line(bad)
        with pytest.raises(json.JSONDecodeError) as expected:
            json.loads(bad)
        assert str(raised.value) == str(expected.value), bad


def test_loads_line_equals_json_loads_on_random_documents() -> None:
    from pytest_traceparity.trace.format import loads_line

    rnd = random.Random(17)
    atoms: list[Any] = [0, -1, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1, 10**18, 0.1, -0.0, 1e-310, 2.5e300, 1 / 3]
    atoms += ["", "é", "\x00", "😀", "\\", '"', "\n", True, False, None]

    def value(depth: int) -> Any:
        if depth > 2 or rnd.random() < 0.5:
            return rnd.choice(atoms)
        if rnd.random() < 0.5:
            return [value(depth + 1) for _ in range(rnd.randrange(4))]
        return {rnd.choice(["a", "seq", "é", ""]): value(depth + 1) for _ in range(rnd.randrange(4))}

    for _ in range(2000):
        doc = {"k": value(0)}
        text = (
            json.dumps(doc, ensure_ascii=rnd.random() < 0.5, separators=rnd.choice([(",", ":"), (", ", ": ")])) + "\n"
        )
        assert repr(loads_line(text)) == repr(json.loads(text)), text


def test_row_encoding_for_digests_equals_the_canonical_typed_json() -> None:
    """The snapshot digest encodes plain values inline; it must be byte for byte the canonical encoding."""
    rnd = random.Random(18)
    values = [*_VALUES, True, float("-inf"), -float("nan"), 10**30, "\u2028", b"\x00" * 70]
    for _ in range(3000):
        row = tuple(rnd.choice(values) for _ in range(rnd.randrange(6)))
        want = fingerprint.canonical_json([fingerprint.encode_value(v) for v in row]).encode("utf-8")
        assert fingerprint._row_json(row) == want, row


def test_a_replay_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    """The replay freezes pre-existing objects while it runs (no full collection walks them) and unfreezes
    them however it ends; an outside freeze is left alone."""
    import gc

    from pytest_traceparity.divergences import DivergenceRegistry, builtin_entries
    from pytest_traceparity.errors import GoldenError
    from pytest_traceparity.golden import verify

    trace, golden, writer = _new_trace(tmp_path, "g")
    writer.write_event("open", 1, db="db1", target="g.db", driver="sqlite3")
    writer.write_event("execute", 1, sql="SELECT 1", params=[])
    writer.write_event("close", 1)
    make, registry = _golden_from_reference(tmp_path, trace, golden, writer)
    rules = DivergenceRegistry(builtin_entries())
    seen: list[int] = []
    backend = registry.get("libsql-local")
    original = backend.create_database

    def spy(ctx: BackendContext) -> Any:
        seen.append(gc.get_freeze_count())
        return original(ctx)

    backend.create_database = spy
    assert gc.get_freeze_count() == 0
    verify.verify_trace(trace, backend, make, rules, golden=golden)
    assert seen[-1] > 0 and gc.get_freeze_count() == 0  # frozen while replaying, not after
    golden.write_text(golden.read_text().replace('"SELECT 1"', '"SELECT 2"'))
    with pytest.raises(GoldenError):
        verify.verify_trace(trace, backend, make, rules, golden=golden)
    assert gc.get_freeze_count() == 0  # undone when the replay raises
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with pytest.raises(GoldenError):
            verify.verify_trace(trace, backend, make, rules, golden=golden)
        assert gc.get_freeze_count() == frozen  # someone else's freeze: untouched
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("backend_id", ["libsql-local", "sqlalchemy-sqlite"])
def test_run_block_equals_one_step_at_a_time(tmp_path: Path, backend_id: str) -> None:
    """Replayer.run_block's inline path gives step()'s outcomes, in order, for every kind of step: repeated
    plain statements (the inline path), BEGIN/COMMIT (failing ones too), errors, a volatile statement, a file
    target, a registration."""
    from pytest_traceparity.trace.format import Event
    from pytest_traceparity.trace.replayer import Replayer

    make = contexts(tmp_path)
    events = [
        Event(1, 1, "open", db="db1", target="a.db", driver="sqlite3"),
        Event(2, 2, "open", db="db1", target="a.db", driver="sqlite3"),
        Event(3, 1, "execute", "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT UNIQUE)", ()),
    ]
    seq = 3
    for i in range(40):
        steps: list[tuple[int, str, tuple[Any, ...]]] = [
            (1, "INSERT INTO t (b) VALUES (?)", (f"v{i % 30}",)),  # a UNIQUE violation past 30
            (2, "SELECT a, b FROM t WHERE a > ? ORDER BY a LIMIT 3", (i,)),
            (1, "SELECT random() FROM t LIMIT 1", ()),
            (2, "SELECT count(*) FROM nope", ()),
        ]
        for conn, sql, params in steps:
            seq += 1
            events.append(Event(seq, conn, "execute", sql, params))
        if i % 3 == 0:  # BEGIN twice (the second fails), COMMIT, and a COMMIT with nothing to commit (fails)
            for conn, op in [(1, "begin"), (1, "begin"), (1, "commit"), (2, "commit")]:
                seq += 1
                events.append(Event(seq, conn, op, mode="IMMEDIATE" if op == "begin" else None))
        if i == 20:
            seq += 1
            events.append(Event(seq, 1, "execute", "ATTACH DATABASE 'other.db' AS o", ()))
            seq += 1
            events.append(Event(seq, 2, "register", kind="function", name="f", arity=1))
    events += [Event(seq + 1, 2, "close"), Event(seq + 2, 1, "close")]
    backend = standalone_registry().get(backend_id)  # sqlalchemy-sqlite: a block runs in one loop entry
    with (
        Replayer(backend, make, "t", departures=False) as blocks,
        Replayer(backend, make, "u", departures=False) as one,
    ):
        got = [o for start in range(0, len(events), 7) for o in blocks.run_block(events[start : start + 7])]
        want = [one.step(event) for event in events]
        assert [o.to_json() for o in got] == [o.to_json() for o in want]
        assert blocks.stats.to_json() == one.stats.to_json()
        assert sum(1 for o in got if o.error is not None) > 40  # errors really went through the inline path


def test_statements_of_a_block_run_in_one_event_loop_and_the_facade_still_works_outside(tmp_path: Path) -> None:
    """sqlalchemy-sqlite's run_steps awaits every statement of a block in one loop; outside a block, and from
    a caller inside a running loop, the sync facade works as before; an error inside a block propagates."""
    import asyncio

    from pytest_traceparity.backends import sqlalchemy_sqlite
    from pytest_traceparity.errors import DatabaseError

    backend = standalone_registry().get("sqlalchemy-sqlite")
    database = backend.create_database(BackendContext(workdir=tmp_path, name="b"))
    conn = database.connect()
    loops: list[Any] = []

    def block() -> list[Any]:
        loops.append(sqlalchemy_sqlite._BLOCK.loop)
        conn.execute("CREATE TABLE t (a)")
        conn.execute("INSERT INTO t VALUES (1)")
        loops.append(sqlalchemy_sqlite._BLOCK.loop)
        return conn.execute("SELECT a FROM t").rows

    assert backend.run_steps(block) == [(1,)]
    assert loops[0] is not None and loops[0] is loops[1] and loops[0].is_closed()  # one loop, closed after
    assert conn.execute("SELECT count(*) FROM t").scalar() == 1  # the facade's own loop, outside a block

    async def from_async_code() -> Any:
        return backend.run_steps(lambda: conn.execute("SELECT a FROM t").rows)  # no bridge inside a running loop

    assert asyncio.run(from_async_code()) == [(1,)]

    def failing() -> None:
        conn.execute("INSERT INTO nope VALUES (1)")

    with pytest.raises(DatabaseError, match="nope"):
        backend.run_steps(failing)
    assert getattr(sqlalchemy_sqlite._BLOCK, "loop", None) is None
    conn.close()


def test_a_malformed_golden_step_is_named_by_its_own_line_inside_a_block(tmp_path: Path) -> None:
    """Steps are judged after their whole block was read: a golden line that turns out malformed only then
    must still be named by its own line number, not the block's last."""
    from pytest_traceparity.divergences import DivergenceRegistry, builtin_entries
    from pytest_traceparity.errors import GoldenError
    from pytest_traceparity.golden import verify

    trace, golden, make, registry = _selects_trace(tmp_path, "m", 12)
    lines = golden.read_text().splitlines(keepends=True)
    assert '"sql":"SELECT 4"' in lines[6]
    head, _, _ = lines[6].partition(',"outcome":')
    lines[6] = head + ',"outcome":{"result":{"columns":["4"],"rows":"bad","rowcount":-1,"lastrowid":0}}}\n'
    golden.write_text("".join(lines))
    rules = DivergenceRegistry(builtin_entries())
    with pytest.raises(GoldenError, match=r"m\.golden\.jsonl:7: malformed step"):
        verify.verify_trace(trace, registry.get("libsql-local"), make, rules, golden=golden)
