"""The installed suite's case parametrization and runner fixture, for ``pytest conformance``."""

from pytest_traceparity.pytest_glue.conformance_suite.conftest import conformance_runner, pytest_generate_tests

__all__ = ["conformance_runner", "pytest_generate_tests"]
