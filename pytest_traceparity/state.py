"""The per-process parity state: registry, selection, divergences, services.

Built from options by the pytest plugin and by the CLI alike, so neither owns logic the
other lacks.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends.base import BackendContext
from .config import ReplicaSettings, TursoSettings, sqld_config
from .divergences import DivergenceRegistry, load_registry, project_settings
from .errors import UsageError
from .registry import DEFAULT_REFERENCE, BackendRegistry
from .report import ParityReport
from .secret import Secret, as_secret
from .services import HarnessServices

_STATE_KEY: Any = None


def __getattr__(name: str) -> Any:
    # ``STATE_KEY`` (the pytest stash key) is made on first use so that importing the core
    # (the CLI, replay, verify) never imports pytest.
    global _STATE_KEY
    if name == "STATE_KEY":
        if _STATE_KEY is None:
            import pytest

            _STATE_KEY = pytest.StashKey["TraceparityState"]()
        return _STATE_KEY
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DEFAULT_TRACES = "fixtures/traces/*.jsonl"


@dataclass
class TraceparityState:
    registry: BackendRegistry
    selected: list[str]
    reference: str
    divergences: DivergenceRegistry
    services: HarnessServices
    rootdir: Path
    workdir: Path
    update_golden: bool = False
    traces: str = DEFAULT_TRACES
    report_path: str | None = None
    conformance_cases: list[Path] = field(default_factory=list)
    report: ParityReport = field(default_factory=ParityReport)

    def new_context(self, name: str) -> BackendContext:
        """A fresh private directory (and unique name) for one database."""
        return self.services.new_context(name)

    def secrets(self) -> tuple[Secret | None, ...]:
        """Every token this run holds, for last-line redaction of reports."""
        return (as_secret(self.services.sqld_settings.auth_token), self.services.replica_settings.sync_token)

    def close(self) -> None:
        self.services.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def build_state(
    *, hook: Any, rootdir: Path, get: Callable[[str], Any], basetemp: Path | None = None
) -> TraceparityState:
    """Resolve every option; raises :class:`UsageError` with what to fix."""
    registry = BackendRegistry()
    hook.pytest_traceparity_register_backends(registry=registry)
    settings, _ = project_settings(rootdir)
    reference = get("--reference-backend") or settings.get("reference_backend") or DEFAULT_REFERENCE
    if reference not in registry:
        raise UsageError(f"--reference-backend: unknown backend {reference!r}; valid ids: {', '.join(registry.ids())}")
    services = _harness_services(get, rootdir, basetemp)
    services.configure_backends(registry)  # before selection: turso-sync's availability depends on --turso-bin
    selected = registry.select(get("--backends"), reference)
    for backend_id in selected:
        reason = registry.get(backend_id).unavailable_reason()
        if reason:
            raise UsageError(f"backend {backend_id!r} was selected but cannot run here: {reason}")
    report_path = get("--traceparity-report")
    if report_path and Path(report_path).suffix.lower() not in (".json", ".html"):
        # Caught here, before the run: a CI job must not find out at the end that no report was written.
        raise UsageError(f"--traceparity-report={report_path}: use a file name ending in .json or .html")
    report = _new_report(reference, selected, services.sqld_settings.strategy)
    return TraceparityState(
        report=report,
        registry=registry,
        selected=selected,
        reference=reference,
        divergences=load_registry(rootdir),
        services=services,
        rootdir=rootdir,
        workdir=services.workdir,
        update_golden=bool(get("--update-golden")),
        traces=get("--traces") or DEFAULT_TRACES,
        report_path=report_path,
        conformance_cases=[Path(p) for p in (get("--conformance-cases") or "").split(os.pathsep) if p.strip()],
    )


def _harness_services(get: Callable[[str], Any], rootdir: Path, basetemp: Path | None) -> HarnessServices:
    """The servers' settings (sqld, replica primary, tursodb) and the run's private work directory."""
    turso = TursoSettings(bin=get("--turso-bin"), sync=get("--turso-sync") or "auto", search_dirs=(Path.cwd(), rootdir))
    sqld = sqld_config(
        get("--sqld") or "auto",
        binary=get("--sqld-bin"),
        image=get("--sqld-image"),
        url=get("--sqld-url"),
        auth_token=get("--sqld-auth-token"),
        allow_reset=bool(get("--sqld-allow-reset")),
    )
    replica = ReplicaSettings(
        sync=get("--replica-sync") or "auto", sync_url=get("--sync-url"), offline=bool(get("--replica-offline"))
    )
    workdir = Path(tempfile.mkdtemp(prefix="traceparity-", dir=basetemp))
    atexit.register(shutil.rmtree, workdir, True)
    return HarnessServices(sqld, replica, workdir, turso)


def _new_report(reference: str, selected: list[str], sqld_strategy: str) -> ParityReport:
    import platform
    import sqlite3

    from . import __version__

    return ParityReport(
        reference=reference,
        backends=selected,
        environment={
            "python": platform.python_version(),
            "sqlite3 (stdlib)": sqlite3.sqlite_version,
            "pytest-traceparity": __version__,
            "sqld strategy": sqld_strategy,
        },
    )
