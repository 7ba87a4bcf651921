"""Where one test's database connections go: its backend (and, when comparing, the reference).

Each distinct database file the test opens maps to one fresh database on the backend,
each ``:memory:`` (or ``""``) connection to a new private one, as replay does. The file
the code named is left as ``sqlite3.connect`` would leave it (an empty file), and watched:
if real SQLite writes to it, or writes any other database file in the test's directories,
something bypassed the redirect (a subprocess, a C extension with its own sqlite3 handle,
a ``connect`` imported before the plugin patched it) and the test fails saying so.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends.base import Backend, BackendContext, Connection, Database, safe_name
from ..backends.dbapi import SQLConnection, Sqlite3Connection
from ..divergences import DivergenceRegistry
from ..errors import RedirectError as RedirectError
from ..errors import TraceparityError
from .shadow import ShadowedConnection, StepLog, Verdict

SQLITE_HEADER = b"SQLite format 3\x00"
MAX_SCANNED = 2000
_OPTIONS = "timeout", "detect_types", "isolation_level", "check_same_thread", "factory", "cached_statements", "uri"


class _Active:
    """The router of the test running now (set by the pytest glue around each test)."""

    router: ItemRouter | None = None


ACTIVE = _Active()


@dataclass
class _Target:
    label: str
    primary: Database
    shadow: Database | None


@dataclass
class RouterSettings:
    backend: Backend
    make_context: Callable[[str], BackendContext]
    subject: str  # the test's node id (what the divergence registry matches)
    reference: Backend | None = None  # set when comparing (and this is not the reference)
    registry: DivergenceRegistry | None = None
    passthrough: tuple[Path, ...] = ()  # our own backends' databases live here; never redirected


class ItemRouter:
    """Routes one test's connections; thread-safe (aiosqlite and SQLAlchemy use worker threads)."""

    def __init__(self, settings: RouterSettings) -> None:
        self.settings = settings
        self.backend_id = settings.backend.id
        self.log: StepLog | None = None
        if settings.reference is not None and settings.reference.id != self.backend_id:
            self.log = StepLog(
                self.backend_id, settings.reference.id, settings.subject, settings.registry or DivergenceRegistry()
            )
        self._targets: dict[str, _Target] = {}
        self._all: list[_Target] = []
        self._conns: list[tuple[Sqlite3Connection, tuple[Any, bool] | None]] = []
        self._lock = threading.RLock()
        self._nconn = 0
        self._watched: dict[Path, dict[Path, tuple[int, int]]] = {}
        self._recursive: set[Path] = set()
        self.served_by = ""
        self.closed = False
        self.watch(Path.cwd())

    # -- what is routed -------------------------------------------------------------------
    def passthrough(self, database: Any) -> bool:
        """True for our own backends' files (the reference backend opens them with aiosqlite)."""
        text = _text(database)
        if text.startswith("file:"):
            text = urllib.parse.urlsplit(text).path
        if text in ("", ":memory:") or not self.settings.passthrough:
            return False
        real = Path(os.path.realpath(text))
        return any(real.is_relative_to(root) for root in self.settings.passthrough)

    def connect_sqlite3(self, database: Any, *args: Any, **kwargs: Any) -> Sqlite3Connection:
        """``sqlite3.connect(...)`` on this test's backend, with sqlite3's arguments."""
        options = dict(zip(_OPTIONS, args))
        options.update(kwargs)
        factory = options.get("factory")
        if factory not in (None, sqlite3.Connection) and not getattr(factory, "_tp_recording", False):
            raise sqlite3.NotSupportedError(
                f"sqlite3.connect({_text(database)!r}, factory={getattr(factory, '__name__', factory)}): a "
                f"sqlite3.Connection subclass needs a real SQLite handle, so it cannot be redirected to "
                f"{self.backend_id!r}. Run this test without --traceparity-redirect, or mark it "
                "@pytest.mark.traceparity_no_redirect"
            )
        if options.get("detect_types"):
            raise sqlite3.NotSupportedError(
                f"sqlite3.connect({_text(database)!r}, detect_types=...): converters need the declared column "
                f"types, which backend {self.backend_id!r} does not report through the redirect. Run this test "
                "without --traceparity-redirect, or mark it @pytest.mark.traceparity_no_redirect"
            )
        level = options.get("isolation_level", "")
        uri = bool(options.get("uri"))
        facade = Sqlite3Connection(self._connect(self._target(database, uri)), isolation_level=level)
        self._adopt(facade, (database, uri))
        return facade

    def fresh(self, label: str) -> Sqlite3Connection:
        """A connection to a new, private database (the ``dbapi``/``adbapi`` fixtures)."""
        facade = Sqlite3Connection(self._connect(self._new_target(label)))
        self._adopt(facade, None)
        return facade

    def _adopt(self, facade: Sqlite3Connection, opened_as: tuple[Any, bool] | None) -> None:
        facade.label = _text(opened_as[0]) if opened_as else facade.label
        with self._lock:
            self._conns.append((facade, opened_as))

    def reopen(self, facade: Sqlite3Connection, opened_as: tuple[Any, bool]) -> SQLConnection | None:
        """A pooled connection (a module-level engine) used by a later test follows that test's backend."""
        router = ACTIVE.router
        if router is None or router is self or router.closed:
            return None
        conn = router._connect(router._target(*opened_as))
        with router._lock:
            router._conns.append((facade, opened_as))
        return conn

    def _connect(self, target: _Target) -> SQLConnection:
        with self._lock:
            if self.closed:
                raise RedirectError(
                    f"{self.settings.subject} already finished on {self.backend_id!r}: a fixture with a wider scope "
                    "than 'function' opened databases across tests; under --traceparity-redirect each test runs "
                    "on its own backend, so make that fixture function-scoped"
                )
            self._nconn += 1
            number = self._nconn
        try:
            primary: Connection = target.primary.connect()
            if self.log is not None and target.shadow is not None:
                return ShadowedConnection(primary, target.shadow.connect(), self.log, number, target.label)
        except TraceparityError as exc:
            raise RedirectError(f"[{self.backend_id}] cannot connect to {target.label}: {exc}") from None
        return primary

    def _target(self, database: Any, uri: bool) -> _Target:
        text = _text(database)
        if uri and text.startswith("file:"):
            parts = urllib.parse.urlsplit(text)
            query = urllib.parse.parse_qs(parts.query)
            path = urllib.parse.unquote(parts.path)
            if query.get("mode") == ["memory"] or path in ("", ":memory:"):
                if query.get("cache") == ["shared"] and path:
                    return self._shared(f"memory:{path}", f"file:{path}?mode=memory&cache=shared")
                return self._new_target(":memory:")
            text = path
        if text in ("", ":memory:"):
            return self._new_target(":memory:" if text else "(temporary database)")
        real = Path(os.path.realpath(text))
        with self._lock:
            if str(real) in self._targets:
                return self._targets[str(real)]
            if not real.parent.is_dir():
                raise sqlite3.OperationalError("unable to open database file")
            self.watch(real.parent)
            seed = real.is_file() and real.stat().st_size > 0
            if not real.exists():
                try:
                    real.touch()  # sqlite3.connect leaves an empty file; code may check it exists
                except OSError:
                    raise sqlite3.OperationalError("unable to open database file") from None
            target = self._shared(str(real), _label(real))
            if seed:
                self._seed(real, target)
            return target

    def _shared(self, key: str, label: str) -> _Target:
        with self._lock:
            if key not in self._targets:
                self._targets[key] = self._new_target(label)
            return self._targets[key]

    def _new_target(self, label: str) -> _Target:
        s = self.settings
        name = f"{safe_name(s.subject.rsplit('::', 1)[-1], 24)}-{safe_name(Path(label).name, 16)}"
        try:
            primary = s.backend.create_database(s.make_context(name))
            shadow = None
            if self.log is not None and s.reference is not None:
                shadow = s.reference.create_database(s.make_context(f"{name}-ref"))
        except TraceparityError as exc:
            raise RedirectError(f"[{self.backend_id}] cannot create a database for {label}: {exc}") from None
        target = _Target(label, primary, shadow)
        with self._lock:
            self._all.append(target)
        if not self.served_by:
            try:
                self.served_by = primary.served_by
            except Exception as exc:  # the statements will fail with the real reason
                self.served_by = f"? ({str(exc)[:100]})"
        return target

    def _seed(self, path: Path, target: _Target) -> None:
        """A database file that already has content starts the backend database with a copy of it."""
        real_connect = getattr(sqlite3.connect, "_tp_redirect_original", sqlite3.connect)
        source = real_connect(f"file:{path}?mode=ro", uri=True)
        try:
            script = "\n".join(source.iterdump())
        except sqlite3.DatabaseError as exc:
            raise sqlite3.DatabaseError(f"{path}: {exc}") from None
        finally:
            source.close()
        for database in (target.primary, target.shadow):
            if database is None:
                continue
            conn = database.connect()
            try:
                conn.executescript(script)
            except TraceparityError as exc:
                raise RedirectError(
                    f"[{database.backend_id}] could not copy the existing database {path} into the backend: {exc}"
                ) from None
            finally:
                conn.close()

    # -- what escaped ----------------------------------------------------------------------
    def watch(self, directory: Path, *, recursive: bool = False) -> None:
        """Remember the SQLite files in ``directory`` now; any written later by real SQLite escaped."""
        directory = Path(os.path.realpath(directory))
        with self._lock:
            if directory in self._watched and (not recursive or directory in self._recursive):
                return
            if recursive:
                self._recursive.add(directory)
            self._watched[directory] = self._scan(directory)

    def _scan(self, directory: Path) -> dict[Path, tuple[int, int]]:
        found: dict[Path, tuple[int, int]] = {}
        walker: Iterator[Path]
        if directory in self._recursive:
            walker = (Path(root) / name for root, _, names in os.walk(directory) for name in names)
        else:
            walker = (p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else iter(())
        for count, path in enumerate(walker):
            if count >= MAX_SCANNED:
                break
            try:
                st = path.stat()
            except OSError:
                continue
            found[path] = (st.st_mtime_ns, st.st_size)
        return found

    def escapes(self) -> list[str]:
        """Database files real SQLite wrote during the test (each a statement that never reached the backend)."""
        passthrough = self.settings.passthrough
        out = []
        with self._lock:
            watched = list(self._watched.items())
        for directory, before in watched:
            for path, stamp in self._scan(directory).items():
                if before.get(path) == stamp or any(path.is_relative_to(p) for p in passthrough):
                    continue
                if _is_sqlite(path):
                    out.append(str(path))
        return sorted(set(out))

    def escape_message(self, paths: list[str]) -> str:
        shown = "\n".join(f"  {p}" for p in paths[:10])
        return (
            f"[{self.backend_id}] real SQLite wrote database file(s) during this test, outside the redirect:\n{shown}\n"
            f"Those statements ran on SQLite, not on {self.backend_id!r}: something opened the file without going "
            "through sqlite3.connect / aiosqlite.connect in this process (a subprocess, a C extension with its own "
            "sqlite3 handle, or a connect function bound before the plugin loaded). Redirect cannot follow it; "
            "run this test without --traceparity-redirect, or mark it @pytest.mark.traceparity_no_redirect"
        )

    # -- the end ---------------------------------------------------------------------------
    def verdict(self) -> Verdict | None:
        return self.log.verdict() if self.log is not None else None

    def close(self) -> None:
        """Close every connection the test left open, then release the databases."""
        with self._lock:
            self.closed = True
            conns, self._conns = self._conns, []
            targets, self._all = self._all, []
            self._targets.clear()
        for conn, opened_as in conns:
            with contextlib.suppress(Exception):  # a connection the test broke must not hide the others
                conn.close()
            if opened_as is not None:
                conn.reopen = functools.partial(self.reopen, conn, opened_as)
            conn.closed_because = (  # sqlite3's own words first: SQLAlchemy's pool treats them as a disconnect
                f"Cannot operate on a closed database. This connection was opened by {self.settings.subject} on "
                f"backend {self.backend_id!r}, which has finished; under --traceparity-redirect a connection follows "
                "the test that uses it, and this use is outside any redirected test (in a wider-scoped fixture's "
                "setup or teardown?): make that fixture function-scoped"
            )
        for target in targets:
            for database in (target.primary, target.shadow):
                if database is not None:
                    with contextlib.suppress(Exception):  # best effort, like process exit
                        database.close()


def _text(database: Any) -> str:
    return os.fsdecode(database) if isinstance(database, (bytes, os.PathLike)) else str(database)


def _label(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path.name
    return path.name if rel.startswith("..") else rel


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(16) == SQLITE_HEADER
    except OSError:
        return False
