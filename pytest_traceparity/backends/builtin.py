"""Registers the built-in backends through the same hook a third party implements."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from ..registry import BackendRegistry

# Order is the order of ``--backends=all`` and of the report's columns.
BUILTIN_BACKENDS = (
    ("sqlalchemy_sqlite", "SQLAlchemySQLiteBackend"),
    ("libsql_local", "LibsqlLocalBackend"),
    ("sqld_http", "SqldHttpBackend"),
    ("embedded_replica", "EmbeddedReplicaBackend"),
)


@hookimpl
def pytest_traceparity_register_backends(registry: BackendRegistry) -> None:
    for module_name, class_name in BUILTIN_BACKENDS:
        module = importlib.import_module(f"{__package__}.{module_name}")
        registry.register(getattr(module, class_name)())
