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
        # pytrace=False: pytest would otherwise render this frame's source for every known
        # divergence (parsing the file each time) and ship it to the xdist controller, though
        # only the reason is ever shown; that was a sixth of the parity job's time
        raise pytest.xfail.Exception(verdict.reason, pytrace=False)
    if not verdict.passed:
        pytest.fail(verdict.message, pytrace=False)
