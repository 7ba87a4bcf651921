"""The repository's conformance folder: the case suite (re-exported from the installed
:mod:`pytest_traceparity.pytest_glue.conformance_suite`) plus replica consistency tests.

Not installed: the cases and the engine ship as :mod:`pytest_traceparity.conformance`.
"""
