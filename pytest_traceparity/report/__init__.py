"""Parity reports: one record per (test, backend), rendered for terminal, JSON, HTML, GitHub."""

from __future__ import annotations

from .model import ItemRecord, ParityReport

__all__ = ["ItemRecord", "ParityReport"]
