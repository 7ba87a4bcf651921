"""The interception points of redirect mode: ``sqlite3.connect`` and ``aiosqlite.connect``.

The same calls the trace recorder intercepts, for the same reason: everything else is
built on them. SQLAlchemy's ``sqlite://`` dialect calls ``sqlite3.dbapi2.connect`` and its
``sqlite+aiosqlite://`` dialect calls ``aiosqlite.connect`` on every new pool connection,
so engines are redirected without touching SQLAlchemy. The patches are installed once,
before the test modules are imported (so ``from sqlite3 import connect`` gets the patched
function too), and only route while a test is running on a backend; any other caller
(collection, other plugins, our own reference backend) gets the real function.
"""

from __future__ import annotations

import functools
import sqlite3
import sys
from collections.abc import Callable
from typing import Any

from ..backends.adbapi import AioConnection
from .router import ACTIVE, ItemRouter

# Callers that keep their own SQLite files (coverage data...): never redirected.
EXEMPT_MODULES = ("coverage", "pytest_cov", "_pytest", "pluggy")
_LIBRARIES = (
    "sqlite3",
    "aiosqlite",
    "sqlalchemy",
    "pytest_traceparity",
    "asyncio",
    "concurrent",
    "threading",
    "greenlet",
    "functools",
    "contextlib",
)


class _State:
    originals: list[tuple[Any, str, Any]] = []


def original_sqlite3_connect() -> Callable[..., Any]:
    current = sqlite3.connect
    return getattr(current, "_tp_redirect_original", current)


def activate(router: ItemRouter) -> None:
    ACTIVE.router = router


def deactivate() -> ItemRouter | None:
    router, ACTIVE.router = ACTIVE.router, None
    return router


def active() -> ItemRouter | None:
    return ACTIVE.router


def installed() -> bool:
    return bool(_State.originals)


def install() -> None:
    """Patch the connect functions (idempotent); they route only while a router is active."""
    if _State.originals:
        return
    _patch(sqlite3, "connect", _sqlite3_wrapper)
    _patch(sqlite3.dbapi2, "connect", _sqlite3_wrapper)
    try:
        import aiosqlite
        import aiosqlite.core
    except ImportError:  # pragma: no cover - aiosqlite is a dependency
        return
    _patch(aiosqlite, "connect", _aiosqlite_wrapper)
    _patch(aiosqlite.core, "connect", _aiosqlite_wrapper)


def uninstall() -> None:
    for owner, name, original in reversed(_State.originals):
        setattr(owner, name, original)
    _State.originals = []
    ACTIVE.router = None


def _patch(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    current = getattr(owner, name)
    if hasattr(current, "_tp_redirect_original"):
        return
    _State.originals.append((owner, name, current))
    setattr(owner, name, make(current))


def _route(database: Any) -> ItemRouter | None:
    router = ACTIVE.router
    if router is None or router.passthrough(database) or _exempt_caller():
        return None
    return router


def _exempt_caller() -> bool:
    frame: Any = sys._getframe(3)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        top = module.split(".", 1)[0]
        if top in EXEMPT_MODULES:
            return True
        if top not in _LIBRARIES:
            return False
        frame = frame.f_back
    return False


def _sqlite3_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def connect(database: Any, *args: Any, **kwargs: Any) -> Any:
        router = _route(database)
        if router is None:
            return original(database, *args, **kwargs)
        return router.connect_sqlite3(database, *args, **kwargs)

    connect._tp_redirect_original = original  # type: ignore[attr-defined]
    return connect


def _aiosqlite_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def connect(database: Any, *, iter_chunk_size: int = 64, loop: Any = None, **kwargs: Any) -> Any:
        router = _route(database)
        if router is None:
            return original(database, iter_chunk_size=iter_chunk_size, loop=loop, **kwargs)
        return AioConnection(lambda: router.connect_sqlite3(database, **kwargs), iter_chunk_size=iter_chunk_size)

    connect._tp_redirect_original = original  # type: ignore[attr-defined]
    return connect
