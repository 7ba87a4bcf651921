"""How bad a difference is, on one documented scale, so the worst one is read first.

Most severe first: ``data`` (rows, values, storage classes, final content) >
``error-lost`` (the reference raises, the backend does not) > ``error-new`` (the backend
raises, the reference does not) > ``error-class`` (both raise, differently) > ``metadata``
(rowcount, lastrowid, description) > ``schema-text`` (sqlite_master.sql text with equal
structure) > ``environment`` (SQLite / Python / SQLAlchemy version differences).

An unattributed difference gets the severity of its aspect; a rule states its own. A
project re-ranks in ``[tool.traceparity.severity]``: keys are rule ids or aspect globs,
values a severity (``"rowcount.dml" = "data"`` for a team using rowcount for optimistic locking).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from ..errors import UsageError

SCALE = ("data", "error-lost", "error-new", "error-class", "metadata", "schema-text", "environment")
RANK = {name: index for index, name in enumerate(SCALE)}

_BY_ASPECT = (
    ("rows.*", "data"),
    ("content", "data"),
    ("expect.rows", "data"),
    ("error.missing", "error-lost"),
    ("error.unexpected", "error-new"),
    ("error.*", "error-class"),
    ("expect.error", "error-class"),
    ("expect.dbapi_class", "error-class"),
    ("rowcount.*", "metadata"),
    ("lastrowid.*", "metadata"),
    ("columns", "metadata"),
    ("expect.*", "metadata"),
)


def aspect_severity(aspect: str, relation: str | None = None) -> str:
    """The default severity of a difference nobody explained."""
    if aspect == "schema":
        return "schema-text" if relation == "text-spacing" else "data"
    for pattern, severity in _BY_ASPECT:
        if fnmatch.fnmatchcase(aspect, pattern):
            return severity
    return "data"  # an aspect we do not know yet is treated as the worst case


def check_severity(value: Any, where: str) -> str:
    if value not in RANK:
        raise UsageError(f"{where}: severity must be one of {', '.join(SCALE)}, got {value!r}")
    return str(value)


def parse_overrides(raw: Any, origin: str) -> dict[str, str]:
    """``[tool.traceparity.severity]``: rule id or aspect glob -> severity."""
    if not isinstance(raw, Mapping):
        raise UsageError(f'{origin}: [tool.traceparity.severity] must be a table of "aspect-or-rule" = "severity"')
    return {str(k): check_severity(v, f"{origin}: severity.{k}") for k, v in raw.items()}


def overridden(overrides: Mapping[str, str], rule_id: str | None, aspect: str, default: str) -> str:
    """Project re-ranking: a rule id beats an aspect glob, which beats the default."""
    if not overrides:
        return default
    if rule_id is not None and rule_id in overrides:
        return overrides[rule_id]
    for pattern, severity in overrides.items():
        if fnmatch.fnmatchcase(aspect, pattern):
            return severity
    return default
