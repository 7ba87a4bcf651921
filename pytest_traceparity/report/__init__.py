"""Parity reports: one record per (test, backend), judged into root causes and a verdict per backend.

:mod:`.model` (data, JSON), :mod:`.causes` (root causes, readiness), :mod:`.terminal`,
:mod:`.html`, :mod:`.markdown` (renderings), :mod:`.merge` (several runs), ``schema.json``.
"""

from __future__ import annotations

from .model import ItemRecord, ParityReport

__all__ = ["ItemRecord", "ParityReport"]
