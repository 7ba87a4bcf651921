"""The registry outside pytest (the CLI): built-in backends, entry points, then extra plugins.

:class:`~pytest_traceparity.backends.registry.BackendRegistry` itself lives with the backends
(the hook spec and the built-in registration use it); it is re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pluggy

from . import hookspecs
from .backends import builtin
from .backends.registry import DEFAULT_REFERENCE, BackendRegistry
from .servers.tursodb import TursodbHost
from .services import configure_backends

ENTRY_POINT_GROUP = "traceparity"

__all__ = ["DEFAULT_REFERENCE", "ENTRY_POINT_GROUP", "BackendRegistry", "standalone_registry"]


class _PluginManager(pluggy.PluginManager):
    """Also accepts unmarked ``pytest_traceparity_*`` functions, as pytest does."""

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("pytest_traceparity_"):
            return {}  # type: ignore[return-value]
        return opts


def standalone_registry(extra_plugins: Iterable[object] = ()) -> BackendRegistry:
    """The registry outside pytest (CLI): built-ins, entry points, then ``extra_plugins``."""
    manager = _PluginManager("pytest")
    manager.add_hookspecs(hookspecs)
    manager.register(builtin, name="traceparity-builtin-backends")
    manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in extra_plugins:
        manager.register(plugin)
    registry = BackendRegistry()
    manager.hook.pytest_traceparity_register_backends(registry=registry)
    configure_backends(registry, TursodbHost(None, (Path.cwd(),)))
    return registry
