"""The interface every backend implements, built-in or third-party.

A backend knows how to make a *fresh database* (a file, a namespace on a server, a
replica of a new primary) and how to open connections to it. Connections speak one
small, synchronous API; the async twin (:mod:`pytest_traceparity.backends.aio`) wraps it.
Every driver error leaves a connection as a :class:`DatabaseError` with a canonical kind.
"""

from __future__ import annotations

import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from ..errors import BackendUnavailable, DatabaseError, TraceparityError, no_sync_error, wrap_error
from ..secret import as_secret
from ..values import Params as Params  # re-exported: backends import it from here
from ..values import Result, plain
from .aio import AsyncConnection, ThreadedAsyncConnection
from .endpoint import SqldEndpoint

T = TypeVar("T")

# Capability flags a backend may declare; tests and cases can require them.
CAP_NAMED_PARAMS = "named_params"
CAP_SYNC = "sync"
CAP_REMOTE = "remote"
CAP_MULTI_CONNECTION = "multi_connection"
CAP_NATIVE_ASYNC = "native_async"
CAP_FILE = "file"


class Services(Protocol):
    """Shared resources a backend may need; started lazily, owned by the harness."""

    def sqld(self) -> SqldEndpoint: ...


class NoServices:
    """Services for contexts that have none (a backend asking gets a clear error)."""

    def sqld(self) -> SqldEndpoint:
        raise BackendUnavailable(
            "this backend needs an sqld server but none is configured here; "
            "run it under pytest (the plugin starts one) or pass --sqld-url"
        )


@dataclass
class BackendContext:
    """Where and how to create one fresh database."""

    workdir: Path
    name: str = "db"
    options: Mapping[str, Any] = field(default_factory=dict)
    services: Services = field(default_factory=NoServices)

    def __post_init__(self) -> None:
        # Any ``*token*`` option is held as a Secret: tracebacks print this mapping.
        if any("token" in key and isinstance(value, str) for key, value in self.options.items()):
            self.options = {
                key: as_secret(value) if "token" in key and isinstance(value, str) else value
                for key, value in self.options.items()
            }


def safe_name(text: str, limit: int = 48) -> str:
    """A name usable as a file stem and a namespace (lowercase, [a-z0-9-])."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (cleaned or "db")[:limit].strip("-") or "db"


class Connection(ABC):
    """One connection to a database on some backend.

    Autocommit by default: a statement outside ``begin()``/``commit()`` commits on its
    own, exactly like SQLite with no transaction open. Subclasses implement the
    ``_``-prefixed methods; the public ones normalize values and errors.
    """

    backend_id: str = "?"

    def execute(self, sql: str, params: Params = ()) -> Result:
        # try/except rather than ``with self._errors(sql)``: this is every replayed step's path
        try:
            return self._normalized(self._execute(sql, params))
        except TraceparityError:
            raise
        except Exception as exc:
            raise wrap_error(exc, backend=self.backend_id, sql=sql) from exc

    def stream(self, sql: str, size: int = 512) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of a read, in chunks of about ``size``: a snapshot never holds a whole table.

        This default reads everything at once; clients with a streaming cursor override it.
        """
        yield self.execute(sql).rows

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> Result:
        batch = list(seq_of_params)
        with self._errors(sql):
            return self._normalized(self._executemany(sql, batch))

    def executescript(self, script: str) -> None:
        with self._errors(script):
            self._executescript(script)

    def begin(self, mode: str = "DEFERRED") -> None:
        if mode.upper() not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"begin mode must be DEFERRED, IMMEDIATE or EXCLUSIVE, not {mode!r}")
        self.execute(f"BEGIN {mode.upper()}")

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        self.execute("ROLLBACK")

    @contextlib.contextmanager
    def transaction(self, mode: str = "DEFERRED") -> Iterator[Connection]:
        """``BEGIN`` ... ``COMMIT``, or ``ROLLBACK`` when the block raises."""
        self.begin(mode)
        try:
            yield self
        except BaseException:
            with contextlib.suppress(DatabaseError):
                self.rollback()
            raise
        self.commit()

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open on this connection (autocommit is off)."""
        with self._errors(None):
            return self._in_transaction()

    def sync(self) -> int | None:
        """Pull from the primary (replica backends); others have nothing to sync."""
        raise no_sync_error(self.backend_id)

    def close(self) -> None:
        with self._errors(None):
            self._close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- for subclasses -------------------------------------------------------------
    @abstractmethod
    def _execute(self, sql: str, params: Params) -> Result: ...

    def _executemany(self, sql: str, batch: list[Params]) -> Result:
        total = 0
        last: Result | None = None
        for params in batch:
            last = self._execute(sql, params)
            total += max(last.rowcount, 0)
        return Result(rowcount=total, lastrowid=last.lastrowid if last else None)

    @abstractmethod
    def _executescript(self, script: str) -> None: ...

    @abstractmethod
    def _in_transaction(self) -> bool: ...

    @abstractmethod
    def _close(self) -> None: ...

    @contextlib.contextmanager
    def _errors(self, sql: str | None) -> Iterator[None]:
        try:
            yield
        except TraceparityError:
            raise
        except Exception as exc:
            raise wrap_error(exc, backend=self.backend_id, sql=sql) from exc

    @staticmethod
    def _normalized(result: Result) -> Result:
        rows = result.rows
        if set(map(type, rows)) <= _TUPLE and set(map(type, chain.from_iterable(rows))) <= _PLAIN_TYPES:
            return result  # already plain tuples (the usual case): nothing to copy
        result.rows = [tuple(plain(v) for v in row) for row in rows]
        return result


_TUPLE = frozenset({tuple})
_PLAIN_TYPES = frozenset({type(None), int, float, str, bytes})


class Database(ABC):
    """A fresh database on one backend; can hand out several connections to it."""

    backend_id: str = "?"

    @property
    @abstractmethod
    def served_by(self) -> str:
        """What actually answers queries, e.g. ``sqlite 3.45.1 (file)`` or ``stand-in 0.1``."""

    @abstractmethod
    def connect(self) -> Connection: ...

    def connect_async(self) -> AsyncConnection:
        """An async connection (``adb``); the default drives :meth:`connect` on a worker thread."""
        return ThreadedAsyncConnection(self.connect, self.backend_id)

    def info(self) -> dict[str, Any]:
        """Per-test facts worth reporting (replication lag, server label...)."""
        return {"served_by": self.served_by}

    def close(self) -> None:  # noqa: B027 - most backends have nothing to tear down
        """Release what :meth:`Backend.create_database` acquired."""


class Backend(ABC):
    """A way of running SQL that must behave like the reference.

    Register subclasses through the ``pytest_traceparity_register_backends`` hook.
    """

    id: ClassVar[str]
    description: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def unavailable_reason(self) -> str | None:
        """Why this backend cannot run in this environment (``None`` when it can)."""
        return None

    @abstractmethod
    def create_database(self, ctx: BackendContext) -> Database: ...

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def run_steps(self, steps: Callable[[], T]) -> T:
        """Run ``steps`` (a block of replayed statements, back to back) and return what it returns.

        The default just calls it. A backend whose sync connections enter an event loop for every call
        may run the whole block inside one loop entry instead (see ``sqlalchemy-sqlite``).
        """
        return steps()
