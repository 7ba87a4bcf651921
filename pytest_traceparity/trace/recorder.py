"""Record what a Python program sends to its databases, with no change to its code.

Three capture points, all feeding one :class:`Recorder`:

* ``sqlite3``: ``sqlite3.connect`` returns a subclass of the connection class the caller
  asked for (so ``isinstance`` checks, aiosqlite and SQLAlchemy keep working);
* ``libsql``: its classes cannot be subclassed, so ``libsql.connect`` returns a proxy;
* SQLAlchemy: an event listener on every sync and async engine, for drivers the two
  proxies do not see (a connection already captured by a proxy is not recorded twice).

Transactions are recorded as SQLite saw them: the drivers begin transactions implicitly
(``isolation_level='DEFERRED'``), so a ``begin`` event is written whenever a call moved
the connection from autocommit into a transaction, and ``commit``/``rollback`` only when
one was open. Replay on an autocommit connection then reproduces the same boundaries.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import sqlite3
import struct
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .format import TraceHeader, TraceWriter
from .intercept_libsql import RecordingLibsqlConnection, _patched_libsql_connect
from .intercept_sqlalchemy import SQLAlchemyListener
from .intercept_sqlite3 import _patched_sqlite_connect
from .sink import ENV_START, Recorder, RedactionRule, Redactor, _Active, unique_label

__all__ = [
    "ENV_BASE",
    "ENV_DIR",
    "ENV_REDACT",
    "ENV_START",
    "Recorder",
    "RecordingLibsqlConnection",
    "RedactionRule",
    "Redactor",
    "install",
    "install_from_env",
    "recording",
    "uninstall",
    "unique_label",
]


# -- installation ------------------------------------------------------------------------
class _PostImportHook(importlib.abc.MetaPathFinder):
    """Runs a callback right after a module is imported (for libsql and SQLAlchemy)."""

    def __init__(self, callbacks: dict[str, Callable[[types.ModuleType], None]]) -> None:
        self.callbacks = callbacks
        self._busy: set[str] = set()

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in self.callbacks or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is None:
                for finder in sys.meta_path:
                    if finder is self or not hasattr(finder, "find_spec"):
                        continue
                    spec = finder.find_spec(fullname, path, target)
                    if spec is not None:
                        break
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None:
            return None
        loader, callback = spec.loader, self.callbacks[fullname]
        original_exec = loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            original_exec(module)
            callback(module)

        wrapped = types.SimpleNamespace(
            create_module=getattr(loader, "create_module", lambda s: None), exec_module=exec_module
        )
        spec.loader = wrapped  # type: ignore[assignment]
        return spec


class Installation:
    """Everything :func:`install` patched, so :func:`uninstall` can put it back."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.patched: list[tuple[Any, str, Any]] = []
        self.listener = SQLAlchemyListener()
        self.hook: _PostImportHook | None = None

    def patch(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        current = getattr(owner, name, None)
        if current is None or hasattr(current, "_tp_original"):
            return
        self.patched.append((owner, name, current))
        setattr(owner, name, make(current))


_installation: Installation | None = None


def install(recorder: Recorder, *, sqlite: bool = True, libsql: bool = True, sqlalchemy: bool = True) -> None:
    """Start recording every connection opened from now on into ``recorder``."""
    global _installation
    if _installation is not None:
        raise RuntimeError("a trace recorder is already installed in this process")
    inst = _installation = Installation(recorder)
    _Active.recorder = recorder
    if sqlite:
        inst.patch(sqlite3, "connect", _patched_sqlite_connect)
        inst.patch(sqlite3.dbapi2, "connect", _patched_sqlite_connect)
    callbacks: dict[str, Callable[[types.ModuleType], None]] = {}
    if libsql:

        def patch_libsql(module: types.ModuleType) -> None:
            inst.patch(module, "connect", _patched_libsql_connect)

        if "libsql" in sys.modules:
            patch_libsql(sys.modules["libsql"])
        else:
            callbacks["libsql"] = patch_libsql
    if sqlalchemy:

        def patch_sqlalchemy(module: types.ModuleType) -> None:
            inst.listener.install()

        if "sqlalchemy.engine" in sys.modules:
            inst.listener.install()
        else:
            callbacks["sqlalchemy.engine"] = patch_sqlalchemy
    if callbacks:
        inst.hook = _PostImportHook(callbacks)
        sys.meta_path.insert(0, inst.hook)


def uninstall() -> Recorder | None:
    """Stop recording (connections already open stop writing too); returns the recorder."""
    global _installation
    inst, _installation = _installation, None
    _Active.recorder = None
    if inst is None:
        return None
    for owner, name, original in reversed(inst.patched):
        setattr(owner, name, original)
    inst.listener.uninstall()
    if inst.hook is not None and inst.hook in sys.meta_path:
        sys.meta_path.remove(inst.hook)
    return inst.recorder


@contextlib.contextmanager
def recording(
    path: str | os.PathLike[str],
    *,
    source: dict[str, Any] | None = None,
    redact: Iterable[RedactionRule] = (),
    base_dir: str | None = None,
    sqlite: bool = True,
    libsql: bool = True,
    sqlalchemy: bool = True,
) -> Iterator[Recorder]:
    """Record every connection opened inside the block into the trace at ``path``."""
    writer = TraceWriter(path, TraceHeader(source=source or {}))
    recorder = Recorder(writer, redactor=Redactor(redact), base_dir=base_dir)
    install(recorder, sqlite=sqlite, libsql=libsql, sqlalchemy=sqlalchemy)
    try:
        yield recorder
    finally:
        uninstall()
        recorder.close()


# -- the child-process side of ``traceparity record`` ------------------------------------
ENV_DIR = "TRACEPARITY_RECORD_DIR"
ENV_BASE = "TRACEPARITY_RECORD_BASE"
ENV_REDACT = "TRACEPARITY_RECORD_REDACT"


def install_from_env() -> Recorder | None:
    """Called by the bootstrap ``sitecustomize``: record this process into a part file."""
    directory = os.environ.get(ENV_DIR)
    if not directory or _installation is not None:
        return None
    import atexit

    rules = [RedactionRule.parse(s) for s in os.environ.get(ENV_REDACT, "").split("\x1f") if s]
    # Events carry a system-wide monotonic stamp so the parts of a multi-process recording
    # merge in the order they happened; the merge strips it (no clock in the final trace).
    name = struct.pack(">QI", time.monotonic_ns(), os.getpid()).hex()
    path = Path(directory) / f"part-{name}.jsonl"
    writer = TraceWriter(path, TraceHeader(source={"pid": os.getpid()}))
    recorder = Recorder(writer, redactor=Redactor(rules), base_dir=os.environ.get(ENV_BASE), stamp=True)
    install(recorder)
    atexit.register(recorder.close)
    return recorder
