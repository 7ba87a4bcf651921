"""Harness settings shared by the pytest plugin and the CLI (no pytest import here)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .backends.embedded_replica import REPLICA_SYNC_MODES
from .backends.turso_sync import TURSO_SYNC_MODES
from .errors import UsageError
from .secret import Secret, as_secret, redact, split_token
from .servers.launcher import DEFAULT_IMAGE as DEFAULT_SQLD_IMAGE
from .servers.launcher import STRATEGIES as SQLD_STRATEGIES
from .servers.launcher import SqldConfig

__all__ = [
    "DEFAULT_SQLD_IMAGE",
    "REPLICA_SYNC_MODES",
    "SQLD_STRATEGIES",
    "TURSO_SYNC_MODES",
    "ReplicaSettings",
    "TursoSettings",
    "redact",
    "split_token",
    "sqld_config",
]


def sqld_config(
    strategy: str = "auto",
    *,
    binary: str | None = None,
    image: str | None = None,
    url: str | None = None,
    auth_token: str | Secret | None = None,
    allow_reset: bool = False,
) -> SqldConfig:
    """Validated launcher settings from user options (one line per mistake, naming the option)."""
    if strategy not in SQLD_STRATEGIES:
        raise UsageError(f"--sqld={strategy!r} is not one of: {', '.join(SQLD_STRATEGIES)}")
    if strategy == "url" and not url:
        raise UsageError("--sqld=url needs --sqld-url http://HOST:PORT")
    if url:
        url, url_token = split_token(url)
        auth_token = auth_token or url_token
    return SqldConfig(
        strategy=strategy,
        sqld_bin=binary,
        image=image or DEFAULT_SQLD_IMAGE,
        url=url,
        auth_token=as_secret(auth_token or os.environ.get("TURSO_AUTH_TOKEN")),
        allow_reset=allow_reset,
    )


@dataclass
class ReplicaSettings:
    sync: str = "auto"
    sync_url: str | None = None
    offline: bool = False
    sync_token: Secret | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.sync_url:
            self.sync_url, self.sync_token = split_token(self.sync_url)
        if self.sync not in REPLICA_SYNC_MODES:
            raise UsageError(f"--replica-sync={self.sync!r} is not one of: {', '.join(REPLICA_SYNC_MODES)}")


@dataclass
class TursoSettings:
    """``turso-sync``: where ``tursodb`` is (``--turso-bin``) and when push/pull happen (``--turso-sync``)."""

    bin: str | None = None
    sync: str = "auto"
    search_dirs: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if self.sync not in TURSO_SYNC_MODES:
            raise UsageError(f"--turso-sync={self.sync!r} is not one of: {', '.join(TURSO_SYNC_MODES)}")
