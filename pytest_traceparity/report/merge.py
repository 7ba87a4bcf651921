"""Merging the JSON reports of several runs (CI matrix jobs) into one report."""

from __future__ import annotations

from dataclasses import replace

from .model import ParityReport, RuleInfo


def merge(reports: list[ParityReport]) -> ParityReport:
    """One report with every run's tests; a rule is stale only if no run's tests hit it."""
    if len(reports) == 1:
        return reports[0]
    merged = ParityReport()
    references = list(dict.fromkeys(r.reference for r in reports if r.reference))
    merged.reference = references[0] if references else ""
    for report in reports:
        merged.backends += [b for b in report.backends if b not in merged.backends]
        merged.items += report.items
        merged.runs += report.runs
        for key, value in report.environment.items():
            seen = merged.environment.get(key)
            if seen is None:
                merged.environment[key] = value
            elif value not in seen.split(" / "):
                merged.environment[key] = f"{seen} / {value}"
        for rule in report.rules.values():
            known = merged.rules.get(rule.id)
            merged.rules[rule.id] = (
                replace(rule) if known is None else replace(known, applicable=known.applicable or rule.applicable)
            )
    if len(references) > 1:
        merged.environment["reference backends"] = ", ".join(references)
    hit = {rule for item in merged.items for rule in item.rules}
    merged.rules = {k: _restale(r, hit) for k, r in merged.rules.items()}
    return merged


def _restale(rule: RuleInfo, hit: set[str]) -> RuleInfo:
    return replace(rule, stale=rule.applicable and rule.id not in hit)
