"""Shared resources a test session needs (an sqld server, tursodb sync servers), started lazily, stopped once.

This is the layer that starts servers; backends only receive what it started (an endpoint through
:attr:`BackendContext.services`, a server host through ``configure``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .backends.base import Backend, BackendContext, safe_name
from .backends.turso_sync import SyncServerHost, TursoSyncBackend
from .config import ReplicaSettings, TursoSettings
from .servers.tursodb import TursodbHost

if TYPE_CHECKING:
    from .servers.launcher import SqldConfig, SqldEndpoint

T = TypeVar("T")


def configure_backends(backends: Iterable[Backend], host: SyncServerHost, sync: str = "auto") -> None:
    """Give the backends that need a server of their own (``turso-sync``) the host that starts them."""
    for backend in backends:
        if isinstance(backend, TursoSyncBackend):
            backend.configure(host, sync)


class HarnessServices:
    """Owns the sqld endpoint for one process (one pytest worker or one CLI run)."""

    def __init__(
        self, sqld: SqldConfig, replica: ReplicaSettings, workdir: Path, turso: TursoSettings | None = None
    ) -> None:
        self.sqld_settings = sqld
        self.replica_settings = replica
        self.turso_settings = turso or TursoSettings()
        self.workdir = workdir
        self.tursodb = TursodbHost(self.turso_settings.bin, self.turso_settings.search_dirs, workdir / "tursodb")
        self._shared: dict[str, Any] = {}
        self._contexts = itertools.count()
        self._handle: Any = None
        self._failure: str | None = None  # a server that could not start is not retried per test

    def configure_backends(self, backends: Iterable[Backend]) -> None:
        """This run's tursodb host and ``--turso-sync`` mode, for the backends that use them."""
        configure_backends(backends, self.tursodb, self.turso_settings.sync)

    def new_context(self, name: str) -> BackendContext:
        """A fresh private directory and unique name for one database, with the run's settings.

        The one factory for pytest and the CLI alike, so both hand backends the same options
        (sync mode, sync URL and its token, offline mode, turso-sync mode).
        """
        unique = f"{safe_name(name, 40)}-{next(self._contexts)}"
        workdir = self.workdir / unique
        workdir.mkdir(parents=True, exist_ok=True)
        replica = self.replica_settings
        options = {
            "replica_sync": replica.sync,
            "sync_url": replica.sync_url,
            "replica_offline": replica.offline,
            "sync_auth_token": replica.sync_token or self.sqld_settings.auth_token,
            "turso_sync": self.turso_settings.sync,
        }
        return BackendContext(workdir=workdir, name=unique, options=options, services=self)

    def sqld(self) -> SqldEndpoint:
        from .errors import BackendUnavailable

        if self._failure is not None:
            raise BackendUnavailable(self._failure)
        if self._handle is None:
            from .servers.launcher import ResetRefused, SqldUnavailable, start_sqld

            settings = self.sqld_settings
            if settings.workdir is None:
                settings = dataclasses.replace(settings, workdir=self.workdir / "sqld")
            try:
                self._handle = start_sqld(settings)
            except (SqldUnavailable, ResetRefused) as exc:
                self._failure = f"sqld ({settings.strategy}): {exc}"
                raise BackendUnavailable(self._failure) from None
        return self._handle.endpoint  # type: ignore[no-any-return]

    @property
    def sqld_pid(self) -> int | None:
        """pid of the sqld/stand-in process this harness started (``None`` for a URL or none yet)."""
        return getattr(self._handle, "pid", None)

    def shared(self, key: str, factory: Callable[[], T]) -> T:
        """A per-process resource a backend needs besides sqld (made once; its ``close()`` runs in :meth:`close`)."""
        if key not in self._shared:
            self._shared[key] = factory()
        return self._shared[key]  # type: ignore[no-any-return]

    def close(self) -> None:
        shared, self._shared = list(self._shared.values()), {}
        for resource in shared:
            with contextlib.suppress(Exception):
                resource.close()
        self.tursodb.close()
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(Exception):
                handle.stop()
