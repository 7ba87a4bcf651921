"""pytest wiring for redirect/compare mode and the ``dbapi`` / ``adbapi`` fixtures.

``plugin.py`` imports the fixtures and calls :func:`configure`, :func:`parametrize_unchanged`
and :func:`load_early`; the per-test hooks live on :class:`RedirectHooks`, registered per
session so nothing leaks between (pytester) sessions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..backends.adbapi import AioConnection
from ..backends.base import CAP_REMOTE
from ..backends.dbapi import Sqlite3Connection
from ..errors import TraceparityError
from ..redirect import patches
from ..redirect.router import ItemRouter, RouterSettings
from ..state import TraceparityState

NO_REDIRECT = "traceparity_no_redirect"
_ROUTER = pytest.StashKey[ItemRouter]()
_REDIRECT_DEST = "traceparity_traceparity_redirect"


def load_early(early_config: pytest.Config) -> None:
    """Patch before conftests and test modules are imported (``from sqlite3 import connect`` too)."""
    if getattr(early_config.known_args_namespace, _REDIRECT_DEST, False):
        patches.install()


def configure(config: pytest.Config, state: TraceparityState, *, redirect: bool, compare: bool) -> None:
    config.addinivalue_line(
        "markers", f"{NO_REDIRECT}: run this test once, on real SQLite, even under --traceparity-redirect"
    )
    if redirect:
        patches.install()
    config.pluginmanager.register(RedirectHooks(state, redirect=redirect, compare=compare), "traceparity-redirect")


def unconfigure() -> None:
    patches.uninstall()


def parametrize_unchanged(metafunc: pytest.Metafunc) -> bool:
    """Under ``--traceparity-redirect`` every test runs once per backend, fixture or not."""
    hooks = metafunc.config.pluginmanager.get_plugin("traceparity-redirect")
    if not isinstance(hooks, RedirectHooks) or not hooks.redirect:
        return False
    if any(True for _ in metafunc.definition.iter_markers(NO_REDIRECT)):
        return False
    metafunc.fixturenames.append("traceparity_backend")
    return True


def _item_backend(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get("traceparity_backend") if callspec is not None else None
    return value if isinstance(value, str) else None


class RedirectHooks:
    def __init__(self, state: TraceparityState, *, redirect: bool, compare: bool) -> None:
        self.state = state
        self.redirect = redirect
        self.compare = compare

    def router(self, item: pytest.Item, backend_id: str) -> ItemRouter:
        """This test's router (created on first need: setup in redirect/compare mode, or a fixture)."""
        router = item.stash.get(_ROUTER, None)
        if router is None:
            state = self.state
            router = ItemRouter(
                RouterSettings(
                    backend=state.registry.get(backend_id),
                    make_context=state.new_context,
                    subject=item.nodeid,
                    reference=state.registry.get(state.reference) if self.compare else None,
                    registry=state.divergences,
                    passthrough=(Path(state.workdir).resolve(),),
                )
            )
            item.stash[_ROUTER] = router
        return router

    def _redirected(self, item: pytest.Item) -> bool:
        return self.redirect and not any(True for _ in item.iter_markers(NO_REDIRECT))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Any:
        backend_id = _item_backend(item)
        if backend_id is not None and not any(k == "traceparity_backend" for k, _ in item.user_properties):
            # a test parametrized by redirect alone never instantiates the traceparity_backend fixture
            item.user_properties.append(("traceparity_backend", backend_id))
        if backend_id is not None and self._redirected(item):
            self._start_services(backend_id)
            patches.activate(self.router(item, backend_id))
        elif backend_id is not None and self.compare:
            self.router(item, backend_id)
        return (yield)

    def _start_services(self, backend_id: str) -> None:
        """Start sqld from the main thread, before the test's own threads (aiosqlite's) need it.

        The launcher ties the server's life to the thread that started it (a parent-death
        signal), so a server first started from an aiosqlite worker dies with that worker.
        """
        if self.state.registry.get(backend_id).has(CAP_REMOTE):
            with contextlib.suppress(TraceparityError):  # the test's first connect reports it properly
                self.state.services.sqld()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        router = item.stash.get(_ROUTER, None)
        if router is None:
            return (yield)
        for name in ("tmp_path", "tmpdir"):
            value = getattr(item, "funcargs", {}).get(name)
            if value is not None:
                router.watch(Path(str(value)), recursive=True)
        try:
            result = yield
        except TraceparityError as exc:
            problem = str(exc)
        except BaseException:
            self._settle(item, router, test_failed=True)
            raise
        else:
            self._settle(item, router)
            return result
        self._settle(item, router)  # outside the except: the message alone, no chained traceback
        pytest.fail(problem, pytrace=False)

    def _settle(self, item: pytest.Item, router: ItemRouter, *, test_failed: bool = False) -> None:
        if router.served_by and not any(k == "traceparity_served_by" for k, _ in item.user_properties):
            item.user_properties.append(("traceparity_served_by", router.served_by))
        escaped = router.escapes()
        if escaped:
            pytest.fail(router.escape_message(escaped), pytrace=False)
        verdict = router.verdict()
        if verdict is None or verdict.status == "passed":
            return
        if verdict.triage:
            item.user_properties.append(("traceparity_triage", verdict.triage))
        if test_failed:  # the test's own failure is the outcome; the comparison goes alongside it
            item.add_report_section("call", "traceparity compare", verdict.message)
        elif verdict.status == "failed":
            pytest.fail(verdict.message, pytrace=False)
        else:
            pytest.xfail(verdict.message)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> Any:
        try:
            return (yield)
        finally:
            router = item.stash.get(_ROUTER, None)
            if router is not None:
                del item.stash[_ROUTER]
                if patches.active() is router:
                    patches.deactivate()
                router.close()


def _hooks(request: pytest.FixtureRequest) -> RedirectHooks:
    hooks = request.config.pluginmanager.get_plugin("traceparity-redirect")
    assert isinstance(hooks, RedirectHooks), "pytest-traceparity is not configured in this session"
    return hooks


def _fresh(request: pytest.FixtureRequest, backend_id: str, label: str) -> Sqlite3Connection:
    try:
        return _hooks(request).router(request.node, backend_id).fresh(label)
    except TraceparityError as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)  # outside the except: no chained traceback


@pytest.fixture
def dbapi(request: pytest.FixtureRequest, traceparity_backend: str) -> Iterator[Sqlite3Connection]:
    """A ``sqlite3``-shaped connection to a fresh database on this test's backend."""
    conn = _fresh(request, traceparity_backend, "dbapi")
    yield conn
    conn.close()


@pytest.fixture
def adbapi(request: pytest.FixtureRequest, traceparity_backend: str) -> Iterator[AioConnection]:
    """An ``aiosqlite``-shaped connection to a fresh database on this test's backend (already open)."""
    _hooks(request)._start_services(traceparity_backend)  # the connection opens on its worker thread
    conn = AioConnection(lambda: _fresh(request, traceparity_backend, "adbapi"))
    conn.open_sync()
    yield conn
    conn.close_sync()
