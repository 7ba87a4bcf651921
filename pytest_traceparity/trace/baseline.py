"""One database file from recorded traces: what a workload leaves behind on a backend.

``fixtures/baseline.sqlite3`` is this, built on the reference backend from the committed
traces; building it again on another backend and running ``traceparity diff
fixtures/baseline.sqlite3 OTHER.db`` checks a migration's end state, schema and rows.
The traces' file databases all go into one file (their tables do not overlap); other
databases a trace opens get scratch directories and are dropped.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..backends.base import Backend, BackendContext
from .format import TraceReader
from .replayer import Replayer


def replay_into_one_database(traces: Sequence[Path], backend: Backend, target: Path) -> None:
    """Replay every trace on ``backend`` into one database, written atomically to ``target``.

    The backend must keep its data in a local file (``ctx.workdir``); the file is copied
    with ``VACUUM INTO`` so the result does not depend on page layout or WAL state.
    """
    with tempfile.TemporaryDirectory(prefix="traceparity-baseline-") as work:
        shared = BackendContext(workdir=Path(work), name="baseline")
        counter = itertools.count()
        for trace in traces:
            files = {e.db for e in TraceReader(trace) if e.op == "open" and e.db and e.target != ":memory:"}

            def make(name: str, files: set[str] = files) -> BackendContext:
                if name.rsplit("-", 1)[-1] in files:
                    return shared
                scratch = Path(work) / f"scratch-{next(counter)}"
                scratch.mkdir()
                return BackendContext(workdir=scratch, name="scratch")

            with Replayer(backend, make, trace.stem) as replayer:
                for _ in replayer.run(TraceReader(trace)):
                    pass
                replayer.final_state()
        databases = sorted(p for p in Path(work).iterdir() if p.is_file() and _is_sqlite(p))
        if len(databases) != 1:
            names = ", ".join(p.name for p in databases) or "none"
            raise ValueError(f"{backend.id}: expected one database file in the shared directory, found {names}")
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(databases[0])
        try:
            conn.execute("VACUUM INTO ?", (str(tmp),))
        finally:
            conn.close()
        os.replace(tmp, target)


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(16) == b"SQLite format 3\x00"
