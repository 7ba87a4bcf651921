"""The parity report in a pytest run: matrix, readiness, files, GitHub summary, redaction, stale rules."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import jsonschema
import pytest

from pytest_traceparity.report.model import schema

SUITE = """
import pytest

def test_ok(db):
    db.execute("SELECT 1")

@pytest.mark.known_divergence(backend="libsql-local", reason="documented quirk")
def test_known(db, traceparity_backend):
    assert traceparity_backend != "libsql-local"

def test_secret(db):
    assert False, "token was s3cr3t-token"
"""


def validate(data: dict[str, object]) -> None:
    jsonschema.Draft202012Validator(schema()).validate(data)


def test_terminal_matrix_readiness_and_json(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest("--backends=sqlalchemy-sqlite,libsql-local", "--traceparity-report=out/r.json")
    result.stdout.fnmatch_lines(
        [
            "*traceparity parity matrix*",
            "backend*passed*failed*xfailed*served by",
            "sqlalchemy-sqlite*2*1*0*SQLAlchemy*(reference)",
            "libsql-local*1*1*1*libsql 0.1.11*local file*",
            "readiness per backend*",
            "  libsql-local: 1 data (known_divergence marker: 1 test); 0 unknown; 1 failing without a recorded "
            "difference",
            "overall: no unknown divergences; 1 known root cause(s), severities present: data; 2 test(s) failed*",
            "root causes (1,*",
            "  data        known_divergence marker: libsql-local 1 test",
        ]
    )
    assert "PARITY" not in result.stdout.str()
    data = json.loads((pytester.path / "out" / "r.json").read_text())
    validate(data)
    assert data["format"] == "traceparity-report" and data["version"] == 2
    assert data["summary"]["libsql-local"] == {"passed": 1, "xfailed": 1, "failed": 1}
    assert [v["status"] for v in data["verdict"]] == ["reference", "not ready"]
    assert data["root_causes"][0]["reason"].startswith("documented quirk")
    assert data["runs"][0]["collected"] == 6 and data["timings"]["libsql-local"] >= 0


def test_auth_token_never_reaches_the_report(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TURSO_AUTH_TOKEN", "s3cr3t-token")
    pytester.makepyfile(SUITE)
    pytester.runpytest("--traceparity-report=r.html", "--traceparity-report=r.json")
    text = (pytester.path / "r.json").read_text()
    assert "s3cr3t-token" not in text and "***" in text


def test_html_report_and_step_summary(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile(SUITE)
    pytester.runpytest("--backends=all", "--traceparity-report=r.html")
    page = (pytester.path / "r.html").read_text()
    assert page.index("Readiness per backend") < page.index("Root causes") < page.index("Failures without")
    without_ids = re.sub(r"\b[\w-]+-http\b", "", page)  # backend ids (sqld-http, sqlalchemy-libsql-http)
    assert "test_secret" in page and "<script" not in page and "http" not in without_ids
    text = summary.read_text()
    assert "## traceparity: readiness per backend" in text and "| `libsql-local` | not ready |" in text


def test_report_with_bad_suffix_is_a_usage_error_before_the_run(pytester: pytest.Pytester) -> None:
    """Found at start-up, not after the run: a CI job must not pass without the report it asked for."""
    pytester.makepyfile("def test_ok(db): pass")
    result = pytester.runpytest("--traceparity-report=r.txt")
    result.stderr.fnmatch_lines(["*--traceparity-report=r.txt: use a file name ending in .json or .html*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "Traceback" not in result.stderr.str()


def test_no_matrix_for_suites_without_backends(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest()
    assert "parity matrix" not in result.stdout.str()


def test_report_cli_renders_and_rejects(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    pytester.runpytest("--traceparity-report=r.json")
    cli = [sys.executable, "-m", "pytest_traceparity.cli", "report"]
    done = subprocess.run([*cli, str(pytester.path / "r.json"), "--markdown"], capture_output=True, text=True)
    assert done.returncode == 1 and "| `sqlalchemy-sqlite` | reference |" in done.stdout
    missing = subprocess.run([*cli, str(pytester.path / "nope.json")], capture_output=True, text=True)
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    (pytester.path / "bad.json").write_text('{"format": "other"}')
    bad = subprocess.run([*cli, str(pytester.path / "bad.json")], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a traceparity report" in bad.stderr
    suffix = subprocess.run([*cli, str(pytester.path / "r.json"), "-o", "x.pdf"], capture_output=True, text=True)
    assert suffix.returncode == 2 and "-o x.pdf: use a file name ending in .html, .md or .json" in suffix.stderr


STALE = """
    [[tool.traceparity.rules]]
    id = "team.never-seen-{n}"
    backend = "libsql-local"
    aspects = ["rows.value"]
    expected = ["nothing like this"]
    reason = "a rule nothing in this run matches"
"""


def test_stale_rules_are_one_line_and_not_judged_when_most_tests_were_deselected(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("".join(STALE.format(n=n) for n in range(5)))
    pytester.makepyfile("\n".join(f"def test_{n}(db):\n    db.execute('SELECT 1')\n" for n in range(4)))
    full = pytester.runpytest("--backends=libsql-local", "-p", "no:randomly")
    lines = [line for line in full.stdout.lines if line.startswith("stale rules")]
    assert len(lines) == 1 and lines[0].startswith("stale rules: ")  # the shipped rules for libsql-local too
    assert "(5 of the project's)" in lines[0] and "team.never-seen-2, +" in lines[0]
    assert "team.never-seen-3" not in lines[0] and "more (-v lists them)" in lines[0]
    verbose = pytester.runpytest("--backends=libsql-local", "-p", "no:randomly", "-v")
    assert "team.never-seen-4" in verbose.stdout.str()
    partial = pytester.runpytest("--backends=libsql-local", "-p", "no:randomly", "-k", "test_0")
    partial.stdout.fnmatch_lines(["stale rules: not judged, this run selected tests with -k test_0 (* rule(s) unused)"])
    assert "team.never-seen-0" not in partial.stdout.str()
    # under xdist the controller collects nothing itself: the count comes from the workers
    pytester.runpytest("--backends=libsql-local", "-p", "no:randomly", "-n", "2", "--traceparity-report=r.json")
    assert json.loads((pytester.path / "r.json").read_text())["runs"][0]["collected"] == 4
