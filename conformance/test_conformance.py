"""Every conformance case on every selected backend (the test lives in the installed suite)."""

from pytest_traceparity.pytest_glue.conformance_suite.test_conformance import test_case

__all__ = ["test_case"]
