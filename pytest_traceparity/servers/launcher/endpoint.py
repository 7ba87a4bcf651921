"""Where the ``sqld-http`` backend connects (:class:`SqldEndpoint`), what the user asked
for (:class:`SqldConfig`) and the handle that stops what the harness started."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import threading
import urllib.error
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ...http import request
from ...secret import Secret, as_secret, redact
from .net import ResetRefused, SqldUnavailable

DEFAULT_IMAGE = "ghcr.io/tursodatabase/libsql-server:latest"


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
            return request(method, url, token=self.auth_token, body=body)
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

    def __init__(
        self,
        endpoint: SqldEndpoint,
        stopper: Callable[[], None] | None = None,
        *,
        log_path: Path | None = None,
        pid: int | None = None,
    ) -> None:
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
