"""Goldens: one reference result per trace, schema fingerprints and content digests."""

from __future__ import annotations

from .fingerprint import diff_schemas, fingerprint, schema, snapshot
from .store import GoldenError, GoldenExtension, golden_path_for

__all__ = ["GoldenError", "GoldenExtension", "diff_schemas", "fingerprint", "golden_path_for", "schema", "snapshot"]
