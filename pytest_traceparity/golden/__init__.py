"""Goldens: one reference result per trace, schema fingerprints and content digests."""

from __future__ import annotations

from ..fingerprint import diff_schemas, fingerprint, schema, snapshot
from .store import GoldenError, golden_path_for


def __getattr__(name: str) -> object:
    # Lazy: the syrupy extension imports pytest, which core users of this package must not pay for.
    if name == "GoldenExtension":
        from .extension import GoldenExtension

        return GoldenExtension
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GoldenError", "GoldenExtension", "diff_schemas", "fingerprint", "golden_path_for", "schema", "snapshot"]
