"""Where a statement came from: the user's ``file:line``, named in comparison reports.

Async facades run statements on a worker thread, whose stack holds no user code; they
capture the site on the calling thread and lend it to the worker (:func:`call_site_as`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import sysconfig
import threading
from collections.abc import Iterator
from typing import Any

_SITE = threading.local()
_LIBRARY_DIRS = (
    *(
        os.path.realpath(p) + os.sep
        for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    ),
    os.path.realpath(os.path.dirname(os.path.dirname(__file__))) + os.sep,
)


@functools.lru_cache(maxsize=1024)
def _user_file(filename: str) -> str | None:
    real = os.path.realpath(filename)
    if filename.startswith("<") or real.startswith(_LIBRARY_DIRS):
        return None
    rel = os.path.relpath(real)
    return real if rel.startswith("..") else rel


def user_call_site() -> str:
    """``file:line`` of the innermost caller outside the stdlib, site-packages and this package."""
    frame: Any = sys._getframe(1)
    while frame is not None:
        name = _user_file(frame.f_code.co_filename)
        if name is not None:
            return f"{name}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


def call_site() -> str:
    """The call site set by an async facade for this worker thread, else this thread's own."""
    return getattr(_SITE, "where", "") or user_call_site()


@contextlib.contextmanager
def call_site_as(where: str) -> Iterator[None]:
    previous = getattr(_SITE, "where", "")
    _SITE.where = where
    try:
        yield
    finally:
        _SITE.where = previous
