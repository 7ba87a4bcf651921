"""pytest glue for traces: trace files become items, one per trace per backend, and ``replay``.

Wired into the plugin with one import in ``plugin.py``::

    from .pytest_glue.traces import pytest_collect_file, replay  # noqa: F401  (hook + fixture)

Item ids are ``<trace>[<backend>]``. ``--update-golden`` rewrites a golden only from the
reference backend's item; every other backend's item compares and never writes.
"""

from __future__ import annotations

import fnmatch
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..errors import TraceparityError
from ..golden.store import golden_path_for, trace_name
from ..golden.verify import ReplayReport, update_golden, verify_trace
from ..state import STATE_KEY, TraceparityState
from ..trace.format import FORMAT, TraceReader


class TraceDivergence(Exception):
    """A replay differed from its golden; the message is the whole story (no traceback)."""


def _state(config: pytest.Config) -> TraceparityState | None:
    return config.stash.get(STATE_KEY, None)


def _globs(state: TraceparityState) -> list[str]:
    return [g.strip() for g in state.traces.replace(",", " ").split() if g.strip()]


def _matches(path: Path, state: TraceparityState) -> bool:
    try:
        rel = path.resolve().relative_to(state.rootdir.resolve()).as_posix()
    except ValueError:
        rel = None
    for glob in _globs(state):
        if fnmatch.fnmatch(path.as_posix(), glob) or (rel is not None and fnmatch.fnmatch(rel, glob)):
            return True
    return False


def is_trace_file(path: Path) -> bool:
    """True when the file starts with a trace header line (whatever its version)."""
    try:
        with path.open("rb") as fh:
            first = fh.readline(64 * 1024)
        data = json.loads(first.decode("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def _given(file_path: Path, config: pytest.Config) -> bool:
    """The file is, or lies under, a path named on the command line (not the default rootdir)."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return False
    resolved = file_path.resolve()
    for arg in config.args:
        target = Path(arg.split("::", 1)[0])
        target = (target if target.is_absolute() else config.invocation_params.dir / target).resolve()
        if resolved == target or target in resolved.parents:
            return True
    return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> TraceFile | None:
    """Collect ``*.jsonl`` traces matching ``--traces`` or given on the command line (a file or a
    directory holding it), when the file starts with a trace header; other ``.jsonl`` files are
    not ours and are left alone without error."""
    state = _state(parent.config)
    if state is None or file_path.suffix != ".jsonl" or file_path.name.endswith(".golden.jsonl"):
        return None
    if not (_matches(file_path, state) or parent.session.isinitpath(file_path) or _given(file_path, parent.config)):
        return None
    return TraceFile.from_parent(parent, path=file_path) if is_trace_file(file_path) else None


class TraceFile(pytest.File):
    def collect(self) -> Iterator[TraceItem]:
        state = _state(self.config)
        assert state is not None
        TraceReader(self.path)  # header problems (format, version) fail collection, clearly
        name = trace_name(self.path)
        backends = sorted(state.selected, key=lambda b: b != state.reference)  # reference first
        if state.update_golden and state.reference not in backends:
            warnings.warn(
                pytest.PytestWarning(
                    f"--update-golden: the reference backend {state.reference!r} is not selected, so no "
                    f"golden is written for {self.path}; add it to --backends"
                ),
                stacklevel=1,
            )
        for backend_id in backends:
            yield TraceItem.from_parent(self, name=f"{name}[{backend_id}]", backend_id=backend_id)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, TraceparityError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


def run_trace(
    state: TraceparityState, trace: Path, backend_id: str, *, golden: Path | None = None, update: bool | None = None
) -> ReplayReport:
    """Update (reference backend, ``--update-golden``) or verify one trace on one backend."""
    backend = state.registry.get(backend_id)
    update = state.update_golden if update is None else update
    trace = _display(trace)
    golden = _display(golden) if golden is not None else None
    if update and backend_id == state.reference:
        return update_golden(
            trace,
            backend,
            state.new_context,
            golden=golden,
            allow_departures=os.environ.get("TRACEPARITY_ALLOW_DEPARTURES") == "1",
        )
    if update:
        # Another backend under --update-golden: compare with what the reference writes in this
        # run (replayed privately), so the outcome never depends on item order or xdist workers.
        # Nothing is written next to the real golden.
        real = golden or golden_path_for(trace)
        with tempfile.TemporaryDirectory(prefix="traceparity-golden-") as tmp:
            fresh = Path(tmp) / real.name
            reference = state.registry.get(state.reference)
            update_golden(trace, reference, state.new_context, golden=fresh, allow_departures=True)
            report = verify_trace(trace, backend, state.new_context, state.divergences, golden=fresh)
        report.golden = real
        return report
    return verify_trace(trace, backend, state.new_context, state.divergences, golden=golden)


def _display(path: Path) -> Path:
    """Relative to the working directory when inside it: shorter messages, runnable commands."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _settle(report: ReplayReport) -> None:
    """Turn a report into the test outcome: fail, xfail with reasons, or pass."""
    if report.status == "failed":
        raise TraceDivergence(report.failure_message())
    if report.status == "xfail":
        pytest.xfail(report.xfail_reason())


class TraceItem(pytest.Item):
    def __init__(self, *, backend_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backend_id = backend_id
        self.user_properties.append(("traceparity_backend", backend_id))

    def runtest(self) -> None:
        state = _state(self.config)
        assert state is not None
        report = run_trace(state, self.path, self.backend_id)
        if report.served_by:
            self.user_properties.append(("traceparity_served_by", "; ".join(sorted(set(report.served_by.values())))))
        if report.golden_status is not None:
            self.user_properties.append(("traceparity_golden", f"{report.golden_status}: {report.golden}"))
            return
        if report.failures or report.known:
            self.user_properties.append(("traceparity_triage", report.triage()))
        _settle(report)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, (TraceDivergence, TraceparityError)):
            text = str(excinfo.value)
            return text if text.startswith("trace ") else f"[{self.backend_id}] {text}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        golden = golden_path_for(self.path)
        return self.path, None, f"trace {trace_name(self.path)} on {self.backend_id} (golden {golden})"


@pytest.fixture
def replay(
    request: pytest.FixtureRequest, traceparity: TraceparityState, traceparity_backend: str
) -> Callable[..., ReplayReport]:
    """Replay a trace on this test's backend and compare it to its golden.

    ``replay("fixtures/traces/mine.jsonl")`` fails the test with the most severe diverging step,
    xfails it when only known divergences were hit, and returns the report. Under
    ``--update-golden`` the reference backend rewrites the golden instead.
    """

    def run(trace: str | Path, *, golden: str | Path | None = None) -> ReplayReport:
        path = Path(trace)
        if not path.is_absolute():
            path = traceparity.rootdir / path
        golden_path = Path(golden) if golden is not None else None
        if golden_path is not None and not golden_path.is_absolute():
            golden_path = traceparity.rootdir / golden_path
        try:
            report = run_trace(traceparity, path, traceparity_backend, golden=golden_path)
        except TraceparityError as exc:
            pytest.fail(f"[{traceparity_backend}] {exc}", pytrace=False)
        if report.failures or report.known:
            request.node.user_properties.append(("traceparity_triage", report.triage()))
        if report.status == "failed":
            pytest.fail(report.failure_message(), pytrace=False)
        _settle(report)
        return report

    return run
