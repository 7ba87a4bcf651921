"""Extension points. Built-in backends register through exactly these hooks.

Implement them in a ``conftest.py`` at your rootdir, in a pytest plugin, or in a package
exposing an entry point in the ``traceparity`` group (that also reaches the CLI)::

    # conftest.py
    from pytest_traceparity.backends.libsql_local import LibsqlLocalBackend

    class MyBackend(LibsqlLocalBackend):
        id = "my-backend"

    def pytest_traceparity_register_backends(registry):
        registry.register(MyBackend())
"""

from __future__ import annotations

import pluggy

from .backends.registry import BackendRegistry

# The project name is "pytest" so that ``@pytest.hookimpl`` and plain ``pytest_``-named
# functions work the same in pytest's plugin manager and in the CLI's.
hookspec = pluggy.HookspecMarker("pytest")
hookimpl = pluggy.HookimplMarker("pytest")


@hookspec
def pytest_traceparity_register_backends(registry: BackendRegistry) -> None:
    """Register :class:`~pytest_traceparity.backends.base.Backend` instances with ``registry``."""
