"""The binary, stand-in and url strategies, and :func:`start_sqld` which picks one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import urllib.error
from pathlib import Path
from urllib.parse import urlsplit

from ...backends.endpoint import http_url
from ...http import request
from ...secret import Secret, reveal
from .docker import docker_available, start_docker
from .endpoint import SqldConfig, SqldEndpoint, SqldHandle
from .net import (
    STANDIN_MARK,
    SqldUnavailable,
    free_port,
    localhost_subdomains_resolve,
    make_label,
    server_version,
    wait_healthy,
)
from .process import _tail, _workdir, process_diagnosis, spawn, terminate

STRATEGIES = ("auto", "binary", "docker", "url", "stand-in")


def find_sqld(config: SqldConfig) -> str | None:
    if config.sqld_bin:
        path = Path(config.sqld_bin)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        return shutil.which(config.sqld_bin)
    return shutil.which("sqld")


def start_binary(config: SqldConfig) -> SqldHandle:
    binary = find_sqld(config)
    if binary is None:
        where = f"--sqld-bin {config.sqld_bin!r} is not an executable" if config.sqld_bin else ("no `sqld` on PATH")
        raise SqldUnavailable(
            f"--sqld=binary: {where}; install sqld (libsql-server) or pass --sqld-bin PATH, "
            "or use --sqld=docker/url/stand-in"
        )
    # A token (e.g. TURSO_AUTH_TOKEN meant for a cloud URL) is not used here: an sqld we
    # start has no auth configured (it would need a JWT key), so it accepts every request.
    work = _workdir(config, "sqld-")
    log_path = work / "sqld.log"
    host_routing = config.namespaces and localhost_subdomains_resolve()
    proc, url, admin_port = _launch_binary(binary, work, log_path, host_routing, config.startup_timeout)
    version = server_version(url)
    standin = version.startswith(STANDIN_MARK)
    endpoint = SqldEndpoint(
        url=url,
        label=make_label(version, "binary"),
        strategy="binary",
        supports_namespaces=standin or host_routing,
        namespace_routing="path" if standin else ("host" if host_routing else "none"),
        admin_url=url if standin else (f"http://127.0.0.1:{admin_port}" if host_routing else None),
        owned=True,
        diagnose=process_diagnosis(proc, f"sqld ({binary})", log_path),
    )

    def stop() -> None:
        terminate(proc)
        shutil.rmtree(work / "data.sqld", ignore_errors=True)

    return SqldHandle(endpoint, stop, log_path=log_path, pid=proc.pid)


def _launch_binary(
    binary: str, work: Path, log_path: Path, host_routing: bool, timeout: float
) -> tuple[subprocess.Popen[bytes], str, int | None]:
    """sqld on free ports, healthy; a port taken between probe and bind is retried (3 tries)."""
    last_error = ""
    for _attempt in range(3):
        port = free_port()
        cmd = [binary, "--db-path", str(work / "data.sqld"), "--http-listen-addr", f"127.0.0.1:{port}", "--no-welcome"]
        admin_port = None
        if host_routing:
            admin_port = free_port()
            cmd += ["--enable-namespaces", "--admin-listen-addr", f"127.0.0.1:{admin_port}"]
        proc = spawn(cmd, log_path)
        url = f"http://127.0.0.1:{port}"

        def alive(proc: subprocess.Popen[bytes] = proc) -> str | None:
            code = proc.poll()
            if code is None:
                return None
            return f"sqld ({binary}) exited with status {code} during startup; log {log_path}:\n{_tail(log_path)}"

        try:
            wait_healthy(url, timeout, alive=alive)
        except SqldUnavailable as exc:
            terminate(proc)
            last_error = str(exc)
            if "Address already in use" in _tail(log_path):
                continue
            raise SqldUnavailable(f"--sqld=binary: {exc}") from None
        return proc, url, admin_port
    raise SqldUnavailable(f"--sqld=binary: could not get a free port: {last_error}")


# The harness's stand-in hands the write lock to a waiting writer after this many seconds
# instead of sqld's 5 (a holder nobody waits for still times out at 5 s, as on sqld), so a
# contention case such as isolation.write_lock_busy takes a fraction of a second. Its label
# says so, so no result is credited to sqld's real timing.
HARNESS_TXN_HANDOVER = 0.2


def standin_label(version_label: str, handover: float | None) -> str:
    """``stand-in 0.1 (traceparity)``, plus the shortened handover when there is one."""
    if handover is None:
        return version_label
    return f"{version_label} [write-lock handover {handover:g} s; sqld: 5 s]"


def spawn_standin(
    db_dir: Path,
    log_path: Path,
    token: Secret | str | None = None,
    timeout: float = 30.0,
    txn_handover: float | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a stand-in process serving ``db_dir``; returns it and its URL once it listens.

    Reusing a ``db_dir`` restarts a primary on the same data (tests of generations rely on it).
    """
    env = dict(os.environ)
    env.pop("TRACEPARITY_STANDIN_AUTH_TOKEN", None)
    if token:
        env["TRACEPARITY_STANDIN_AUTH_TOKEN"] = reveal(token)  # not on the command line (ps shows argv)
    cmd = [sys.executable, "-u", "-m", "pytest_traceparity.servers.standin", "--port", "0", "--db-dir", str(db_dir)]
    if txn_handover is not None:
        cmd += ["--txn-handover", str(txn_handover)]
    proc = spawn(cmd, log_path, env=env, stdout_pipe=True)
    assert proc.stdout is not None
    line_box: list[bytes] = []
    reader = threading.Thread(target=lambda: line_box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    line = line_box[0].decode("utf-8", "replace").strip() if line_box else ""
    if not line.startswith("listening on "):
        terminate(proc)
        raise SqldUnavailable(
            f"the traceparity stand-in did not start (said {line!r}); log {log_path}:\n{_tail(log_path)}"
        )
    return proc, line.split()[-1]


def start_standin(config: SqldConfig) -> SqldHandle:
    """The stand-in in a child process (the libsql client holds the GIL while it waits)."""
    work = _workdir(config, "standin-")
    log_path = work / "standin.log"
    token = config.token()
    proc, url = spawn_standin(work / "db", log_path, token, config.startup_timeout, HARNESS_TXN_HANDOVER)
    wait_healthy(url, config.startup_timeout)
    endpoint = SqldEndpoint(
        url=url,
        label=standin_label(make_label(server_version(url), "stand-in"), HARNESS_TXN_HANDOVER),
        strategy="stand-in",
        auth_token=token,
        supports_namespaces=True,
        namespace_routing="path",
        admin_url=url,
        owned=True,
        diagnose=process_diagnosis(proc, "the stand-in process", log_path),
    )

    def stop() -> None:
        terminate(proc)
        shutil.rmtree(work / "db", ignore_errors=True)

    return SqldHandle(endpoint, stop, log_path=log_path, pid=proc.pid)


def use_url(config: SqldConfig) -> SqldHandle:
    if not config.url:
        raise SqldUnavailable("--sqld=url needs --sqld-url http://HOST:PORT")
    url = http_url(config.url)
    token = config.token()
    try:
        status, _body = request("GET", f"{url}/health", token=token, timeout=5.0)
    except (OSError, urllib.error.URLError) as exc:
        raise SqldUnavailable(
            f"--sqld-url {url}: no answer to GET /health ({getattr(exc, 'reason', exc)}); "
            "is the server running and reachable?"
        ) from None
    if status != 200:
        raise SqldUnavailable(f"--sqld-url {url}: GET /health answered HTTP {status}")
    version = server_version(url, token)
    standin = version.startswith(STANDIN_MARK)
    admin = config.admin_url.rstrip("/") if config.admin_url else None
    routing = "none"
    if standin:
        admin, routing = admin or url, "path"
    elif admin and localhost_subdomains_resolve() and urlsplit(url).hostname in ("127.0.0.1", "localhost"):
        routing = "host"
    endpoint = SqldEndpoint(
        url=url,
        label=make_label(version, "url"),
        strategy="url",
        auth_token=token,
        supports_namespaces=routing != "none",
        namespace_routing=routing,
        admin_url=admin if routing != "none" else None,
        owned=False,
        allow_reset=config.allow_reset,
    )
    return SqldHandle(endpoint, None)


def start_sqld(config: SqldConfig) -> SqldHandle:
    """Start (or borrow) an sqld endpoint according to ``config.strategy``."""
    strategy = config.strategy
    if strategy not in STRATEGIES:
        raise SqldUnavailable(f"--sqld={strategy!r} is not one of {', '.join(STRATEGIES)}")
    if strategy == "binary":
        return start_binary(config)
    if strategy == "docker":
        return start_docker(config)
    if strategy == "url":
        return use_url(config)
    if strategy == "stand-in":
        return start_standin(config)
    # auto: url if given, else sqld on PATH, else docker if a daemon answers, else the stand-in
    if config.url:
        return use_url(config)
    if find_sqld(config) is not None:
        return start_binary(config)
    if docker_available():  # a daemon answers: a failure to start sqld there is an error, not a fallback
        return start_docker(config)
    return start_standin(config)
