"""Every conformance case on every selected backend, compared with the reference backend."""

from __future__ import annotations

import pytest

from pytest_traceparity.conformance import Case, ConformanceRunner


def test_case(
    request: pytest.FixtureRequest,
    conformance_case: Case,
    traceparity_backend: str,
    conformance_runner: ConformanceRunner,
) -> None:
    verdict = conformance_runner.check(conformance_case, traceparity_backend)
    if verdict.status == "skip":
        pytest.skip(verdict.message)
    if verdict.served_by:
        # Read by the plugin's parity matrix ("served by" column), as the db fixture does.
        request.node.user_properties.append(("traceparity_served_by", verdict.served_by))
    triage = verdict.triage()
    if triage:
        request.node.user_properties.append(("traceparity_triage", triage))
    if verdict.status == "known":
        pytest.xfail(verdict.reason)
    if not verdict.passed:
        pytest.fail(verdict.message, pytrace=False)
