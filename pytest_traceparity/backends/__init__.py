"""Backends: one module each, all registered through the public hook (see ``builtin``)."""

from __future__ import annotations

from ..errors import BackendUnavailable, DatabaseError, UsageError
from ..values import Result
from .base import Backend, BackendContext, Connection, Database

__all__ = [
    "Backend",
    "BackendContext",
    "BackendUnavailable",
    "Connection",
    "Database",
    "DatabaseError",
    "Result",
    "UsageError",
]
