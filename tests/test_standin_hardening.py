"""Stand-in edges that leaked or misbehaved (issue 9): auth order, tokens, IPv6, logs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pytest_traceparity.servers import launcher
from pytest_traceparity.servers.standin import StandinServer

TOKEN = "S3CRET-standin-token"


def status_of(method: str, url: str, token: str | None = None, body: bytes | None = None) -> int:
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_auth_is_checked_before_routing(tmp_path: Path) -> None:
    """A stranger learns nothing from 404/405: every non-public request is 401 first."""
    with StandinServer(db_dir=tmp_path / "db", auth_token=TOKEN) as srv:
        assert status_of("GET", f"{srv.url}/no/such/route") == 401
        assert status_of("DELETE", f"{srv.url}/v3/pipeline") == 401
        assert status_of("POST", f"{srv.url}/dev/nope/v3/pipeline", body=b"{}") == 401
        assert status_of("GET", f"{srv.url}/health") == 200
        assert status_of("GET", f"{srv.url}/version") == 200
        assert status_of("GET", f"{srv.url}/no/such/route", TOKEN) == 404
        assert status_of("DELETE", f"{srv.url}/v3/pipeline", TOKEN) == 405


def test_request_log_drops_query_strings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with (
        StandinServer(db_dir=tmp_path / "db", log_requests=True) as srv,
        caplog.at_level(logging.INFO, logger="pytest_traceparity.standin"),
    ):
        status_of("GET", f"{srv.url}/v2?authToken={TOKEN}")
        status_of("GET", f"{srv.url}/nowhere?jwt={TOKEN}")
        status_of("POST", f"{srv.url}/v3/pipeline?authToken={TOKEN}", body=b'{"requests": []}')
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/v3/pipeline" in logged and "/nowhere" in logged
    assert TOKEN not in logged


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest_traceparity.servers.standin", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(10)


def test_ipv6_loopback_host_works(tmp_path: Path) -> None:
    proc = serve("--host", "::1", "--db-dir", str(tmp_path / "db"))
    try:
        line = first_line(proc)
        if not line.startswith("listening on"):
            # refused at startup is acceptable, silently unbound is not
            assert proc.wait(10) == 2
            assert proc.stderr is not None and "::1" in proc.stderr.read()
            return
        url = line.split()[-1]
        assert url.startswith("http://[::1]:")
        assert status_of("GET", f"{url}/health") == 200
    finally:
        stop(proc)


def test_token_from_file_and_env_never_on_the_command_line(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    proc = serve("--auth-token-file", str(token_file), "--db-dir", str(tmp_path / "a"))
    try:
        url = first_line(proc).split()[-1]
        assert status_of("GET", f"{url}/v2") == 401
        assert status_of("GET", f"{url}/v2", TOKEN) == 200
        assert TOKEN not in Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
    finally:
        stop(proc)
    proc = serve("--db-dir", str(tmp_path / "b"), env={"TRACEPARITY_STANDIN_AUTH_TOKEN": TOKEN})
    try:
        url = first_line(proc).split()[-1]
        assert status_of("GET", f"{url}/v2") == 401
        assert status_of("GET", f"{url}/v2", TOKEN) == 200
    finally:
        stop(proc)


def test_missing_token_file_is_refused_at_startup(tmp_path: Path) -> None:
    proc = serve("--auth-token-file", str(tmp_path / "absent"))
    assert proc.wait(20) == 2
    assert proc.stderr is not None and "--auth-token-file" in proc.stderr.read()


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads another process's argv from /proc (Linux)")
def test_launcher_keeps_the_token_off_every_command_line(tmp_path: Path) -> None:
    config = launcher.SqldConfig(strategy="stand-in", workdir=tmp_path, auth_token=TOKEN, env={})
    handle = launcher.start_standin(config)
    try:
        assert handle.pid is not None
        argv = Path(f"/proc/{handle.pid}/cmdline").read_bytes().decode(errors="replace")
        assert "pytest_traceparity.servers.standin" in argv
        assert TOKEN not in argv
        assert status_of("GET", f"{handle.endpoint.url}/v2") == 401
        assert TOKEN not in repr(handle) and TOKEN not in repr(handle.endpoint) and TOKEN not in repr(config)
    finally:
        handle.stop()


def test_default_namespace_delete_is_refused_over_http(tmp_path: Path) -> None:
    with StandinServer(db_dir=tmp_path / "db") as srv:
        req = urllib.request.Request(f"{srv.url}/v1/namespaces/default", method="DELETE")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        assert info.value.code == 400
        assert "default" in json.loads(info.value.read())["error"]
