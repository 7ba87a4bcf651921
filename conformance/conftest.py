"""Parametrizes ``test_case`` over the cases and shares one runner per session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_traceparity.backends.errors import UsageError
from pytest_traceparity.conformance_runner import ConformanceRunner, default_cases_dir, load_cases

EXTRA_CASES_ENV = "TRACEPARITY_CONFORMANCE_CASES"


def extra_case_paths() -> list[Path]:
    """Extra case files/directories from ``$TRACEPARITY_CONFORMANCE_CASES`` (os.pathsep-separated).

    An environment variable rather than an option: under ``--pyargs conformance`` this
    conftest loads after command-line parsing, so it cannot add options.
    """
    raw = os.environ.get(EXTRA_CASES_ENV, "")
    return [Path(p) for p in raw.split(os.pathsep) if p.strip()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One item per case (ids are the case ids); the plugin adds one per backend."""
    if "conformance_case" not in metafunc.fixturenames:
        return
    try:
        cases = load_cases([default_cases_dir(), *extra_case_paths()])
        problem = None
    except UsageError as exc:
        problem = f"{exc} (cases from {default_cases_dir()} and ${EXTRA_CASES_ENV})"
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
