"""Obtain an sqld endpoint: a binary we start, a Docker container, a URL, or the stand-in.

Every endpoint is labelled with what served it ("sqld 0.24.33 (binary)", "stand-in 0.1
(traceparity)") so a result is never credited to the wrong server. Servers we start run
in their own process group with a parent-death signal (Linux), are stopped
terminate-then-kill, and are also stopped at interpreter exit: no orphans.

Per-test databases: with namespaces, each test gets its own namespace. The libsql client
picks a namespace only through the URL, so the endpoint must offer a routing the client
can use: the stand-in routes ``/dev/NAME`` paths (pipeline *and* cursor); real sqld routes
``NAME.<host>`` Host headers (its ``/dev/NAME`` route covers only the pipeline, and the
client reads through ``/v3/cursor``), which needs ``*.localhost`` to resolve. Without
that, a server the harness started is reset by dropping every schema object instead; a
server it did not start is never wiped unless ``allow_reset`` is set.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import BackendUnavailable
from ..secret import Secret, as_secret, redact, reveal

STRATEGIES = ("auto", "binary", "docker", "url", "stand-in")
DEFAULT_IMAGE = "ghcr.io/tursodatabase/libsql-server:latest"
CONTAINER_LABEL = "pytest-traceparity"
STANDIN_MARK = "traceparity-standin"


class SqldUnavailable(BackendUnavailable):
    """The requested way to get an sqld server cannot work here; the message says why."""


class ResetRefused(BackendUnavailable):
    """Refusing to wipe a database the harness did not create."""


# ------------------------------------------------------------------ small HTTP helpers


def _http(
    method: str,
    url: str,
    *,
    token: Secret | str | None = None,
    body: Any = None,
    timeout: float = 10.0,
    host: str | None = None,
) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {reveal(token)}")
    if host:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_healthy(url: str, timeout: float, *, alive: Callable[[], str | None] | None = None) -> None:
    """Poll ``GET /health`` until 200; ``alive()`` returns a reason when the server died."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if alive is not None:
            reason = alive()
            if reason:
                raise SqldUnavailable(reason)
        try:
            status, _ = _http("GET", f"{url}/health", timeout=2.0)
            if status == 200:
                return
            last = f"HTTP {status}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(getattr(exc, "reason", exc))
        time.sleep(0.1)
    raise SqldUnavailable(f"sqld at {url} did not become healthy within {timeout:.0f}s (last: {last})")


def server_version(url: str, token: Secret | str | None = None) -> str:
    try:
        status, body = _http("GET", f"{url}/version", token=token, timeout=5.0)
    except (OSError, urllib.error.URLError):
        return ""
    return body.decode("utf-8", "replace").strip() if status == 200 else ""


def make_label(version: str, strategy: str) -> str:
    """"sqld 0.24.33 (docker)" / "stand-in 0.1 (traceparity)" from a ``/version`` answer."""
    standin = re.match(rf"{STANDIN_MARK} (\S+)", version)
    if standin:
        via = "traceparity" if strategy == "stand-in" else f"traceparity, via {strategy}"
        return f"stand-in {standin.group(1)} ({via})"
    real = re.match(r"sqld (\S+)", version)
    if real:
        return f"sqld {real.group(1)} ({strategy})"
    return f"sqld {version or 'unknown version'} ({strategy})"


def localhost_subdomains_resolve() -> bool:
    """True when ``NAME.localhost`` resolves to loopback (sqld's Host-header routing)."""
    try:
        infos = socket.getaddrinfo("traceparity-probe.localhost", 80, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return any(info[4][0] in ("127.0.0.1", "::1") for info in infos)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ endpoint


@dataclass
class SqldEndpoint:
    """Where the ``sqld-http`` backend connects, and how to get a fresh database there."""

    url: str
    label: str
    strategy: str
    auth_token: Secret | None = field(default=None, repr=False)
    supports_namespaces: bool = False
    namespace_routing: str = "none"  # "path" (/dev/NAME), "host" (NAME.localhost) or "none"
    admin_url: str | None = None
    owned: bool = True
    allow_reset: bool = False
    # Says what happened to a server the harness started (exit code, log tail) when it stops answering.
    diagnose: Callable[[], str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.auth_token = as_secret(self.auth_token)

    def _request(self, method: str, url: str, body: Any = None) -> tuple[int, bytes]:
        try:
            return _http(method, url, token=self.auth_token, body=body)
        except (OSError, urllib.error.URLError) as exc:
            reason = redact(str(getattr(exc, "reason", exc)), self.auth_token)
            hint = self.diagnose() if self.diagnose is not None else "is it still running?"
            raise SqldUnavailable(f"{self.label} at {self.url} stopped answering ({reason}); {hint}") from None

    def _refused(self, what: str, status: int, body: bytes) -> SqldUnavailable:
        """An HTTP failure, with the auth hint when the server refused the token."""
        text = redact(body.decode("utf-8", "replace"), self.auth_token)[:300]
        hint = ""
        if status in (401, 403):
            hint = "; set TURSO_AUTH_TOKEN (or --sqld-auth-token) to a token this server accepts"
        return SqldUnavailable(f"{self.label}: {what} failed with HTTP {status}: {text}{hint}")

    def url_for(self, name: str) -> str:
        """The URL the libsql client uses for namespace ``name``."""
        if name == "default" or self.namespace_routing == "none":
            return self.url
        if self.namespace_routing == "path":
            return f"{self.url}/dev/{name}"
        parts = urlsplit(self.url)
        netloc = f"{name}.localhost" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def create_database(self, name: str) -> str:
        """A fresh, empty database; returns the URL to connect to."""
        if self.supports_namespaces:
            assert self.admin_url is not None
            status, body = self._request("POST", f"{self.admin_url}/v1/namespaces/{name}/create", body={})
            if status == 400 and b"already exists" in body:
                self.drop_database(name)
                status, body = self._request("POST", f"{self.admin_url}/v1/namespaces/{name}/create", body={})
            if status != 200:
                raise self._refused(f"creating namespace {name!r}", status, body)
            return self.url_for(name)
        if not (self.owned or self.allow_reset):
            raise ResetRefused(
                f"{self.label} at {self.url} has no namespaces the harness can use, and the harness "
                "did not create its database: refusing to wipe it for a fresh test database. Point "
                "--sqld-url at a disposable server and pass --sqld-allow-reset, or use --sqld=stand-in."
            )
        self.reset()
        return self.url

    def drop_database(self, name: str) -> None:
        if not self.supports_namespaces:
            return
        assert self.admin_url is not None
        status, body = self._request("DELETE", f"{self.admin_url}/v1/namespaces/{name}")
        if status not in (200, 404):
            raise self._refused(f"deleting namespace {name!r}", status, body)

    def pipeline(self, requests: list[dict[str, Any]], url: str | None = None) -> list[dict[str, Any]]:
        """Run Hrana requests on a fresh stream (closed afterwards); raise on any error."""
        status, body = self._request(
            "POST", f"{url or self.url}/v2/pipeline", body={"baton": None, "requests": [*requests, {"type": "close"}]}
        )
        if status != 200:
            raise self._refused("Hrana pipeline", status, body)
        results = json.loads(body)["results"]
        for result in results:
            if result.get("type") != "ok":
                raise SqldUnavailable(f"{self.label}: Hrana request failed: {result.get('error')}")
        return [r["response"] for r in results[:-1]]  # the last one answers our "close"

    def reset(self, url: str | None = None) -> None:
        """Drop every user table, view, trigger and index of the (default) database."""
        listing = self.pipeline(
            [
                {
                    "type": "execute",
                    "stmt": {
                        "sql": "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' "
                        "AND name NOT LIKE 'libsql_%' AND name NOT LIKE '_litestream%'",
                    },
                }
            ],
            url,
        )
        order = {"trigger": 0, "view": 1, "index": 2, "table": 3}
        objects = sorted(
            ((row[0]["value"], row[1]["value"]) for row in listing[0]["result"]["rows"]),
            key=lambda item: order.get(item[0], 9),
        )
        drops = [{"type": "execute", "stmt": {"sql": "PRAGMA foreign_keys=OFF"}}]
        for kind, name in objects:
            if kind in order:
                quoted = '"' + name.replace('"', '""') + '"'
                drops.append({"type": "execute", "stmt": {"sql": f"DROP {kind.upper()} IF EXISTS {quoted}"}})
        self.pipeline(drops, url)


# ------------------------------------------------------------------ config and handle


@dataclass
class SqldConfig:
    strategy: str = "auto"
    sqld_bin: str | None = None
    image: str = DEFAULT_IMAGE
    url: str | None = None
    auth_token: Secret | str | None = field(default=None, repr=False)
    admin_url: str | None = None
    allow_reset: bool = False
    workdir: Path | None = None
    startup_timeout: float = 30.0
    namespaces: bool = True
    env: Mapping[str, str] | None = None

    def token(self) -> Secret | None:
        env = os.environ if self.env is None else self.env
        return as_secret(self.auth_token or env.get("TURSO_AUTH_TOKEN"))


class SqldHandle:
    """A running (or borrowed) server; :meth:`stop` tears down whatever was started."""

    def __init__(self, endpoint: SqldEndpoint, stopper: Callable[[], None] | None = None,
                 *, log_path: Path | None = None, pid: int | None = None) -> None:
        self.endpoint = endpoint
        self.log_path = log_path
        self.pid = pid
        self._stopper = stopper
        self._lock = threading.Lock()
        if stopper is not None:
            atexit.register(self.stop)

    def __repr__(self) -> str:
        return f"SqldHandle({self.endpoint!r}, pid={self.pid})"

    def stop(self) -> None:
        with self._lock:
            stopper, self._stopper = self._stopper, None
        if stopper is not None:
            with contextlib.suppress(Exception):
                atexit.unregister(self.stop)
            stopper()

    def __enter__(self) -> SqldHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------ child processes


def _set_parent_death_signal() -> None:
    """In the child before exec: die with SIGTERM when the parent dies (Linux only)."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
        if os.getppid() == 1:  # the parent already died between fork and prctl
            os._exit(1)


_SPAWNER: concurrent.futures.ThreadPoolExecutor | None = None
_SPAWNER_LOCK = threading.Lock()


def _spawner() -> concurrent.futures.ThreadPoolExecutor:
    """One thread that lives as long as this process and forks every server.

    Why: Linux delivers the parent-death signal when the *thread* that forked the child
    exits, not the process. A server first needed on a short-lived thread (aiosqlite's
    worker, a test's helper thread) would be killed with that thread; forked from here,
    it dies only with the process that owns it.
    """
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None:
            _SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="traceparity-spawner")
        return _SPAWNER


def spawn(cmd: list[str], log_path: Path, env: Mapping[str, str] | None = None,
          stdout_pipe: bool = False) -> subprocess.Popen[bytes]:
    """Start a server in its own process group, logging to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def start() -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE if stdout_pipe else log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=None if env is None else dict(env),
                start_new_session=True,
                preexec_fn=_set_parent_death_signal if sys.platform.startswith("linux") else None,
            )

    return _spawner().submit(start).result()


def terminate(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the process group, wait, then SIGKILL it."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)
    if proc.stdout is not None:
        proc.stdout.close()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _workdir(config: SqldConfig, prefix: str) -> tuple[Path, bool]:
    if config.workdir is not None:
        path = Path(config.workdir)
        path.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=path)), True
    return Path(tempfile.mkdtemp(prefix=prefix)), True


# ------------------------------------------------------------------ strategies


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
        where = f"--sqld-bin {config.sqld_bin!r} is not an executable" if config.sqld_bin else (
            "no `sqld` on PATH"
        )
        raise SqldUnavailable(
            f"--sqld=binary: {where}; install sqld (libsql-server) or pass --sqld-bin PATH, "
            "or use --sqld=docker/url/stand-in"
        )
    # A token (e.g. TURSO_AUTH_TOKEN meant for a cloud URL) is not used here: an sqld we
    # start has no auth configured (it would need a JWT key), so it accepts every request.
    work, _ = _workdir(config, "sqld-")
    log_path = work / "sqld.log"
    host_routing = config.namespaces and localhost_subdomains_resolve()
    last_error = ""
    for _attempt in range(3):
        port = free_port()
        cmd = [binary, "--db-path", str(work / "data.sqld"), "--http-listen-addr", f"127.0.0.1:{port}",
               "--no-welcome"]
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
            wait_healthy(url, config.startup_timeout, alive=alive)
        except SqldUnavailable as exc:
            terminate(proc)
            last_error = str(exc)
            if "Address already in use" in _tail(log_path):
                continue
            raise SqldUnavailable(f"--sqld=binary: {exc}") from None
        break
    else:
        raise SqldUnavailable(f"--sqld=binary: could not get a free port: {last_error}")

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


def kept_log_dir() -> Path:
    """Where logs of servers that died mid-run are copied: outside the run's temp dirs,
    which are removed at exit (``TRACEPARITY_LOG_DIR`` overrides)."""
    return Path(os.environ.get("TRACEPARITY_LOG_DIR") or Path(tempfile.gettempdir()) / "traceparity-logs")


def process_diagnosis(proc: subprocess.Popen[bytes], what: str, log_path: Path) -> Callable[[], str]:
    """Explains a silent server: has our child exited, with which code, and what did it log.

    The first test that finds the server dead gets the log tail and the path of a copy kept
    after the run; every later test gets one line naming the same crash and the same copy.
    """
    kept: list[Path] = []
    lock = threading.Lock()

    def diagnose() -> str:
        code = proc.poll()
        if code is None:
            return f"{what} (pid {proc.pid}) is still running; its log: {log_path}"
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        with lock:
            if kept:
                return f"{what} (pid {proc.pid}) {how} earlier in this run; its log is kept at {kept[0]}"
            target = log_path
            with contextlib.suppress(OSError):
                folder = kept_log_dir()
                folder.mkdir(parents=True, exist_ok=True)
                target = folder / f"{log_path.stem}-{proc.pid}-{int(time.time())}.log"
                shutil.copyfile(log_path, target)
            kept.append(target)
        tail = _tail(target).strip()
        return f"{what} (pid {proc.pid}) {how}; its log is kept at {target}" + (
            f"; last lines:\n{tail}" if tail else " (empty)"
        )

    return diagnose


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
    db_dir: Path, log_path: Path, token: Secret | str | None = None, timeout: float = 30.0,
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
    work, _ = _workdir(config, "standin-")
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
    url = config.url.rstrip("/")
    if url.startswith("libsql://"):
        url = "https://" + url[len("libsql://"):]
    token = config.token()
    try:
        status, _body = _http("GET", f"{url}/health", token=token, timeout=5.0)
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


def _docker_client() -> Any:
    try:
        import docker
    except ImportError:
        raise SqldUnavailable(
            "--sqld=docker needs the `docker` Python package: pip install 'pytest-traceparity[docker]'"
        ) from None
    try:
        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as exc:
        where = os.environ.get("DOCKER_HOST", "the default socket (/var/run/docker.sock)")
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SqldUnavailable(
            f"--sqld=docker: no Docker daemon answers at {where} ({reason[:160]}); "
            "start Docker, or use --sqld=binary/url/stand-in"
        ) from None
    return client


def docker_available() -> bool:
    try:
        _docker_client().close()
    except SqldUnavailable:
        return False
    return True


def start_docker(config: SqldConfig) -> SqldHandle:
    client = _docker_client()  # like binary: the container runs without auth, no token sent
    host_routing = config.namespaces and localhost_subdomains_resolve()
    command = ["/bin/sqld"]
    ports: dict[str, Any] = {"8080/tcp": ("127.0.0.1", None)}
    if host_routing:
        command += ["--enable-namespaces", "--admin-listen-addr", "0.0.0.0:9090"]
        ports["9090/tcp"] = ("127.0.0.1", None)
    session = uuid.uuid4().hex[:12]
    try:
        container = client.containers.run(
            config.image,
            command=command,
            detach=True,
            environment={"SQLD_NODE": "standalone"},
            ports=ports,
            labels={CONTAINER_LABEL: session, f"{CONTAINER_LABEL}.pid": str(os.getpid())},
            name=f"traceparity-sqld-{session}",
        )
    except Exception as exc:
        raise SqldUnavailable(
            f"--sqld=docker: could not start {config.image}: {str(exc).splitlines()[0][:200]}"
        ) from None

    def stop() -> None:
        with contextlib.suppress(Exception):
            container.remove(force=True)
        with contextlib.suppress(Exception):
            client.close()

    try:
        container.reload()
        bindings = container.attrs["NetworkSettings"]["Ports"]
        port = int(bindings["8080/tcp"][0]["HostPort"])
        url = f"http://127.0.0.1:{port}"
        admin = f"http://127.0.0.1:{int(bindings['9090/tcp'][0]['HostPort'])}" if host_routing else None

        def alive() -> str | None:
            container.reload()
            if container.status in ("exited", "dead"):
                logs = container.logs(tail=15).decode("utf-8", "replace")
                return f"the {config.image} container exited during startup:\n{logs}"
            return None

        wait_healthy(url, config.startup_timeout, alive=alive)
    except BaseException:
        stop()
        raise
    endpoint = SqldEndpoint(
        url=url,
        label=make_label(server_version(url), "docker"),
        strategy="docker",
        supports_namespaces=host_routing,
        namespace_routing="host" if host_routing else "none",
        admin_url=admin,
        owned=True,
    )
    return SqldHandle(endpoint, stop)


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
