"""`traceparity replay --sync-url 'URL?authToken=T'` hands T to the embedded replica (and never prints it).

pytest and the CLI build backend contexts through one factory (``HarnessServices.new_context``);
the CLI used to drop the token that ``--sync-url`` carried, so every open failed with 401.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_traceparity.config import ReplicaSettings, sqld_config
from pytest_traceparity.secret import reveal
from pytest_traceparity.servers import launcher
from pytest_traceparity.services import HarnessServices

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "T0KEN-FOR-SYNC-123"
TRACE = ROOT / "fixtures" / "traces" / "memory_graph.jsonl"


@pytest.fixture(scope="module")
def guarded_primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("guarded")
    proc, url = launcher.spawn_standin(work / "db", work / "standin.log", TOKEN)
    try:
        yield url
    finally:
        launcher.terminate(proc)


def _replay(sync_url: str, cwd: Path) -> tuple[dict[str, Any], str]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_traceparity.cli",
            "replay",
            str(TRACE),
            "--backend",
            "embedded-replica",
            "--sync-url",
            sync_url,
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )
    return json.loads(result.stdout), result.stdout + result.stderr


def _open_failures(report: dict[str, Any]) -> list[str]:
    return [d["message"] for d in report["differences"] if "not_run" in (d["message"] or "")]


def test_token_in_sync_url_reaches_the_replica(guarded_primary: str, tmp_path: Path) -> None:
    report, output = _replay(f"{guarded_primary}?authToken={TOKEN}", tmp_path)
    assert _open_failures(report) == []
    assert TOKEN not in output


def test_without_the_token_the_primary_refuses(guarded_primary: str, tmp_path: Path) -> None:
    """The control: the same replay without the token cannot open anything, so the test above can fail."""
    report, output = _replay(guarded_primary, tmp_path)
    assert _open_failures(report)
    assert TOKEN not in output


def test_libsql_scheme_token_is_moved_to_the_replica_options(tmp_path: Path) -> None:
    """``libsql://db?authToken=T`` (Turso's form, https underneath, so not reachable here): the one
    context factory the CLI uses strips T from the URL and hands it to the replica as its auth token."""
    services = HarnessServices(sqld_config("stand-in"), ReplicaSettings(sync_url="libsql://db?authToken=T"), tmp_path)
    try:
        ctx = services.new_context("replay")
        assert ctx.options["sync_url"] == "libsql://db"
        assert reveal(ctx.options["sync_auth_token"]) == "T"
        assert "T" not in repr(ctx.options["sync_auth_token"])
    finally:
        services.close()
