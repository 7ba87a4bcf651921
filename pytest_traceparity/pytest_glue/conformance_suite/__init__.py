"""The conformance suite's pytest entry, installed with the package.

``traceparity conformance ARGS`` runs ``pytest --pyargs pytest_traceparity.pytest_glue.conformance_suite
ARGS``: one item per case and backend (``test_case[<case id>-<backend>]``). The
repository's ``conformance/`` folder collects the same test through thin re-exports.
"""
