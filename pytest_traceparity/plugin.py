"""pytest glue: options, fixtures, markers and hooks. The logic lives in the core modules."""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import hookspecs
from .backends import builtin
from .backends.facade import DB, AsyncDB
from .divergences import marker_decision
from .errors import BackendUnavailable, TraceparityError, UsageError
from .pytest_glue import redirect as redirect_glue
from .pytest_glue.redirect import adbapi, dbapi  # noqa: F401  (fixtures)
from .pytest_glue.traces import pytest_collect_file, replay  # noqa: F401  (trace items + `replay` fixture)
from .report import collect
from .report.model import RunInfo
from .state import STATE_KEY, TraceparityState, build_state

# (option, ini key or None, argparse kwargs)
_OPTIONS: tuple[tuple[str, str | None, dict[str, Any]], ...] = (
    (
        "--backends",
        "traceparity_backends",
        {"help": "backend ids to run on, comma separated, or 'all' (default: the reference backend only)"},
    ),
    (
        "--reference-backend",
        "traceparity_reference_backend",
        {"help": "backend whose behaviour is the truth (default: sqlalchemy-sqlite)"},
    ),
    (
        "--update-golden",
        None,
        {
            "action": "store_true",
            "default": False,
            "help": "rewrite golden baselines from the reference backend (never from others)",
        },
    ),
    ("--traces", "traceparity_traces", {"help": "glob of trace files to collect (default: fixtures/traces/*.jsonl)"}),
    (
        "--traceparity-report",
        "traceparity_report",
        {"help": "write a parity report to PATH (.json or .html); -v lists every root cause in the terminal"},
    ),
    ("--sqld", "traceparity_sqld", {"help": "how to get sqld: auto|binary|docker|url|stand-in (default: auto)"}),
    ("--sqld-bin", "traceparity_sqld_bin", {"help": "path to the sqld binary (binary strategy)"}),
    ("--sqld-image", "traceparity_sqld_image", {"help": "docker image for sqld (docker strategy)"}),
    ("--sqld-url", "traceparity_sqld_url", {"help": "URL of a running sqld (url strategy)"}),
    ("--sqld-auth-token", None, {"help": "bearer token for sqld (default: $TURSO_AUTH_TOKEN); never printed"}),
    (
        "--sqld-allow-reset",
        None,
        {
            "action": "store_true",
            "default": False,
            "help": "allow wiping the database at --sqld-url when it has no namespaces",
        },
    ),
    (
        "--replica-sync",
        "traceparity_replica_sync",
        {"help": "when embedded-replica calls sync(): auto|after-write|before-read|manual (default: auto)"},
    ),
    (
        "--conformance-cases",
        "traceparity_conformance_cases",
        {"help": "extra conformance case files or directories, separated by os.pathsep (the suite's own always run)"},
    ),
    (
        "--replica-offline",
        None,
        {
            "action": "store_true",
            "default": False,
            "help": "embedded-replica writes locally and sync() pushes them (offline mode)",
        },
    ),
    (
        "--sync-url",
        "traceparity_sync_url",
        {"help": "primary for embedded-replica (e.g. libsql://...); default: the sqld server"},
    ),
    (
        "--traceparity-redirect",
        None,
        {
            "action": "store_true",
            "default": False,
            "help": "run every test once per backend, routing sqlite3.connect, "
            "aiosqlite.connect and SQLAlchemy sqlite engines to it",
        },
    ),
    (
        "--traceparity-compare",
        None,
        {
            "action": "store_true",
            "default": False,
            "help": "compare every statement a test runs on a backend with the "
            "reference backend (redirected connections, dbapi, adbapi)",
        },
    ),
    (
        "--turso-bin",
        "traceparity_turso_bin",
        {"help": "tursodb binary for turso-sync (default: tursodb on PATH, then ./node_modules)"},
    ),
    (
        "--turso-sync",
        "traceparity_turso_sync",
        {"help": "when turso-sync calls push()/pull(): auto|after-write|before-read|manual (default: auto)"},
    ),
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("traceparity", "cross-backend parity (pytest-traceparity)")
    for flag, ini, kwargs in _OPTIONS:
        group.addoption(flag, dest=_dest(flag), **kwargs)
        if ini:
            parser.addini(ini, help=f"default for {flag}", default=None)


def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    redirect_glue.load_early(early_config)


def _dest(flag: str) -> str:
    return "traceparity_" + flag.lstrip("-").replace("-", "_")


def option(config: pytest.Config, flag: str) -> Any:
    """Command line first, then the ini key, then ``None``."""
    value = config.getoption(_dest(flag))
    if value not in (None, False):
        return value
    for name, ini, _ in _OPTIONS:
        if name == flag and ini:
            ini_value = config.getini(ini)
            return ini_value if ini_value not in ("", None, []) else value
    return value


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends(*ids): run this test only on these backends")
    config.addinivalue_line(
        "markers",
        "known_divergence(backend, reason, until=None): strict xfail on that backend "
        "(fails when the divergence disappears or after 'until', a YYYY-MM-DD date)",
    )
    config.addinivalue_line("markers", "traceparity_error(message): internal: fail the test at setup")
    if not config.pluginmanager.is_registered(builtin):
        config.pluginmanager.register(builtin, "traceparity-builtin-backends")
    config.pluginmanager.load_setuptools_entrypoints("traceparity")
    try:
        state = build_state(
            hook=config.hook,
            rootdir=config.rootpath,
            get=lambda flag: option(config, flag),
            basetemp=None,
        )
    except UsageError as exc:
        raise pytest.UsageError(f"pytest-traceparity: {exc}") from None
    config.stash[STATE_KEY] = state
    config.pluginmanager.register(_ReportHooks(state), "traceparity-report")
    redirect_glue.configure(
        config,
        state,
        redirect=bool(option(config, "--traceparity-redirect")),
        compare=bool(option(config, "--traceparity-compare")),
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    redirect_glue.unconfigure()
    if state is not None:
        state.close()


def _state(config: pytest.Config) -> TraceparityState:
    state: TraceparityState = config.stash[STATE_KEY]
    return state


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(STATE_KEY, None)
    if state is None:
        return []
    return [f"traceparity: backends={','.join(state.selected)} reference={state.reference}"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "traceparity_backend" not in metafunc.fixturenames and not redirect_glue.parametrize_unchanged(metafunc):
        return
    state = _state(metafunc.config)
    restrictions: list[list[str]] = []  # one pattern list per stacked marker; a backend must match every one
    for marker in metafunc.definition.iter_markers("backends"):
        ids = [str(a) for a in marker.args]
        for backend_id in ids:
            if not any(fnmatch.fnmatchcase(known, backend_id) for known in state.registry.ids()):
                pytest.fail(
                    f"{metafunc.definition.nodeid}: @pytest.mark.backends names unknown backend "
                    f"{backend_id!r}; valid ids: {', '.join(state.registry.ids())}",
                    pytrace=False,
                )
        restrictions.append(ids)
    chosen = [
        b
        for b in state.selected
        if all(any(fnmatch.fnmatchcase(b, pat) for pat in patterns) for patterns in restrictions)
    ]
    if not chosen:
        stacked = " and ".join(f"@pytest.mark.backends({', '.join(p)})" for p in restrictions)
        reason = (
            f"restricted by {stacked} and no selected backend matches "
            f"(--backends={','.join(state.selected)}); add one to --backends to run it"
        )
        metafunc.parametrize(
            "traceparity_backend",
            [pytest.param(None, marks=pytest.mark.skip(reason=reason))],
            indirect=True,
            ids=["not-selected"],
        )
        return
    metafunc.parametrize("traceparity_backend", chosen, indirect=True, ids=chosen)


def _item_backend(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    value = callspec.params.get("traceparity_backend")
    return value if isinstance(value, str) else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = _state(config)
    today = dt.date.today()
    for item in items:
        backend = _item_backend(item)
        if backend is None:
            continue
        for marker in item.iter_markers("known_divergence"):
            decision = marker_decision(backend, marker.args, marker.kwargs, today, where=item.nodeid)
            if decision is None:
                continue
            action, message = decision
            if action == "xfail":
                item.add_marker(pytest.mark.xfail(strict=True, reason=message))
            else:
                item.add_marker(pytest.mark.traceparity_error(message))
        for entry in state.divergences.strict_for(backend, item.nodeid):
            item.add_marker(pytest.mark.xfail(strict=True, reason=f"{entry.id}: {entry.reason}"))


class _ReportHooks:
    """Feeds the session's parity report; registered per session so nothing leaks between runs."""

    def __init__(self, state: TraceparityState) -> None:
        self.state = state
        self.started = time.monotonic()
        self.run = RunInfo()

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.run.deselected += len(items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.run.collected = len(session.items)
        self.run.filters = collect.selection_filters(session.config.option)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.run.collected = max(self.run.collected, len(ids))  # the controller collects nothing itself

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        collect.absorb(self.state.report, report)

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        if hasattr(config, "workerinput"):
            return
        state = self.state
        path = None
        if state.report_path:
            path = Path(state.report_path)
            path = path if path.is_absolute() else config.rootpath / path
        self.run.duration = round(time.monotonic() - self.started, 2)
        lines = collect.finish(
            state.report,
            secrets=state.secrets(),
            path=path,
            rules=state.divergences.entries,
            run=self.run,
            verbose=config.get_verbosity() > 0,
        )
        if lines:
            terminalreporter.write_sep("=", "traceparity parity matrix")
            for line in lines:
                terminalreporter.write_line(line)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("traceparity_error"):
        pytest.fail(str(marker.args[0]), pytrace=False)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def traceparity(request: pytest.FixtureRequest) -> TraceparityState:
    """The session's parity state: registry, selected backends, reference, divergences."""
    return _state(request.config)


@pytest.fixture
def traceparity_backend(request: pytest.FixtureRequest) -> str:
    """The id of the backend this test runs on (tests using it run once per backend)."""
    backend_id = getattr(request, "param", None)
    if backend_id is None:
        pytest.skip(
            "traceparity_backend was requested dynamically (request.getfixturevalue), so it was not "
            "parametrized over --backends; name traceparity_backend, db or adb as a test argument"
        )
    request.node.user_properties.append(("traceparity_backend", str(backend_id)))
    return str(backend_id)


def _fresh_database(request: pytest.FixtureRequest, backend_id: str, state: TraceparityState, cls: Any) -> Any:
    backend = state.registry.get(backend_id)
    problem = None
    try:
        database = cls(backend, state.new_context(request.node.nodeid))
    except (BackendUnavailable, UsageError) as exc:
        problem = f"[{backend_id}] {exc}"
    if problem is not None:  # failing outside the except keeps the driver's traceback out of the report
        pytest.fail(problem, pytrace=False)
    request.node.user_properties.append(("traceparity_served_by", database.served_by))
    return database


@pytest.fixture
def db(request: pytest.FixtureRequest, traceparity_backend: str, traceparity: TraceparityState) -> Iterator[DB]:
    """A fresh, empty database on this test's backend (uniform sync API)."""
    database: DB = _fresh_database(request, traceparity_backend, traceparity, DB)
    yield database
    _note_info(request, database.info)
    _fail_cleanly(traceparity_backend, "closing the test database", lambda: database.close())


@pytest.fixture
def adb(request: pytest.FixtureRequest, traceparity_backend: str, traceparity: TraceparityState) -> Iterator[AsyncDB]:
    """Async twin of ``db``: ``await adb.execute(...)`` in any event loop."""
    database: AsyncDB = _fresh_database(request, traceparity_backend, traceparity, AsyncDB)
    yield database
    _note_info(request, database.database.info)
    _fail_cleanly(traceparity_backend, "closing the test database", lambda: _run_in_fresh_loop(database.aclose))


def _fail_cleanly(backend_id: str, what: str, action: Any) -> None:
    problem = None
    try:
        action()
    except TraceparityError as exc:
        problem = f"[{backend_id}] {what}: {exc}"
    if problem is not None:
        pytest.fail(problem, pytrace=False)


def _note_info(request: pytest.FixtureRequest, info: Any) -> None:
    """Per-test backend facts (replication lag...) for the report; never fails the test."""
    try:
        facts = {k: v for k, v in info().items() if k != "served_by" and isinstance(v, (str, int, float, bool))}
    except Exception as exc:  # a dead primary must not turn teardown into an error here
        facts = {"info_error": str(exc)[:200]}
    if facts:
        request.node.user_properties.append(("traceparity_info", facts))


def _run_in_fresh_loop(fn: Any) -> None:
    """Await ``fn()`` on a new loop in a new thread: the test's own loop may be closed or running."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(fn())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="traceparity-adb-teardown")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def sqld_server(traceparity: TraceparityState) -> Any:
    """The sqld endpoint for this worker (real sqld or the stand-in; see ``.label``)."""
    try:
        return traceparity.services.sqld()
    except (BackendUnavailable, UsageError) as exc:
        pytest.fail(f"sqld: {exc}", pytrace=False)
