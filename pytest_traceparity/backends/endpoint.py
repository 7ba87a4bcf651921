"""What a server backend needs from the sqld the harness started: a URL, a label, fresh databases.

The harness's services layer starts the server (:mod:`pytest_traceparity.servers.launcher`)
and hands the backend an object with this shape through
:attr:`~pytest_traceparity.backends.base.BackendContext.services`; backends never start or
import servers themselves, so a third-party backend can be given any server the same way.
"""

from __future__ import annotations

from typing import Protocol

from ..secret import Secret


class SqldEndpoint(Protocol):
    """A running sqld (or the stand-in) that can make and drop per-test databases."""

    @property
    def url(self) -> str: ...

    @property
    def label(self) -> str:
        """What serves it, e.g. ``sqld 0.24.33 (binary)`` or ``stand-in 0.1 (traceparity)``."""

    @property
    def auth_token(self) -> Secret | None: ...

    @property
    def supports_namespaces(self) -> bool: ...

    def create_database(self, name: str) -> str:
        """A fresh, empty database; returns the URL the client connects to."""

    def drop_database(self, name: str) -> None: ...


def http_url(url: str) -> str:
    """The HTTP(S) base a libsql client really talks to: ``libsql://HOST`` means ``https://HOST``.

    The one place this rule lives: the replica's primary and ``--sqld-url`` both accept it.
    """
    url = url.rstrip("/")
    if url.startswith("libsql://"):
        return "https://" + url[len("libsql://") :]
    return url
