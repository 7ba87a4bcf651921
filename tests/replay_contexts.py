"""Fresh database contexts for tests that drive the replayer or minimizer directly (no harness)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

from pytest_traceparity.backends.base import BackendContext


def contexts(root: Path) -> Callable[[str], BackendContext]:
    """A context factory whose every database gets its own new directory under ``root``."""
    counter = itertools.count()

    def make(name: str) -> BackendContext:
        path = root / f"ctx-{next(counter)}"
        path.mkdir(parents=True)
        return BackendContext(workdir=path, name="db")

    return make
