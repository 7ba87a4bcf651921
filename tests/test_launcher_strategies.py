"""The sqld launcher: binary (with a fake `sqld` that runs the stand-in), docker's error
path, url, auto, and no orphans when the harness process dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_traceparity import http
from pytest_traceparity.servers import launcher
from pytest_traceparity.servers.launcher import (
    ResetRefused,
    SqldConfig,
    SqldUnavailable,
    start_sqld,
)
from pytest_traceparity.servers.standin import StandinServer

FAKE_SQLD = textwrap.dedent(
    """\
    #!{python}
    # A stand-in for the real sqld binary: accepts sqld's flags, serves the traceparity stand-in.
    import argparse, os, sys
    sys.stderr.write("fake sqld argv: " + " ".join(sys.argv[1:]) + "\\n")
    sys.stderr.flush()
    if os.environ.get("FAKE_SQLD_CRASH"):
        sys.stderr.write("fatal: pretend the database is corrupt\\n")
        sys.exit(3)
    p = argparse.ArgumentParser()
    p.add_argument("--db-path", required=True)
    p.add_argument("--http-listen-addr", default="127.0.0.1:8080")
    p.add_argument("--admin-listen-addr")
    p.add_argument("--enable-namespaces", action="store_true")
    p.add_argument("--no-welcome", action="store_true")
    a = p.parse_args()
    host, port = a.http_listen_addr.rsplit(":", 1)
    from pytest_traceparity.servers.standin import __main__ as m, server
    fake_version = os.environ.get("FAKE_SQLD_VERSION")
    if fake_version:  # pretend to be a real sqld without namespaces (exercises the wipe path)
        server.version_string = lambda: fake_version
    sys.exit(m.serve_main(["--host", host, "--port", port, "--db-dir", a.db_path]))
    """
)


@pytest.fixture
def fake_sqld(tmp_path: Path) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "sqld"
    script.write_text(FAKE_SQLD.format(python=sys.executable))
    script.chmod(0o755)
    return script


@pytest.fixture
def no_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def wait_gone(pid: int, timeout: float = 8.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_binary_strategy_end_to_end(fake_sqld: Path, tmp_path: Path) -> None:
    handle = start_sqld(
        SqldConfig(strategy="binary", sqld_bin=str(fake_sqld), workdir=tmp_path, auth_token="meant-for-the-cloud")
    )
    try:
        ep = handle.endpoint
        assert ep.strategy == "binary"
        assert ep.auth_token is None  # a server we start runs without auth; the token is not sent
        assert ep.label == "stand-in 0.1 (traceparity, via binary)"
        assert ep.url.startswith("http://127.0.0.1:")
        url = ep.create_database("bin-ns")
        status, body = http.request(
            "POST",
            f"{url}/v3/pipeline",
            body={"baton": None, "requests": [{"type": "execute", "stmt": {"sql": "SELECT 6 * 7"}}, {"type": "close"}]},
        )
        assert status == 200
        assert json.loads(body)["results"][0]["response"]["result"]["rows"] == [[{"type": "integer", "value": "42"}]]
        assert handle.log_path is not None
        log = handle.log_path.read_text()
        port = ep.url.rsplit(":", 1)[1]
        assert f"--http-listen-addr 127.0.0.1:{port}" in log and "--db-path" in log
        pid = handle.pid
        assert pid is not None and pid_alive(pid)
    finally:
        handle.stop()
    assert wait_gone(pid), "sqld still running after stop()"


def test_binary_missing_is_an_error_not_a_skip(tmp_path: Path) -> None:
    with pytest.raises(SqldUnavailable, match=r"--sqld-bin .*not an executable"):
        start_sqld(SqldConfig(strategy="binary", sqld_bin=str(tmp_path / "nope")))


def test_binary_that_dies_reports_its_log(fake_sqld: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAKE_SQLD_CRASH", "1")
    with pytest.raises(SqldUnavailable, match=r"exited with status 3(.|\n)*pretend the database is corrupt"):
        start_sqld(SqldConfig(strategy="binary", sqld_bin=str(fake_sqld), workdir=tmp_path, startup_timeout=10))


def test_docker_without_daemon_is_a_one_line_error(no_docker: None) -> None:
    with pytest.raises(SqldUnavailable) as info:
        start_sqld(SqldConfig(strategy="docker"))
    message = str(info.value)
    assert "\n" not in message
    assert "no Docker daemon answers" in message and "no-docker.sock" in message
    assert "--sqld=binary/url/stand-in" in message


def test_url_strategy_with_standin_uses_namespaces(tmp_path: Path) -> None:
    with StandinServer(db_dir=tmp_path, auth_token="tkn") as srv:
        handle = start_sqld(SqldConfig(strategy="url", url=srv.url + "/", auth_token="tkn"))
        ep = handle.endpoint
        assert ep.label == "stand-in 0.1 (traceparity, via url)"
        assert ep.supports_namespaces and not ep.owned
        assert "tkn" not in repr(ep) and "tkn" not in repr(handle)
        assert ep.create_database("u1") == f"{srv.url}/dev/u1"
        assert "u1" in srv.namespaces.names()
        ep.drop_database("u1")
        assert "u1" not in srv.namespaces.names()


def test_url_token_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TURSO_AUTH_TOKEN", "env-token")
    with StandinServer(db_dir=tmp_path, auth_token="env-token") as srv:
        ep = start_sqld(SqldConfig(strategy="url", url=srv.url)).endpoint
        assert ep.auth_token == "env-token"
        ep.create_database("envns")  # would be 401 without the token


def test_refused_token_says_what_to_set_and_never_shows_it(tmp_path: Path) -> None:
    with StandinServer(db_dir=tmp_path, auth_token="right-token") as srv:
        ep = start_sqld(SqldConfig(strategy="url", url=srv.url, auth_token="wrong-token")).endpoint
        with pytest.raises(SqldUnavailable) as info:
            ep.create_database("refused")
    message = str(info.value)
    assert "HTTP 401" in message and "set TURSO_AUTH_TOKEN (or --sqld-auth-token)" in message
    assert "wrong-token" not in message and "right-token" not in message


def test_url_unreachable_is_an_error() -> None:
    port = launcher.free_port()
    with pytest.raises(SqldUnavailable, match=rf"--sqld-url http://127.0.0.1:{port}: no answer"):
        start_sqld(SqldConfig(strategy="url", url=f"http://127.0.0.1:{port}"))
    with pytest.raises(SqldUnavailable, match="needs --sqld-url"):
        start_sqld(SqldConfig(strategy="url"))


@pytest.fixture
def sqld_like(fake_sqld: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A server that answers /version like real sqld (so: no namespaces the harness can use)."""
    monkeypatch.setenv("FAKE_SQLD_VERSION", "sqld 0.24.99 (fake 2026-01-01)")
    handle = start_sqld(SqldConfig(strategy="binary", sqld_bin=str(fake_sqld), workdir=tmp_path))
    try:
        assert handle.endpoint.label == "sqld 0.24.99 (binary)"
        yield handle.endpoint.url
    finally:
        handle.stop()


def _count_objects(ep: launcher.SqldEndpoint) -> int:
    [res] = ep.pipeline(
        [{"type": "execute", "stmt": {"sql": "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'"}}]
    )
    return int(res["result"]["rows"][0][0]["value"])


def test_url_without_namespaces_refuses_to_wipe(sqld_like: str) -> None:
    ep = start_sqld(SqldConfig(strategy="url", url=sqld_like)).endpoint
    assert not ep.supports_namespaces and not ep.owned
    ep.pipeline([{"type": "execute", "stmt": {"sql": "CREATE TABLE precious(x)"}}])
    with pytest.raises(ResetRefused, match="--sqld-allow-reset"):
        ep.create_database("t")
    assert _count_objects(ep) == 1


def test_url_allow_reset_wipes_everything(sqld_like: str) -> None:
    ep = start_sqld(SqldConfig(strategy="url", url=sqld_like, allow_reset=True)).endpoint
    ep.pipeline(
        [
            {"type": "execute", "stmt": {"sql": "CREATE TABLE p(id INTEGER PRIMARY KEY AUTOINCREMENT)"}},
            {"type": "execute", "stmt": {"sql": "CREATE TABLE c(p REFERENCES p(id))"}},
            {"type": "execute", "stmt": {"sql": "CREATE INDEX ci ON c(p)"}},
            {"type": "execute", "stmt": {"sql": "CREATE VIEW v AS SELECT * FROM c"}},
            {"type": "execute", "stmt": {"sql": "CREATE TRIGGER tr AFTER INSERT ON p BEGIN SELECT 1; END"}},
        ]
    )
    assert _count_objects(ep) == 5
    assert ep.create_database("t") == ep.url
    assert _count_objects(ep) == 0


def test_auto_prefers_url_then_path_then_standin(
    fake_sqld: Path, tmp_path: Path, no_docker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with StandinServer(db_dir=tmp_path / "u") as srv, start_sqld(SqldConfig(strategy="auto", url=srv.url)) as h:
        assert h.endpoint.strategy == "url"
    monkeypatch.setenv("PATH", str(fake_sqld.parent))
    with start_sqld(SqldConfig(strategy="auto", workdir=tmp_path)) as handle:
        assert handle.endpoint.strategy == "binary"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with start_sqld(SqldConfig(strategy="auto", workdir=tmp_path)) as handle:
        assert handle.endpoint.strategy == "stand-in"
        assert handle.endpoint.label == "stand-in 0.1 (traceparity) [write-lock handover 0.2 s; sqld: 5 s]"


def test_unknown_strategy() -> None:
    with pytest.raises(SqldUnavailable, match="not one of auto, binary, docker, url, stand-in"):
        start_sqld(SqldConfig(strategy="cloud"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
@pytest.mark.parametrize("strategy", ["binary", "stand-in"])
def test_no_orphan_when_the_harness_is_killed(strategy: str, fake_sqld: Path, tmp_path: Path) -> None:
    child = textwrap.dedent(
        f"""
        import sys, time
        from pytest_traceparity.servers.launcher import SqldConfig, start_sqld
        h = start_sqld(SqldConfig(strategy={strategy!r}, sqld_bin={str(fake_sqld)!r},
                                  workdir={str(tmp_path)!r}))
        print(h.pid, h.endpoint.url, flush=True)
        time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line, "the harness child did not start a server"
        server_pid = int(line[0])
        assert pid_alive(server_pid)
        os.kill(proc.pid, signal.SIGKILL)  # like a crashed xdist worker: no teardown runs
        proc.wait(timeout=10)
        assert wait_gone(server_pid), f"server pid {server_pid} outlived its killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_server_started_on_a_short_lived_thread_outlives_that_thread(tmp_path: Path) -> None:
    """Linux sends the parent-death signal when the forking *thread* exits; servers are forked
    from one long-lived spawner thread, so a server first needed on a worker thread (aiosqlite's)
    keeps running after that thread ends, and still dies with our process."""
    import threading
    import urllib.request

    started: dict[str, Any] = {}

    def start() -> None:
        started["proc"], started["url"] = launcher.spawn_standin(tmp_path / "db", tmp_path / "standin.log")

    worker = threading.Thread(target=start)
    worker.start()
    worker.join()
    proc = started["proc"]
    try:
        time.sleep(0.5)  # the signal, if any, arrives right after the thread exits
        assert proc.poll() is None, f"the stand-in died with the thread that started it: {proc.returncode}"
        with urllib.request.urlopen(f"{started['url']}/health", timeout=10) as response:
            assert response.status == 200
    finally:
        launcher.terminate(proc)


TRAMPOLINES = ["setpriv", "python"]


def _trampoline(kind: str) -> str:
    from pytest_traceparity.servers.launcher.process import _setpriv_with_pdeathsig

    if kind == "python":
        return ""  # die_with_parent falls back to the Python trampoline
    path = _setpriv_with_pdeathsig()
    if not path:
        pytest.skip("util-linux setpriv with --pdeathsig is not installed here; the Python trampoline is tested")
    return path


@pytest.mark.parametrize("kind", TRAMPOLINES)
def test_trampoline_child_dies_with_its_parent(kind: str, tmp_path: Path) -> None:
    """Both ways of setting the parent-death signal without preexec_fn kill the server with us."""
    setpriv = _trampoline(kind)
    child = textwrap.dedent(
        f"""
        import subprocess, time
        from pytest_traceparity.servers.launcher.process import die_with_parent
        proc = subprocess.Popen(die_with_parent(["sleep", "60"], setpriv={setpriv!r}), start_new_session=True)
        print(proc.pid, flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        deadline = time.monotonic() + 10
        cmdline = Path(f"/proc/{server_pid}/cmdline")
        while time.monotonic() < deadline and cmdline.read_bytes().split(b"\0")[0] != b"sleep":
            time.sleep(0.01)  # until the trampoline has exec'd the server
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        assert wait_gone(server_pid), f"{kind}: server pid {server_pid} outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.parametrize("kind", TRAMPOLINES)
def test_trampoline_refuses_to_start_for_a_parent_already_gone(kind: str, tmp_path: Path) -> None:
    """Run from another process than the one that built it (as if our process had died before the
    signal was set), the trampoline exits 1 and never starts the server."""
    from pytest_traceparity.servers.launcher.process import die_with_parent

    marker = tmp_path / "started"
    command = die_with_parent(["touch", str(marker)], setpriv=_trampoline(kind))
    done = subprocess.run(
        [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))", *command],
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert not marker.exists()
