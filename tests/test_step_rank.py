"""Failure messages lead with the step whose *unknown* difference is worst, in replay and redirect alike."""

from __future__ import annotations

from pytest_traceparity.compare import Difference
from pytest_traceparity.divergences import Attribution, builtin_entries, step_rank
from pytest_traceparity.golden.verify import StepReport

KNOWN_RULE = builtin_entries()[0]


def attribution(severity: str, *, known: bool) -> Attribution:
    return Attribution(Difference("rows", f"{severity} difference"), KNOWN_RULE if known else None, severity)


def step(seq: int, *attributions: Attribution) -> StepReport:
    return StepReport(
        seq,
        1,
        "execute",
        "SELECT 1",
        "",
        "",
        "",
        [a.difference for a in attributions],
        "failed",
        attributions=list(attributions),
    )


def test_an_accepted_data_difference_does_not_outrank_an_unknown_lost_error() -> None:
    known_data_unknown_metadata = step(1, attribution("data", known=True), attribution("metadata", known=False))
    unknown_lost_error = step(2, attribution("error-lost", known=False))
    ranked = sorted([known_data_unknown_metadata, unknown_lost_error], key=lambda s: s.rank)
    assert [s.seq for s in ranked] == [2, 1]


def test_equal_worst_unknowns_are_ordered_by_the_worst_difference_overall() -> None:
    plain = step(1, attribution("metadata", known=False))
    with_known_data = step(2, attribution("metadata", known=False), attribution("data", known=True))
    assert [s.seq for s in sorted([plain, with_known_data], key=lambda s: s.rank)] == [2, 1]


def test_step_rank_values() -> None:
    assert step_rank([attribution("error-new", known=False), attribution("data", known=True)]) == (2, 0)
    assert step_rank([attribution("data", known=True)]) == (7, 0)  # nothing unknown: after every unknown
    assert step_rank([]) == (7, 7)
