"""Harness settings shared by the pytest plugin and the CLI (no pytest import here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .backends.errors import UsageError

if TYPE_CHECKING:
    from .servers.launcher import SqldConfig

SQLD_STRATEGIES = ("auto", "binary", "docker", "url", "stand-in")
REPLICA_SYNC_MODES = ("auto", "after-write", "before-read", "manual")
DEFAULT_SQLD_IMAGE = "ghcr.io/tursodatabase/libsql-server:latest"


def sqld_config(
    strategy: str = "auto",
    *,
    binary: str | None = None,
    image: str | None = None,
    url: str | None = None,
    auth_token: str | None = None,
    allow_reset: bool = False,
) -> SqldConfig:
    """Validated launcher settings from user options (one line per mistake, naming the option)."""
    from .servers.launcher import SqldConfig

    if strategy not in SQLD_STRATEGIES:
        raise UsageError(f"--sqld={strategy!r} is not one of: {', '.join(SQLD_STRATEGIES)}")
    if strategy == "url" and not url:
        raise UsageError("--sqld=url needs --sqld-url http://HOST:PORT")
    return SqldConfig(
        strategy=strategy,
        sqld_bin=binary,
        image=image or DEFAULT_SQLD_IMAGE,
        url=url,
        auth_token=auth_token or os.environ.get("TURSO_AUTH_TOKEN") or None,
        allow_reset=allow_reset,
    )


@dataclass
class ReplicaSettings:
    sync: str = "auto"
    sync_url: str | None = None
    offline: bool = False

    def __post_init__(self) -> None:
        if self.sync not in REPLICA_SYNC_MODES:
            raise UsageError(f"--replica-sync={self.sync!r} is not one of: {', '.join(REPLICA_SYNC_MODES)}")


def redact(text: str, *secrets: str | None) -> str:
    """Remove every secret from ``text`` before it reaches output or a report."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
