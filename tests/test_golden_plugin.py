"""Trace items, goldens and ``--update-golden`` through pytest itself (pytester)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

import pytest_traceparity.plugin as plugin
from pytest_traceparity.trace.recorder import recording

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestDeprecationWarning")

# Until plugin.py imports the trace glue itself, load it as an extra plugin.
WIRE = [] if hasattr(plugin, "pytest_collect_file") else ["-p", "pytest_traceparity.pytest_glue.traces"]
TRACE = "fixtures/traces/small.jsonl"
GOLDEN = "fixtures/golden/small.golden.jsonl"


def make_trace(root: Path, big: int = 5) -> Path:
    """Record a small real program: two connections, a rollback, an error, ordered and unordered reads."""
    traces = root / "fixtures" / "traces"
    traces.mkdir(parents=True, exist_ok=True)
    path = traces / "small.jsonl"
    with recording(path, base_dir=str(root)):
        a = sqlite3.connect(root / "small.db")
        a.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, n)")
        a.execute("INSERT INTO t (name, n) VALUES (?, ?)", ("alpha", 1))
        a.executemany("INSERT INTO t (name, n) VALUES (?, ?)", [("beta", 2), ("gamma", 3)])
        a.commit()
        b = sqlite3.connect(root / "small.db")
        b.execute("SELECT name, n FROM t").fetchall()
        a.execute("UPDATE t SET n = n * 10")
        a.rollback()
        try:
            a.execute("INSERT INTO t (name, n) VALUES (?, ?)", ("alpha", 9))
        except sqlite3.IntegrityError:
            a.rollback()
        b.execute("SELECT ? AS big", (big,)).fetchall()
        b.execute("SELECT name FROM t ORDER BY n DESC").fetchall()
        b.close()
        a.close()
    (root / "small.db").unlink()
    return path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*WIRE, "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-rA", *args)


def seq_of(trace: Path, sql_prefix: str) -> int:
    for line in trace.read_text().splitlines()[1:]:
        data = json.loads(line)
        if data.get("sql", "").startswith(sql_prefix):
            return int(data["seq"])
    raise AssertionError(f"no {sql_prefix!r} in {trace}")


def test_update_golden_creates_then_is_idempotent(pytester: pytest.Pytester) -> None:
    make_trace(pytester.path)
    result = run(pytester, TRACE, "--update-golden")
    result.assert_outcomes(passed=1)
    golden = pytester.path / GOLDEN
    first = golden.read_bytes()
    stamp = golden.stat().st_mtime_ns
    assert json.loads(first.splitlines()[0])["reference"] == "sqlalchemy-sqlite"

    result = run(pytester, TRACE, "--update-golden", "--backends=sqlalchemy-sqlite,libsql-local")
    assert golden.read_bytes() == first
    assert golden.stat().st_mtime_ns == stamp  # unchanged tree: not even rewritten
    assert not list(golden.parent.glob(".*.tmp"))  # no temp files left behind

    result = run(pytester, TRACE)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["PASSED fixtures/traces/small.jsonl::small?sqlalchemy-sqlite?"])


def test_items_per_backend_and_non_reference_never_writes(pytester: pytest.Pytester) -> None:
    make_trace(pytester.path)
    result = run(pytester, TRACE, "--backends=libsql-local")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*{GOLDEN}: no golden for trace {TRACE}; create it from the reference backend with: "
            f"pytest {TRACE} --update-golden*",
        ]
    )
    # --update-golden with only a non-reference backend: it compares with what the reference would
    # write (known libsql divergences xfail) and writes nothing
    result = run(pytester, TRACE, "--backends=libsql-local", "--update-golden")
    result.assert_outcomes(xfailed=1)
    assert not (pytester.path / GOLDEN).exists()
    assert not list(pytester.path.rglob("*.golden.jsonl*"))
    assert "reference backend 'sqlalchemy-sqlite' is not selected, so no golden is written" in result.stdout.str()

    run(pytester, TRACE, "--update-golden")
    golden = pytester.path / GOLDEN
    before, stamp = golden.read_bytes(), golden.stat().st_mtime_ns
    result = run(pytester, TRACE, "--backends=libsql-local", "--update-golden")
    assert golden.read_bytes() == before and golden.stat().st_mtime_ns == stamp
    result.stdout.fnmatch_lines([f"XFAIL {TRACE}::small?libsql-local? - *"])


def test_changed_insert_parameter_names_the_step(pytester: pytest.Pytester) -> None:
    trace = make_trace(pytester.path)
    run(pytester, TRACE, "--update-golden").assert_outcomes(passed=1)
    seq = seq_of(trace, "INSERT INTO t (name, n) VALUES (?, ?)")
    text = trace.read_text()
    old = (
        f'{{"seq":{seq},"conn":1,"op":"execute","sql":"INSERT INTO t (name, n) VALUES (?, ?)","params":'
        '[{"text":"alpha"},{"int":"1"}],"rowcount":1}'
    )
    assert old in text
    trace.write_text(text.replace(old, old.replace('{"int":"1"}', '{"int":"7"}')))
    result = run(pytester, TRACE)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    expected = "\n".join(
        [
            f"most severe diverging step: seq {seq}, conn 1 ({TRACE}:{seq + 1})",
            "  SQL:      INSERT INTO t (name, n) VALUES (?, ?)",
            "  params:   ['alpha' (text), 7 (integer)]",
            "  expected: 0 row(s), rowcount=1, lastrowid=1   (golden, from the reference backend)",
            "  actual:   0 row(s), rowcount=1, lastrowid=1   (sqlalchemy-sqlite)",
            "  [data; unknown] [trace.params] this step's parameters differ from those the golden was made with (the "
            "trace was edited or re-recorded after the golden)",
        ]
    )
    assert expected in out
    # the edited value also changes what later reads return and the final table digest
    assert f"trace 'small' diverges on sqlalchemy-sqlite from its golden {GOLDEN}: " in out
    result.stdout.fnmatch_lines(
        [
            "and * more step(s) diverge (most severe first): seq *, final",
            f"*review and run: pytest {TRACE} --update-golden",
        ]
    )


@pytest.mark.parametrize(
    ("mangle", "needles"),
    [
        (
            lambda t: t.rsplit("\n", 2)[0] + "\n",
            [
                "*small.jsonl:*: missing end line after * event(s)*; "
                "re-record it with: traceparity record -o FILE -- CMD*"
            ],
        ),
        (lambda t: t[:-10], ["*small.jsonl:*: the last line is incomplete (the trace is truncated)*"]),
        (
            lambda t: t.replace('"version":1', '"version":7', 1),
            ["*small.jsonl:1: field 'version': unknown trace format version 7*upgrade pytest-traceparity*"],
        ),
        (lambda t: t.replace('"op":"commit"', '"op":"comit"', 1), ["*small.jsonl:*: field 'op': unknown op 'comit'*"]),
    ],
    ids=["missing-end", "truncated", "unknown-version", "bad-op"],
)
def test_bad_trace_is_a_clear_error(
    pytester: pytest.Pytester, mangle: Callable[[str], str], needles: list[str]
) -> None:
    trace = make_trace(pytester.path)
    run(pytester, TRACE, "--update-golden")
    trace.write_text(mangle(trace.read_text()))
    result = run(pytester, TRACE)
    assert result.ret != 0
    result.stdout.fnmatch_lines(needles)
    assert "Traceback" not in result.stdout.str()


def test_unparsable_golden(pytester: pytest.Pytester) -> None:
    make_trace(pytester.path)
    run(pytester, TRACE, "--update-golden")
    golden = pytester.path / GOLDEN
    lines = golden.read_text().splitlines(keepends=True)
    golden.write_text("".join(lines[:3]) + "{oops\n")
    result = run(pytester, TRACE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*{GOLDEN}:4: not valid JSON*; regenerate it with: pytest {TRACE} --update-golden"])
    golden.write_text("".join(lines[:5]))
    result = run(pytester, TRACE)
    result.stdout.fnmatch_lines([f"*{GOLDEN}:6: ends before its final state (truncated)*"])


def test_trace_and_golden_out_of_step(pytester: pytest.Pytester) -> None:
    trace = make_trace(pytester.path)
    run(pytester, TRACE, "--update-golden")
    make_trace(pytester.path)  # same program...
    lines = trace.read_text().splitlines()
    # ...but a statement was dropped: drop the unordered SELECT and renumber
    target = seq_of(trace, "SELECT name, n FROM t")
    kept = [lines[0]]
    for line in lines[1:]:
        data = json.loads(line)
        if data.get("seq") == target:
            continue
        if "seq" in data and data["seq"] > target:
            data["seq"] -= 1
        if "end" in data:
            data["events"] -= 1
        kept.append(json.dumps(data, separators=(",", ":")))
    trace.write_text("\n".join(kept) + "\n")
    result = run(pytester, TRACE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*{TRACE}:{target + 1}: trace and golden are out of step at seq {target}*"
            f"regenerate it with: pytest {TRACE} --update-golden"
        ]
    )


def test_known_divergence_applies_per_step(pytester: pytest.Pytester) -> None:
    """libsql 0.1.11 binds ints outside i32 as REAL: the shipped cause rule attributes it with no subject
    listed; a project re-ranking or a strict subject rule behaves per step."""
    make_trace(pytester.path, big=2**40)
    run(pytester, TRACE, "--update-golden").assert_outcomes(passed=1)
    seq = seq_of(pytester.path / TRACE, "SELECT ? AS big")
    result = run(pytester, TRACE, "--backends=libsql-local")
    result.assert_outcomes(xfailed=1)
    reason = "libsql 0.1.11 / libsql-experimental 0.0.55 binds"
    result.stdout.fnmatch_lines([f"*libsql.int-outside-i32-bound-as-real: {reason}*[[]seq {seq}[]]*"])
    pytester.makepyprojecttoml(f"""
        [[tool.traceparity.rules]]
        id = "team.bigint-step"
        backend = "libsql-local"
        subjects = ["trace::small#{seq}"]
        aspects = ["rows.storage_class"]
        reason = "test: libsql binds 2**40 as REAL"
    """)
    result = run(pytester, TRACE, "--backends=libsql-local")
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines([f"*team.bigint-step: test: libsql binds 2**40 as REAL [[]seq {seq}[]]*"])


def test_replay_fixture_in_a_user_test(pytester: pytest.Pytester) -> None:
    make_trace(pytester.path)
    pytester.makepyfile(
        test_mine=f"""
        def test_my_workload(replay):
            report = replay("{TRACE}")
            assert report.steps > 5
    """
    )
    result = run(pytester, "test_mine.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*create it from the reference backend with: pytest {TRACE} --update-golden*"])
    run(pytester, "test_mine.py", "--update-golden").assert_outcomes(passed=1)
    assert (pytester.path / GOLDEN).exists()
    run(pytester, "test_mine.py").assert_outcomes(passed=1)


def test_update_golden_under_xdist(pytester: pytest.Pytester) -> None:
    make_trace(pytester.path)
    both = "--backends=sqlalchemy-sqlite,libsql-local"
    result = run(pytester, TRACE, "--update-golden", both, "-n", "2")
    assert (pytester.path / GOLDEN).exists(), result.stdout.str()
    before = (pytester.path / GOLDEN).read_bytes()
    run(pytester, TRACE, "--update-golden", both, "-n", "2")
    assert (pytester.path / GOLDEN).read_bytes() == before


def test_traces_option_selects_other_files(pytester: pytest.Pytester) -> None:
    make_trace(pytester.path)
    elsewhere = pytester.path / "recorded" / "traces"
    elsewhere.mkdir(parents=True)
    (pytester.path / TRACE).rename(elsewhere / "small.jsonl")
    result = run(pytester, "recorded", "--traces=recorded/traces/*.jsonl", "--update-golden")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "recorded" / "golden" / "small.golden.jsonl").exists()
    pytester.makeini("[pytest]\ntraceparity_traces = nothing/*.jsonl\n")
    (elsewhere / "data.jsonl").write_text('{"not": "a trace"}\n')  # another tool's JSONL: left alone
    result = run(pytester)
    result.assert_outcomes()  # a .jsonl outside the glob, not named on the command line, is not collected
    result = run(pytester, "recorded")  # ...but a directory given on the command line collects its traces
    result.assert_outcomes(passed=1)  # (data.jsonl there is not a trace: no item, no error)
    result = run(pytester, "recorded/traces/small.jsonl")  # ...as does the file itself
    result.assert_outcomes(passed=1)


def test_golden_extension_with_syrupy_snapshot(pytester: pytest.Pytester) -> None:
    """A user test can store golden-style JSONL through syrupy; unchanged data is not rewritten."""
    pytester.makepyfile(
        test_snap="""
        from pytest_traceparity.golden import GoldenExtension

        def test_text(snapshot):
            assert '{"a":1}\\n' == snapshot(extension_class=GoldenExtension)
    """
    )
    run(pytester, "test_snap.py", "--snapshot-update").assert_outcomes(passed=1)
    stored = pytester.path / "__snapshots__" / "test_snap" / "test_text.golden.jsonl"
    assert stored.read_text() == '{"a":1}\n'
    stamp = stored.stat().st_mtime_ns
    run(pytester, "test_snap.py", "--snapshot-update").assert_outcomes(passed=1)
    assert stored.stat().st_mtime_ns == stamp
    run(pytester, "test_snap.py").assert_outcomes(passed=1)


def test_strict_entry_for_a_step_that_no_longer_diverges_fails(pytester: pytest.Pytester) -> None:
    make_trace(pytester.path)
    run(pytester, TRACE, "--update-golden").assert_outcomes(passed=1)
    pytester.makepyprojecttoml("""
        [[tool.traceparity.known_divergences]]
        backend = "sqlalchemy-sqlite"
        subjects = ["trace::small#2"]
        reason = "stale entry"
    """)
    result = run(pytester, TRACE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*trace::small#2 no longer shows what rule pyproject.toml#0 describes on "
            "sqlalchemy-sqlite; remove 'trace::small#2' from the rule (*pyproject.toml #0): "
            "stale entry"
        ]
    )
