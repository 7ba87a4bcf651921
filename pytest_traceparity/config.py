"""Harness settings shared by the pytest plugin and the CLI (no pytest import here)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import UsageError
from .secret import Secret, as_secret, reveal

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
    auth_token: str | Secret | None = None,
    allow_reset: bool = False,
) -> SqldConfig:
    """Validated launcher settings from user options (one line per mistake, naming the option)."""
    from .servers.launcher import SqldConfig

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


TURSO_SYNC_MODES = REPLICA_SYNC_MODES


@dataclass
class TursoSettings:
    """``turso-sync``: where ``tursodb`` is (``--turso-bin``) and when push/pull happen (``--turso-sync``)."""

    bin: str | None = None
    sync: str = "auto"
    search_dirs: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if self.sync not in TURSO_SYNC_MODES:
            raise UsageError(f"--turso-sync={self.sync!r} is not one of: {', '.join(TURSO_SYNC_MODES)}")


_TOKEN_KEYS = ("authToken", "auth_token", "jwt")


def split_token(url: str) -> tuple[str, Secret | None]:
    """Move a token out of a URL (``?authToken=...`` or ``user:TOKEN@``) so it is never printed.

    libsql URLs may carry their token inline; the harness passes it as ``auth_token`` instead
    and every label, error and report shows the URL without it.
    """
    parts = urlsplit(url)
    token = None
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _TOKEN_KEYS:
            token = token or value
        else:
            query.append((key, value))
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        if ":" in userinfo:
            token = token or userinfo.split(":", 1)[1] or None
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), parts.fragment)), as_secret(token)


def redact(text: str, *secrets: str | Secret | None) -> str:
    """Remove every secret from ``text`` before it reaches output or a report."""
    for secret in secrets:
        plain = reveal(secret)
        if plain:
            text = text.replace(plain, "***")
    return text
