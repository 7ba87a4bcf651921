"""Reports of real runs: two separate runs merged by the CLI, checked against the schema and in Chromium.

The browser is Debian's ``chromium``; when it is missing and we are root the session installs
it with apt-get. A missing browser fails these tests: they must not pass by skipping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest

from pytest_traceparity.divergences.severity import RANK
from pytest_traceparity.report.model import schema

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = (1280, 900)


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian's chromium, installed once per machine (a file lock: xdist workers would race on dpkg's lock)."""
    problem = ""
    if not CHROMIUM.exists() and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        import fcntl

        lock = tmp_path_factory.getbasetemp().parent / "traceparity-chromium-install.lock"
        with lock.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if not CHROMIUM.exists():
                done = _apt("install", "-y", "chromium")
                if done.returncode != 0:  # a fresh machine has no package lists yet
                    _apt("update")
                    done = _apt("install", "-y", "chromium")
                problem = (done.stdout + done.stderr)[-1500:] if done.returncode != 0 else ""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing and could not be installed: run `apt-get install -y chromium` as root"
            + (f"\napt-get said:\n{problem}" if problem else "")
        )
    return CHROMIUM


def run_subset(out: Path, *backend_args: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "conformance",
            "fixtures/traces",
            "-k",
            "bind or memory_graph",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            f"--traceparity-report={out}",
            *backend_args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="session")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``traceparity report a.json b.json -o merged.html`` on two separate real runs."""
    where = tmp_path_factory.mktemp("reports")
    run_subset(where / "a.json", "--backends=libsql-local")
    run_subset(where / "b.json", "--backends=sqld-http", "--sqld=stand-in")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_traceparity.cli",
            "report",
            str(where / "a.json"),
            str(where / "b.json"),
            "-o",
            str(where / "merged.html"),
            "-o",
            str(where / "merged.json"),
            "-o",
            str(where / "merged.md"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "libsql-local:" in done.stdout and "sqld-http:" in done.stdout
    return where


def test_json_reports_validate_against_the_shipped_schema(merged: Path) -> None:
    validator = jsonschema.Draft202012Validator(schema())
    for name in ("a.json", "b.json", "merged.json"):
        validator.validate(json.loads((merged / name).read_text()))
    data = json.loads((merged / "merged.json").read_text())
    assert [v["backend"] for v in data["verdict"] if v["status"] != "reference"] == ["libsql-local", "sqld-http"]
    assert len(data["runs"]) == 2 and all(r["deselected"] for r in data["runs"])
    ranks = [RANK[c["severity"]] for c in data["root_causes"]]
    assert ranks == sorted(ranks) and data["root_causes"]


class _Outline(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.headings: list[tuple[str, str]] = []
        self.sections: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("h1", "h2", "h3"):
            self._in = tag
            self.headings.append((tag, ""))
        found = dict(attrs)
        if tag == "section" and (found.get("id") or "").startswith("cause-"):
            self.sections.append(str(found["id"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            tag, text = self.headings[-1]
            self.headings[-1] = (tag, text + data)


def test_merged_html_puts_the_verdict_first_and_one_section_per_root_cause(merged: Path) -> None:
    page = (merged / "merged.html").read_text()
    outline = _Outline()
    outline.feed(page)
    assert outline.headings[0][0] == "h1" and outline.headings[1] == ("h2", "Readiness per backend")
    causes = json.loads((merged / "merged.json").read_text())["root_causes"]
    assert len(outline.sections) == len(causes)
    assert "libsql-local" in page and "sqld-http" in page
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", page), "the page must not load anything"
    markdown = (merged / "merged.md").read_text()
    assert "| `libsql-local` |" in markdown and "| `sqld-http` |" in markdown


def _chromium(browser: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(browser), *FLAGS, f"--user-data-dir={profile}", f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_first_screen_in_chromium_shows_the_verdict_table(merged: Path, chromium: Path, tmp_path: Path) -> None:
    """The report has no script; a copy gets one that writes the table's box into the DOM we dump."""
    page = (merged / "merged.html").read_text()
    probe = (
        "<script>addEventListener('load',()=>{const r=document.getElementById('verdict-table')"
        ".getBoundingClientRect();document.body.setAttribute('data-box',"
        "[r.top,r.bottom,r.left,r.right,innerWidth,innerHeight].join(','))})</script></body>"
    )
    (tmp_path / "probe.html").write_text(page.replace("</body>", probe))
    dumped = _chromium(
        chromium, tmp_path / "p1", "--virtual-time-budget=2000", "--dump-dom", (tmp_path / "probe.html").as_uri()
    )
    match = re.search(r'data-box="([^"]+)"', dumped.stdout)
    assert match, dumped.stderr[-2000:]
    top, bottom, left, right, width, height = (float(v) for v in match.group(1).split(","))
    assert top > 0 and bottom <= height and left >= 0 and right <= width, match.group(1)
    shot = tmp_path / "first-screen.png"
    _chromium(chromium, tmp_path / "p2", f"--screenshot={shot}", (merged / "merged.html").as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    width_px, height_px = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width_px, height_px) == VIEWPORT


def test_narrow_window_keeps_the_verdict_table_in_the_first_screen(
    merged: Path, chromium: Path, tmp_path: Path
) -> None:
    page = (merged / "merged.html").read_text()
    probe = (
        "<script>addEventListener('load',()=>{const r=document.getElementById('verdict-table')"
        ".getBoundingClientRect();document.body.setAttribute('data-box',"
        "[r.top,document.documentElement.scrollWidth,innerWidth].join(','))})</script></body>"
    )
    (tmp_path / "probe.html").write_text(page.replace("</body>", probe))
    done = subprocess.run(
        [
            str(chromium),
            *FLAGS,
            f"--user-data-dir={tmp_path / 'p'}",
            "--window-size=480,900",
            "--virtual-time-budget=2000",
            "--dump-dom",
            (tmp_path / "probe.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r'data-box="([^"]+)"', done.stdout)
    assert match, done.stderr[-2000:]
    top, scroll_width, width = (float(v) for v in match.group(1).split(","))
    assert top < 900 and scroll_width <= width + 1, "the page must not scroll sideways in a narrow window"
