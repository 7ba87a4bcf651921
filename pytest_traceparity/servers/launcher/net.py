"""Small HTTP and socket helpers of the launcher: health polling, version, labels, ports."""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from ...errors import ResetRefused as ResetRefused
from ...errors import SqldUnavailable as SqldUnavailable
from ...http import request
from ...secret import Secret

STANDIN_MARK = "traceparity-standin"


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
            status, _ = request("GET", f"{url}/health", timeout=2.0)
            if status == 200:
                return
            last = f"HTTP {status}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(getattr(exc, "reason", exc))
        time.sleep(0.1)
    raise SqldUnavailable(f"sqld at {url} did not become healthy within {timeout:.0f}s (last: {last})")


def server_version(url: str, token: Secret | str | None = None) -> str:
    try:
        status, body = request("GET", f"{url}/version", token=token, timeout=5.0)
    except (OSError, urllib.error.URLError):
        return ""
    return body.decode("utf-8", "replace").strip() if status == 200 else ""


def make_label(version: str, strategy: str) -> str:
    """ "sqld 0.24.33 (docker)" / "stand-in 0.1 (traceparity)" from a ``/version`` answer."""
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
