"""pytest-traceparity: prove every SQLite/libSQL backend behaves like the reference."""

from __future__ import annotations

__version__ = "0.1.0"
