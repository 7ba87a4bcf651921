"""Known divergences as root-cause rules: model, matching, severity, staleness.

Rules ship with the package (``pytest_traceparity/known_divergences.toml``: facts about
the built-in clients; ``known_divergences_turso.toml``: Turso's engine, its sync client and
SQLAlchemy over libsql) and come from the project's ``pyproject.toml``
(``[[tool.traceparity.rules]]``, same format; the old ``[[tool.traceparity.known_divergences]]``
entries still load). ``[tool.traceparity.severity]`` re-ranks. See :mod:`.rules` for the format,
:mod:`.registry` for precedence and :mod:`.severity` for the scale.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .registry import (
    Attribution,
    DivergenceRegistry,
    Verdict,
    describe,
    most_severe_first,
    reason_lines,
    root_causes,
    step_rank,
    summarize,
)
from .rules import Rule, marker_decision, parse_entries, parse_rules
from .severity import SCALE, aspect_severity, parse_overrides

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "SCALE",
    "Attribution",
    "DivergenceRegistry",
    "Rule",
    "Verdict",
    "aspect_severity",
    "builtin_entries",
    "describe",
    "load_registry",
    "load_toml",
    "marker_decision",
    "most_severe_first",
    "parse_entries",
    "parse_rules",
    "project_settings",
    "reason_lines",
    "root_causes",
    "step_rank",
    "summarize",
]

BUILTIN = "pytest_traceparity/known_divergences.toml"
# Shipped rule files, loaded in this order (file order is the last precedence tie-breaker).
BUILTIN_FILES = ("known_divergences.toml", "known_divergences_turso.toml")


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
            return data
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc}); fix the file") from None


def builtin_entries() -> list[Rule]:
    """Rules about the built-in clients that ship with the package (ids are unique across the files)."""
    rules: list[Rule] = []
    for name in BUILTIN_FILES:
        text = resources.files("pytest_traceparity").joinpath(name).read_text(encoding="utf-8")
        origin = f"pytest_traceparity/{name}"
        found = parse_rules(tomllib.loads(text).get("rule", []), origin, start=len(rules))
        clash = {r.id for r in rules} & {r.id for r in found}
        if clash:
            raise UsageError(f"{origin}: rule id(s) {sorted(clash)} already defined in another shipped file")
        rules += found
    return rules


def project_settings(rootdir: Path) -> tuple[dict[str, Any], Path | None]:
    """``[tool.traceparity]`` from the project's pyproject.toml (empty when absent)."""
    path = rootdir / "pyproject.toml"
    if not path.is_file():
        return {}, None
    tool = load_toml(path).get("tool", {}).get("traceparity", {})
    if not isinstance(tool, dict):
        raise UsageError(f"{path}: [tool.traceparity] must be a table")
    return tool, path


def project_rules(settings: dict[str, Any], path: Path) -> list[Rule]:
    rules = parse_rules(settings.get("rules", []), str(path), project=True)
    legacy = parse_entries(settings.get("known_divergences", []), str(path), start=len(rules))
    ids = {r.id for r in rules}
    for rule in legacy:
        if rule.id in ids:  # pragma: no cover - legacy ids contain '#', rule ids cannot
            raise UsageError(f"{path}: rule id {rule.id!r} defined twice")
    return rules + legacy


def load_registry(rootdir: Path) -> DivergenceRegistry:
    settings, path = project_settings(rootdir)
    entries = builtin_entries()
    overrides: dict[str, str] = {}
    if path is not None:
        entries += project_rules(settings, path)
        if "severity" in settings:
            overrides = parse_overrides(settings["severity"], str(path))
    return DivergenceRegistry(entries, overrides)
