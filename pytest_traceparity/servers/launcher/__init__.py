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

Modules: :mod:`.net` (HTTP helpers, labels, errors), :mod:`.endpoint` (endpoint, config,
handle), :mod:`.process` (spawn/stop/diagnose children), :mod:`.docker` and
:mod:`.strategies` (binary, stand-in, url, and :func:`start_sqld`).
"""

from __future__ import annotations

from .docker import CONTAINER_LABEL, docker_available, start_docker
from .endpoint import DEFAULT_IMAGE, SqldConfig, SqldEndpoint, SqldHandle
from .net import (
    STANDIN_MARK,
    ResetRefused,
    SqldUnavailable,
    free_port,
    localhost_subdomains_resolve,
    make_label,
    server_version,
    wait_healthy,
)
from .process import kept_log_dir, process_diagnosis, spawn, terminate
from .strategies import (
    HARNESS_TXN_HANDOVER,
    STRATEGIES,
    find_sqld,
    spawn_standin,
    standin_label,
    start_binary,
    start_sqld,
    start_standin,
    use_url,
)

__all__ = [
    "CONTAINER_LABEL",
    "DEFAULT_IMAGE",
    "HARNESS_TXN_HANDOVER",
    "STANDIN_MARK",
    "STRATEGIES",
    "ResetRefused",
    "SqldConfig",
    "SqldEndpoint",
    "SqldHandle",
    "SqldUnavailable",
    "docker_available",
    "find_sqld",
    "free_port",
    "kept_log_dir",
    "localhost_subdomains_resolve",
    "make_label",
    "process_diagnosis",
    "server_version",
    "spawn",
    "spawn_standin",
    "standin_label",
    "start_binary",
    "start_docker",
    "start_sqld",
    "start_standin",
    "terminate",
    "use_url",
    "wait_healthy",
]
