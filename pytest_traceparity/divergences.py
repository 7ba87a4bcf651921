"""The known-divergence registry: differences we know about, each with its reason.

Entries come from the package (facts about the built-in clients, e.g. libsql raising
``ValueError``) and from the project's ``pyproject.toml`` under
``[[tool.traceparity.known_divergences]]``::

    [[tool.traceparity.known_divergences]]
    backend = "libsql-*"              # glob on backend ids, or a list of them
    subjects = ["conformance::bind.int.*"]  # globs on case ids / test node ids / trace steps
    aspects = ["rows.storage_class"]  # globs on Difference.aspect; default: every aspect
    reason = "libsql 0.1.11 binds ints outside i32 as REAL"
    until = 2027-03-31                # optional: fails after this date so it gets re-checked
    reference_sqlite_below = "3.45.0" # optional: only while the stdlib SQLite is older than this
    reference_sqlalchemy_below = "2.1" # optional: only while the installed SQLAlchemy is older
    python_below = "3.11"             # optional: only on older Pythons (their sqlite3 module differs)

An entry whose subjects are exact ids is *strict*: if the subject stops diverging the
test fails, so the entry gets removed. A glob entry is a blanket rule; its use count is
shown in the report.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import re
import sqlite3
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .backends.errors import UsageError
from .compare import Difference

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# "[" is not a wildcard here: pytest node ids contain "[backend]".
_GLOB_CHARS = set("*?")


@dataclass(frozen=True)
class KnownDivergence:
    backend: str | tuple[str, ...]
    reason: str
    subjects: tuple[str, ...] = ("*",)
    aspects: tuple[str, ...] = ("*",)
    until: dt.date | None = None
    origin: str = "?"
    reference_sqlite_below: tuple[int, ...] | None = None
    reference_sqlalchemy_below: tuple[int, ...] | None = None
    python_below: tuple[int, ...] | None = None

    @property
    def backends(self) -> tuple[str, ...]:
        return (self.backend,) if isinstance(self.backend, str) else self.backend

    @property
    def strict(self) -> bool:
        return all(not (_GLOB_CHARS & set(s)) for s in self.subjects)

    def applies_to(self, backend: str, subject: str) -> bool:
        if self.reference_sqlite_below is not None and sqlite3.sqlite_version_info >= self.reference_sqlite_below:
            return False
        if self.reference_sqlalchemy_below is not None and _sqlalchemy_version() >= self.reference_sqlalchemy_below:
            return False
        if self.python_below is not None and sys.version_info[:3] >= self.python_below:
            return False
        return any(fnmatch.fnmatchcase(backend, b) for b in self.backends) and any(
            _match(subject, s) for s in self.subjects
        )

    def covers(self, aspect: str) -> bool:
        return any(fnmatch.fnmatchcase(aspect, a) for a in self.aspects)

    def expired(self, today: dt.date | None = None) -> bool:
        return self.until is not None and (today or dt.date.today()) > self.until


@functools.lru_cache(maxsize=1)
def _sqlalchemy_version() -> tuple[int, ...]:
    """Installed SQLAlchemy as numbers (the reference backend's behaviour moved between 2.0 and 2.1)."""
    from importlib import metadata

    try:
        text = metadata.version("sqlalchemy")
    except metadata.PackageNotFoundError:
        return (0,)
    return _version_tuple(text)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3]) or (0,)


def _match(subject: str, pattern: str) -> bool:
    """Exact ids match literally; ``*``/``?`` patterns glob (brackets stay literal)."""
    if subject == pattern:
        return True
    if not (_GLOB_CHARS & set(pattern)):
        return False
    return fnmatch.fnmatchcase(subject, pattern.replace("[", "[[]"))


@dataclass
class Verdict:
    """What to do with a subject's differences given the registry."""

    status: str  # "same", "known", "diverged", "fixed", "expired"
    differences: list[Difference] = field(default_factory=list)
    entries: list[KnownDivergence] = field(default_factory=list)
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status in ("same", "known")

    @property
    def reason(self) -> str:
        """One line per distinct registry reason (the report counts them line by line)."""
        return "\n".join(dict.fromkeys(e.reason for e in self.entries))


class DivergenceRegistry:
    def __init__(self, entries: Iterable[KnownDivergence] = ()) -> None:
        self.entries: list[KnownDivergence] = list(entries)
        self.used: dict[KnownDivergence, int] = {}

    def matching(self, backend: str, subject: str) -> list[KnownDivergence]:
        return [e for e in self.entries if e.applies_to(backend, subject)]

    def judge(self, backend: str, subject: str, differences: Sequence[Difference]) -> Verdict:
        entries = self.matching(backend, subject)
        expired = [e for e in entries if e.expired()]
        if expired:
            e = expired[0]
            return Verdict(
                "expired",
                list(differences),
                expired,
                f"known divergence for {backend} ({e.origin}) expired on {e.until}: re-check it, then "
                f"remove the entry or move 'until' forward. Reason was: {e.reason}",
            )
        if not differences:
            strict = [e for e in entries if e.strict]
            if strict:
                return Verdict(
                    "fixed",
                    [],
                    strict,
                    f"{subject} no longer diverges on {backend}; remove the known divergence "
                    f"({strict[0].origin}): {strict[0].reason}",
                )
            return Verdict("same")
        uncovered = [d for d in differences if not any(e.covers(d.aspect) for e in entries)]
        if uncovered:
            return Verdict("diverged", list(differences), entries, _describe(backend, subject, differences))
        used = [e for e in entries if any(e.covers(d.aspect) for d in differences)]
        for e in used:
            self.used[e] = self.used.get(e, 0) + 1
        return Verdict("known", list(differences), used, _describe(backend, subject, differences))


def _describe(backend: str, subject: str, differences: Sequence[Difference]) -> str:
    lines = [f"{subject} diverges on {backend} from the reference:"]
    lines.extend(f"  {d}" for d in differences)
    return "\n".join(lines)


def marker_decision(
    backend: str, args: Sequence[Any], kwargs: Mapping[str, Any], today: dt.date, *, where: str
) -> tuple[str, str] | None:
    """What ``@known_divergence(backend, reason, until=)`` means for one backend.

    ``("xfail", reason)`` on a matching backend, ``("error", message)`` for a malformed or
    expired marker, ``None`` when it does not concern this backend.
    """
    pattern = kwargs.get("backend", args[0] if args else None)
    reason = kwargs.get("reason", args[1] if len(args) > 1 else None)
    if not pattern or not reason:
        return "error", f"{where}: known_divergence needs backend= and reason="
    if not fnmatch.fnmatchcase(backend, str(pattern)):
        return None
    until = kwargs.get("until")
    if until is not None:
        try:
            until_date = until if isinstance(until, dt.date) else dt.date.fromisoformat(str(until))
        except ValueError:
            return "error", f"{where}: known_divergence until={until!r} is not a YYYY-MM-DD date"
        if today > until_date:
            return "error", (
                f"known divergence on {backend} expired on {until_date} ({reason}); re-check "
                "the behaviour, then remove the marker or move 'until' forward"
            )
    return "xfail", f"known divergence on {backend}: {reason}"


def parse_entries(raw: Any, origin: str) -> list[KnownDivergence]:
    """Validate ``known_divergences`` entries; errors name the file and entry index."""
    if not isinstance(raw, list):
        raise UsageError(f"{origin}: known_divergences must be an array of tables")
    entries = []
    for index, item in enumerate(raw):
        where = f"{origin}: known_divergences[{index}]"
        if not isinstance(item, dict):
            raise UsageError(f"{where} must be a table")
        unknown = set(item) - {
            "backend", "reason", "subjects", "aspects", "until",
            "reference_sqlite_below", "reference_sqlalchemy_below", "python_below",
        }
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {sorted(unknown)}")
        if not isinstance(item.get("reason"), str) or not item["reason"].strip():
            raise UsageError(f"{where}: 'reason' is required and must be a non-empty string")
        if "backend" not in item:
            raise UsageError(f"{where}: 'backend' is required (an id, a glob, or a list of them)")
        backends = _str_tuple(item["backend"], f"{where}.backend")
        for key in ("reference_sqlite_below", "reference_sqlalchemy_below", "python_below"):
            bound = item.get(key)
            if bound is not None and (not isinstance(bound, str) or not re.fullmatch(r"\d+(\.\d+)*", bound)):
                raise UsageError(f"{where}: {key} must be a version string like \"3.45.0\"")
        below = item.get("reference_sqlite_below")
        sa_below = item.get("reference_sqlalchemy_below")
        py_below = item.get("python_below")
        until = item.get("until")
        if isinstance(until, str):
            try:
                until = dt.date.fromisoformat(until)
            except ValueError:
                raise UsageError(f"{where}: until={until!r} is not a YYYY-MM-DD date") from None
        elif until is not None and not isinstance(until, dt.date):
            raise UsageError(f"{where}: until must be a YYYY-MM-DD date")
        entries.append(
            KnownDivergence(
                backend=backends[0] if len(backends) == 1 else backends,
                reason=item["reason"].strip(),
                subjects=_str_tuple(item.get("subjects", ["*"]), f"{where}.subjects"),
                aspects=_str_tuple(item.get("aspects", ["*"]), f"{where}.aspects"),
                until=until,
                origin=f"{origin} #{index}",
                reference_sqlite_below=_version_tuple(below) if below else None,
                reference_sqlalchemy_below=_version_tuple(sa_below) if sa_below else None,
                python_below=_version_tuple(py_below) if py_below else None,
            )
        )
    return entries


def _str_tuple(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{where} must be a non-empty list of strings")
    return tuple(value)


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc}); fix the file") from None


def builtin_entries() -> list[KnownDivergence]:
    """Divergences of the built-in clients that ship with the package."""
    text = resources.files(__package__).joinpath("known_divergences.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return parse_entries(data.get("known_divergences", []), "pytest_traceparity/known_divergences.toml")


def project_settings(rootdir: Path) -> tuple[dict[str, Any], Path | None]:
    """``[tool.traceparity]`` from the project's pyproject.toml (empty when absent)."""
    path = rootdir / "pyproject.toml"
    if not path.is_file():
        return {}, None
    tool = load_toml(path).get("tool", {}).get("traceparity", {})
    if not isinstance(tool, dict):
        raise UsageError(f"{path}: [tool.traceparity] must be a table")
    return tool, path


def load_registry(rootdir: Path) -> DivergenceRegistry:
    settings, path = project_settings(rootdir)
    entries = builtin_entries()
    if path is not None and "known_divergences" in settings:
        entries += parse_entries(settings["known_divergences"], str(path))
    return DivergenceRegistry(entries)
