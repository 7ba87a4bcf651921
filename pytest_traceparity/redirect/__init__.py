"""Run a team's unchanged suite on every backend (``--traceparity-redirect``, ``--traceparity-compare``).

:mod:`.patches` intercepts ``sqlite3.connect`` / ``aiosqlite.connect`` (and so SQLAlchemy's
sqlite engines), :mod:`.router` maps each database a test opens to a fresh database on
its backend and notices what escaped, :mod:`.shadow` compares every statement with the
reference backend. None of them imports pytest; :mod:`pytest_traceparity.pytest_glue.redirect` wires them in.
"""

from __future__ import annotations

from .router import ItemRouter, RedirectError, RouterSettings
from .shadow import ShadowedConnection, StepLog, Verdict

__all__ = ["ItemRouter", "RedirectError", "RouterSettings", "ShadowedConnection", "StepLog", "Verdict"]
