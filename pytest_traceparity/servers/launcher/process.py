"""Child processes: spawn a server in its own process group that dies with us, stop it
terminate-then-kill, and explain a server that stopped answering."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from .endpoint import SqldConfig

# Why not preexec_fn: it runs Python between fork and exec in a threaded process (our
# spawner thread, xdist, aiosqlite), which can deadlock. The child sets its own
# parent-death signal instead (it survives execve), then checks that the parent did not
# die before that, then execs the server. Two ways, fastest first:
# - util-linux ``setpriv --pdeathsig`` + ``sh`` (about 2 ms; turso-sync starts one server
#   per test database, so the trampoline's cost is paid hundreds of times a run);
# - ``python -I -S -c _DIE_WITH_PARENT`` (about 55 ms) where setpriv is missing.
_SH_CHECK_PARENT = 'parent=$1; shift; [ "$PPID" = "$parent" ] || exit 1; exec "$@"'
_DIE_WITH_PARENT = """\
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def die_with_parent(cmd: list[str], *, setpriv: str | None = None) -> list[str]:
    """``cmd`` wrapped so that the child dies with SIGTERM when this process dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return cmd
    setpriv = setpriv if setpriv is not None else _setpriv_with_pdeathsig()
    parent = str(os.getpid())
    if setpriv:
        return [setpriv, "--pdeathsig", "TERM", "--", "/bin/sh", "-c", _SH_CHECK_PARENT, "sh", parent, *cmd]
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, parent, *cmd]


@functools.lru_cache(maxsize=1)
def _setpriv_with_pdeathsig() -> str:
    """The path of a setpriv that knows ``--pdeathsig`` (util-linux >= 2.33), or ``""``."""
    path = shutil.which("setpriv")
    if not path or not os.path.exists("/bin/sh"):
        return ""
    try:
        done = subprocess.run([path, "--pdeathsig", "TERM", "--", "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return path if done.returncode == 0 else ""


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


def spawn(
    cmd: list[str], log_path: Path, env: Mapping[str, str] | None = None, stdout_pipe: bool = False
) -> subprocess.Popen[bytes]:
    """Start a server in its own process group, logging to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def start() -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                die_with_parent(cmd),
                stdout=subprocess.PIPE if stdout_pipe else log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=None if env is None else dict(env),
                start_new_session=True,
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


def _workdir(config: SqldConfig, prefix: str) -> Path:
    """A fresh directory for one server, under ``config.workdir`` when given."""
    if config.workdir is not None:
        path = Path(config.workdir)
        path.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=path))
    return Path(tempfile.mkdtemp(prefix=prefix))


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
