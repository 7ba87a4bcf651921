"""Benchmarks for pytest-traceparity: ``python -m bench [--quick] [--json PATH]``.

Every figure is a ratio or a rate measured side by side (the two sides alternate within
one process, several repetitions, median with the spread), so machine load shifts both
sides alike. Targets are goals printed next to each figure, never assertions in tests.
"""
