"""A protocol-faithful sqld stand-in: Hrana 2/3 over HTTP (JSON) on SQLite in WAL mode.

Always labelled as the stand-in (``GET /version`` says ``traceparity-standin``), so a
result it produced is never mistaken for real sqld.
"""

from __future__ import annotations

from .database import Database
from .server import STANDIN_VERSION, StandinServer, version_string
from .wire import Request, Response

__all__ = [
    "STANDIN_VERSION",
    "Database",
    "Request",
    "Response",
    "StandinServer",
    "serve_main",
    "version_string",
]


def serve_main(argv: list[str] | None = None) -> int:
    """``traceparity serve`` / ``python -m pytest_traceparity.servers.standin``."""
    from .__main__ import serve_main as _serve_main

    return _serve_main(argv)
