"""The syrupy extension for goldens, kept apart from :mod:`.store` because syrupy imports pytest."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from . import store


class GoldenExtension(SingleFileSnapshotExtension):
    """syrupy storage for goldens: text JSONL under ``fixtures/golden/``, atomic, write-if-changed.

    Trace replays share its atomic write (:func:`.store.commit`); a user's own test can also
    ``snapshot.use_extension(GoldenExtension)`` for a golden-like JSONL file.
    """

    _write_mode = WriteMode.TEXT
    file_extension = "golden.jsonl"

    @classmethod
    def write_snapshot_collection(cls, *, snapshot_collection: Any, name_order: Any = None) -> None:
        filepath = Path(snapshot_collection.location)
        data = next(iter(snapshot_collection)).data
        if not isinstance(data, str):
            raise TypeError(f"golden data must be text, got {type(data).__name__}")
        with cls.staging(filepath) as fh:
            fh.write(data)

    @classmethod
    @contextlib.contextmanager
    def staging(cls, target: Path) -> Iterator[IO[str]]:
        """Write to a temporary file beside ``target``; on success replace it if it changed."""
        with store.staging(target) as fh:
            yield fh
