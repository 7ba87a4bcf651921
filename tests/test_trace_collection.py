"""Collection of trace files and the golden path hint (pytester: the plugin as users run it)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pytest_traceparity import plugin
from pytest_traceparity.golden.store import golden_path_for
from pytest_traceparity.trace.recorder import recording

WIRE = [] if hasattr(plugin, "pytest_collect_file") else ["-p", "pytest_traceparity.pytest_glue.traces"]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*WIRE, "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-rA", *args)


def _trace(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with recording(path, base_dir=str(path.parent)):
        c = sqlite3.connect(":memory:")
        c.execute("SELECT 1").fetchall()
        c.close()
    return path


def test_non_trace_jsonl_matching_the_glob_does_not_abort_collection(pytester: pytest.Pytester) -> None:
    _trace(pytester.path / "fixtures" / "traces" / "real.jsonl")
    (pytester.path / "fixtures" / "traces" / "events.jsonl").write_text('{"event": "click"}\n')
    (pytester.path / "fixtures" / "traces" / "empty.jsonl").write_text("")
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = run(pytester, "--update-golden")
    result.assert_outcomes(passed=2)  # test_ok + the one real trace; the others are not ours


def test_trace_anywhere_is_collected_when_given(pytester: pytest.Pytester) -> None:
    _trace(pytester.path / "somewhere" / "deep" / "t.jsonl")
    run(pytester, "somewhere", "--update-golden").assert_outcomes(passed=1)
    assert (pytester.path / "somewhere" / "deep" / "golden" / "t.golden.jsonl").exists()


def test_missing_golden_hint_names_the_documented_path(pytester: pytest.Pytester) -> None:
    _trace(pytester.path / "traces" / "t.jsonl")
    result = run(pytester, "traces")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*golden/t.golden.jsonl: no golden for trace traces/t.jsonl*pytest traces/t.jsonl --update-golden*"]
    )


@pytest.mark.parametrize(
    ("trace", "golden"),
    [
        ("fixtures/traces/a.jsonl", "fixtures/golden/a.golden.jsonl"),
        ("a.jsonl", "golden/a.golden.jsonl"),
        ("/abs/proj/a.jsonl", "/abs/proj/golden/a.golden.jsonl"),
        ("/abs/proj/traces/a.jsonl", "/abs/proj/golden/a.golden.jsonl"),
    ],
)
def test_golden_path_never_leaves_the_trace_tree(trace: str, golden: str) -> None:
    assert golden_path_for(trace) == Path(golden)


def test_update_golden_under_pytest_refuses_an_unfaithful_replay(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = _trace(pytester.path / "traces" / "t.jsonl")
    lines = trace.read_text().splitlines()
    lines[2] = lines[2][:-1] + ',"error":{"kind":"syntax","dbapi_class":"OperationalError","exc_type":"x"}}'
    trace.write_text("\n".join(lines) + "\n")
    result = run(pytester, "traces", "--update-golden")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*program saw error syntax, replay got success*",
            "*refusing to write the golden*TRACEPARITY_ALLOW_DEPARTURES=1*",
        ]
    )
    assert not (pytester.path / "golden" / "t.golden.jsonl").exists()
    monkeypatch.setenv("TRACEPARITY_ALLOW_DEPARTURES", "1")
    run(pytester, "traces", "--update-golden").assert_outcomes(passed=1)
    assert (pytester.path / "golden" / "t.golden.jsonl").exists()
