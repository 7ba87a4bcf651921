"""pytest wiring that :mod:`pytest_traceparity.plugin` imports: trace files as test items, the redirect fixtures.

Kept apart from :mod:`~pytest_traceparity.trace` and :mod:`~pytest_traceparity.redirect` so those stay
pytest-free and below the per-run state (:mod:`~pytest_traceparity.state`) these modules read.
"""
