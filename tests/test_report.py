"""The parity report: matrix, files, GitHub summary, served-by labels, token redaction."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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


def test_terminal_matrix_and_json(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest("--backends=sqlalchemy-sqlite,libsql-local", "--traceparity-report=out/r.json")
    result.stdout.fnmatch_lines(
        [
            "*traceparity parity matrix*",
            "backend*passed*failed*xfailed*served by",
            "sqlalchemy-sqlite*2*1*0*SQLAlchemy*(reference)",
            "libsql-local*1*1*1*libsql 0.1.11*local file*",
            "*libsql-local: 1x known divergence on libsql-local: documented quirk",
        ]
    )
    data = json.loads((pytester.path / "out" / "r.json").read_text())
    assert data["format"] == "traceparity-report"
    assert data["summary"]["libsql-local"] == {"passed": 1, "xfailed": 1, "failed": 1}
    assert any(i["outcome"] == "xfailed" and "documented quirk" in i["reason"] for i in data["items"])


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
    assert "<table>" in page and "DIVERGED" in page and "test_secret" in page
    assert "| `libsql-local` |" in summary.read_text()


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
    assert done.returncode == 1 and "| `sqlalchemy-sqlite` |" in done.stdout
    missing = subprocess.run([*cli, str(pytester.path / "nope.json")], capture_output=True, text=True)
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    (pytester.path / "bad.json").write_text('{"format": "other"}')
    bad = subprocess.run([*cli, str(pytester.path / "bad.json")], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a traceparity report" in bad.stderr


def test_xfail_breakdown_separates_client_wide_from_specific() -> None:
    from pytest_traceparity.report import ItemRecord, ParityReport
    from pytest_traceparity.report.render import render_terminal

    report = ParityReport(reference="ref", backends=["ref", "b"])
    report.add(ItemRecord("t1", "b", "xfailed", reason="wide quirk"))
    report.add(ItemRecord("t2", "b", "xfailed", reason="wide quirk\nspecific thing [seq 3]"))
    report.add(ItemRecord("t3", "b", "passed"))
    assert report.xfail_breakdown({"wide quirk"}) == {"b": (1, 1)}
    text = "\n".join(render_terminal(report, {"wide quirk"}))
    assert "b: 2 xfailed = 1 with case-specific divergences + 1 differing only by client-wide quirks" in text
