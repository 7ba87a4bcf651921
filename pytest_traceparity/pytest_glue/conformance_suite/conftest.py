"""Parametrizes ``test_case`` over the cases and shares one runner per session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_traceparity.conformance import ConformanceRunner, default_cases_dir, load_cases
from pytest_traceparity.errors import UsageError
from pytest_traceparity.state import STATE_KEY

EXTRA_CASES_ENV = "TRACEPARITY_CONFORMANCE_CASES"


def extra_case_paths(config: pytest.Config) -> list[Path]:
    """Extra case files/directories: ``--conformance-cases`` (the plugin's option), then
    ``$TRACEPARITY_CONFORMANCE_CASES``, each os.pathsep-separated."""
    raw = os.environ.get(EXTRA_CASES_ENV, "")
    from_env = [Path(p) for p in raw.split(os.pathsep) if p.strip()]
    return [*config.stash[STATE_KEY].conformance_cases, *from_env]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One item per case (ids are the case ids); the plugin adds one per backend."""
    if "conformance_case" not in metafunc.fixturenames:
        return
    try:
        cases = load_cases([default_cases_dir(), *extra_case_paths(metafunc.config)])
        problem = None
    except UsageError as exc:
        problem = f"{exc} (cases from {default_cases_dir()}, --conformance-cases and ${EXTRA_CASES_ENV})"
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    metafunc.parametrize("conformance_case", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def conformance_runner(traceparity: Any) -> ConformanceRunner:
    """Caches the reference backend's run of each case for the whole session (per worker)."""
    return ConformanceRunner(
        registry=traceparity.registry,
        reference=traceparity.reference,
        divergences=traceparity.divergences,
        new_context=traceparity.new_context,
    )
