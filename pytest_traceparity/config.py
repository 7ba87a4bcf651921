"""Harness settings shared by the pytest plugin and the CLI (no pytest import here)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .backends.errors import UsageError

SQLD_STRATEGIES = ("auto", "binary", "docker", "url", "stand-in")
REPLICA_SYNC_MODES = ("auto", "after-write", "before-read", "manual")
DEFAULT_SQLD_IMAGE = "ghcr.io/tursodatabase/libsql-server:latest"


@dataclass
class SqldSettings:
    strategy: str = "auto"
    binary: str | None = None
    image: str = DEFAULT_SQLD_IMAGE
    url: str | None = None
    auth_token: str | None = field(default=None, repr=False)
    allow_reset: bool = False

    def __post_init__(self) -> None:
        if self.strategy not in SQLD_STRATEGIES:
            raise UsageError(f"--sqld={self.strategy!r} is not one of: {', '.join(SQLD_STRATEGIES)}")
        if self.strategy == "url" and not self.url:
            raise UsageError("--sqld=url needs --sqld-url http://HOST:PORT")
        if self.auth_token is None:
            self.auth_token = os.environ.get("TURSO_AUTH_TOKEN") or None


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
