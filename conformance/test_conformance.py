"""Every conformance case on every selected backend (the test lives in the installed suite)."""

from pytest_traceparity.conformance.suite.test_conformance import test_case

__all__ = ["test_case"]
