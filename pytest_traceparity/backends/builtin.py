"""Registers the built-in backends through the same hook a third party implements."""

from __future__ import annotations

import importlib

import pluggy

from .registry import BackendRegistry

# The same marker as :data:`pytest_traceparity.hookspecs.hookimpl` (project "pytest"), made here so the
# backends never import the layer that declares the hook.
hookimpl = pluggy.HookimplMarker("pytest")

# Order is the order of ``--backends=all`` and of the report's columns.
BUILTIN_BACKENDS = (
    ("sqlalchemy_sqlite", "SQLAlchemySQLiteBackend"),
    ("libsql_local", "LibsqlLocalBackend"),
    ("sqld_http", "SqldHttpBackend"),
    ("embedded_replica", "EmbeddedReplicaBackend"),
)

# Backends behind an optional extra (``[turso]``, ``[sqlalchemy-libsql]``) or an external
# binary (``tursodb``). They are registered always (so ``--backends=ID`` can say what to
# install), but ``--backends=all`` takes one only when it can run here.
OPTIONAL_BACKENDS = (
    ("turso_local", "TursoLocalBackend"),
    ("sqlalchemy_libsql", "SQLAlchemyLibsqlBackend"),
    ("sqlalchemy_libsql", "SQLAlchemyLibsqlHttpBackend"),
    ("sqlalchemy_turso", "SQLAlchemyTursoBackend"),
    ("turso_sync", "TursoSyncBackend"),
)

# ``--backends=all`` takes an optional backend when its package (and, for turso-sync, the tursodb
# binary) is present: their differences are described by root-cause rules in
# known_divergences_turso.toml (and the libsql rules they share). False keeps them out of ``all``
# (still selectable by id), e.g. while a new backend's differences have no rules yet.
OPTIONAL_BACKENDS_IN_ALL = True


@hookimpl
def pytest_traceparity_register_backends(registry: BackendRegistry) -> None:
    for module_name, class_name in BUILTIN_BACKENDS:
        module = importlib.import_module(f"{__package__}.{module_name}")
        registry.register(getattr(module, class_name)())
    for module_name, class_name in OPTIONAL_BACKENDS:
        module = importlib.import_module(f"{__package__}.{module_name}")
        backend = getattr(module, class_name)()
        backend.optional = True
        backend.in_all = OPTIONAL_BACKENDS_IN_ALL
        registry.register(backend)
