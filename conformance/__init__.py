"""The cross-backend SQL-semantics conformance suite (cases in ``cases/*.toml``).

Run it against every registered backend with ``pytest --pyargs conformance --backends=all``.
The engine lives in :mod:`pytest_traceparity.conformance_runner`; this package holds data.
"""
