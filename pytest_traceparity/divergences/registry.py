"""Judging differences against the rules: attribution, precedence, severity, staleness.

Each difference is attributed to at most one rule, the first that matches in this
precedence (see :attr:`Rule.precedence`): project rules before shipped ones, then rules
with more conditions (aspects and backend do not count; a subject list counts as one),
then rules that list subjects, then file order. An
unattributed difference fails its test. Lookups are indexed by backend and aspect, so a
step with no difference costs one dictionary lookup.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..compare import Difference
from .rules import Rule
from .severity import RANK, SCALE, aspect_severity, overridden


@dataclass
class Attribution:
    difference: Difference
    rule: Rule | None
    severity: str

    @property
    def rule_id(self) -> str | None:
        return self.rule.id if self.rule is not None else None

    def label(self) -> str:
        return f"[{self.severity}; {self.rule_id or 'unknown'}] {self.difference}"


@dataclass
class Verdict:
    """What to do with a subject's differences given the rules."""

    status: str  # "same", "known", "diverged", "fixed", "expired"
    differences: list[Difference] = field(default_factory=list)
    entries: list[Rule] = field(default_factory=list)
    message: str = ""
    attributions: list[Attribution] = field(default_factory=list)
    subject: str = ""  # set on a verdict remembered by judge_alike: the subject its message names

    @property
    def passed(self) -> bool:
        return self.status in ("same", "known")

    @property
    def reason(self) -> str:
        """One line per rule, ``<id>: <reason>`` (reports count hits by the id)."""
        return "\n".join(dict.fromkeys(f"{e.id}: {e.reason}" for e in self.entries))

    @property
    def unknown(self) -> list[Attribution]:
        return [a for a in self.attributions if a.rule is None]


_SAME = Verdict("same")
_GLOB_SPLIT = re.compile(r"[*?]")


class DivergenceRegistry:
    def __init__(self, entries: Iterable[Rule] = (), severity: dict[str, str] | None = None) -> None:
        self.entries: list[Rule] = sorted(entries, key=lambda r: r.precedence)
        self.severity_overrides: dict[str, str] = dict(severity or {})
        self.hits: Counter[str] = Counter()
        self.applicable: set[str] = set()
        self._backend: dict[str, tuple[list[Rule], dict[str, list[Rule]]]] = {}
        self._aspect: dict[tuple[str, str], list[Rule]] = {}
        self.by_id: dict[str, Rule] = {r.id: r for r in self.entries}

    # -- index ------------------------------------------------------------------------------
    def _for_backend(self, backend: str) -> tuple[list[Rule], dict[str, list[Rule]]]:
        cached = self._backend.get(backend)
        if cached is None:
            rules = [r for r in self.entries if r.applies_backend(backend) and r.active()]
            exact: dict[str, list[Rule]] = {}
            for rule in rules:
                for subject in rule._exact:
                    exact.setdefault(subject, []).append(rule)
            cached = self._backend[backend] = (rules, exact)
            self.applicable.update(r.id for r in rules)
        return cached

    def _candidates(self, backend: str, aspect: str) -> list[Rule]:
        key = (backend, aspect)
        found = self._aspect.get(key)
        if found is None:
            found = self._aspect[key] = [r for r in self._for_backend(backend)[0] if r.covers(aspect)]
        return found

    def matching(self, backend: str, subject: str) -> list[Rule]:
        """Rules active on ``backend`` whose subjects admit ``subject`` (any-subject rules included)."""
        return [r for r in self._for_backend(backend)[0] if r.matches_subject(subject)]

    def strict_subjects(self, backend: str) -> frozenset[str]:
        """Subjects some rule lists exactly on ``backend``: judged even when nothing differs (staleness)."""
        return frozenset(self._for_backend(backend)[1])

    def strict_for(self, backend: str, subject: str) -> list[Rule]:
        return self._for_backend(backend)[1].get(subject, [])

    # -- judging ----------------------------------------------------------------------------
    def severity_of(self, diff: Difference, rule: Rule | None) -> str:
        default = rule.severity if rule is not None and rule.severity else aspect_severity(diff.aspect, diff.relation)
        return overridden(self.severity_overrides, rule.id if rule else None, diff.aspect, default)

    def attribute(self, backend: str, subject: str, diff: Difference) -> Attribution:
        for rule in self._candidates(backend, diff.aspect):
            if rule.matches_subject(subject) and rule.matches(diff):
                return Attribution(diff, rule, self.severity_of(diff, rule))
        return Attribution(diff, None, self.severity_of(diff, None))

    def judge(self, backend: str, subject: str, differences: Sequence[Difference]) -> Verdict:
        _, exact = self._for_backend(backend)
        strict = exact.get(subject, ())
        if not differences and not strict:
            return _SAME
        attributions = [self.attribute(backend, subject, d) for d in differences]
        used = list(dict.fromkeys(a.rule for a in attributions if a.rule is not None))
        expired = [r for r in [*used, *strict] if r.expired()]
        if expired:
            rule = expired[0]
            return Verdict(
                "expired",
                list(differences),
                expired,
                f"known divergence {rule.id} for {backend} ({rule.origin}) expired on {rule.until}: "
                f"re-check it, then remove the rule or move 'until' forward. Reason was: {rule.reason}",
                attributions,
            )
        for attribution in attributions:
            if attribution.rule is not None:
                self.hits[attribution.rule.id] += 1
        fixed = [r for r in strict if r not in used]
        if fixed and not any(a.rule is None for a in attributions):
            rule = fixed[0]
            return Verdict(
                "fixed",
                list(differences),
                fixed,
                f"{subject} no longer shows what rule {rule.id} describes on {backend}; remove "
                f"{subject!r} from the rule ({rule.origin}): {rule.reason}",
                attributions,
            )
        if any(a.rule is None for a in attributions):
            return Verdict("diverged", list(differences), used, describe(backend, subject, attributions), attributions)
        if not attributions:
            return _SAME
        return Verdict("known", list(differences), used, describe(backend, subject, attributions), attributions)

    def subjects_matter(self, backend: str, prefix: str) -> bool:
        """Whether a rule active on ``backend`` lists a subject that one starting with ``prefix`` could match."""
        for rule in self._for_backend(backend)[0]:
            for pattern in rule.subjects:
                head = _GLOB_SPLIT.split(pattern, maxsplit=1)[0]
                if head.startswith(prefix) or prefix.startswith(head):
                    return True
        return False

    def judge_alike(
        self, backend: str, subject: str, differences: Sequence[Difference], memo: dict[Any, Verdict], key: Any = None
    ) -> Verdict:
        """:meth:`judge` for subjects no rule names (:meth:`subjects_matter` is false): a "known" verdict
        depends only on the differences and their contexts, so it is kept in ``memo`` and reused (its
        rule hits counted again). Why: a long trace repeats the same known difference thousands of times.
        A reused verdict's ``message`` names the subject it was first made for (``verdict.subject``)."""
        if key is None:  # the caller may give a cheaper key that identifies the same (differences, contexts)
            key = tuple((d, d.context) for d in differences)
        verdict = self.remembered(memo, key)
        if verdict is not None:
            return verdict
        verdict = self.judge(backend, subject, differences)
        if verdict.status == "known" and len(memo) < 4096:
            verdict.subject = subject
            memo[key] = verdict
        return verdict

    def remembered(self, memo: dict[Any, Verdict], key: Any) -> Verdict | None:
        """The "known" verdict :meth:`judge_alike` kept under ``key``, its rule hits counted again
        (``None``: not seen yet). Why: asked first, a caller need not build what judging would need."""
        verdict = memo.get(key)
        if verdict is not None:
            for attribution in verdict.attributions:
                self.hits[attribution.rule.id] += 1  # type: ignore[union-attr]  # known: every one has a rule
        return verdict

    def stale(self) -> list[Rule]:
        """Rules that could have applied in this process (their backend ran) and matched nothing."""
        return [r for r in self.entries if r.id in self.applicable and not self.hits[r.id] and not r.strict]


def most_severe_first(attributions: Iterable[Attribution]) -> list[Attribution]:
    """Unknown before known within a severity; stable otherwise."""
    return sorted(attributions, key=lambda a: (RANK[a.severity], a.rule is not None))


def step_rank(attributions: Iterable[Attribution]) -> tuple[int, int]:
    """Sort key of a diverging step in a failure message: its most severe *unknown* difference,
    then its most severe difference of any kind. Why: the unknowns are what failed the run; a
    known (accepted) data difference on the same step must not put it ahead of an unknown one.
    Replay reports and redirect/compare mode both order by this, so their messages agree.
    """
    ranks = [(RANK[a.severity], a.rule is not None) for a in attributions]
    unknown = [rank for rank, known in ranks if not known]
    return (min(unknown, default=len(RANK)), min((rank for rank, _ in ranks), default=len(RANK)))


def summarize(attributions: Iterable[Attribution]) -> str:
    """``3 data (2 unknown; known: libsql.x), 41 metadata (known: libsql.rowcount-after-select)``."""
    by_severity: dict[str, list[Attribution]] = {}
    for a in attributions:
        by_severity.setdefault(a.severity, []).append(a)
    parts = []
    for severity in SCALE:
        group = by_severity.get(severity)
        if not group:
            continue
        unknown = sum(1 for a in group if a.rule is None)
        known = list(dict.fromkeys(a.rule.id for a in group if a.rule is not None))
        notes = ([f"{unknown} unknown"] if unknown else []) + ([f"known: {', '.join(known)}"] if known else [])
        parts.append(f"{len(group)} {severity}" + (f" ({'; '.join(notes)})" if notes else ""))
    return ", ".join(parts)


def reason_lines(by_reason: dict[str, list[str]], cut: Container[str] = ()) -> str:
    """One line per known-divergence reason with the first five steps it explains: ``reason [seq 3, 8 ...]``
    (``...`` past five, or for a reason in ``cut`` whose later steps were only counted). The xfail reason of
    replay reports and of redirect/compare mode alike; reports count the reasons per line."""
    return "\n".join(
        f"{reason} [seq {', '.join(seqs[:5])}{' ...' if len(seqs) > 5 or reason in cut else ''}]"
        for reason, seqs in by_reason.items()
    )


def describe(backend: str, subject: str, attributions: Sequence[Attribution]) -> str:
    lines = [f"{subject} diverges on {backend} from the reference: {summarize(attributions)}"]
    lines.extend(f"  {a.label()}" for a in most_severe_first(attributions))
    return "\n".join(lines)


def root_causes(items: Iterable[tuple[Any, Attribution]]) -> list[dict[str, Any]]:
    """``(seq, attribution)`` pairs grouped by rule (unknown ones by aspect), most severe first."""
    groups: dict[tuple[str | None, str, str], dict[str, Any]] = {}
    for seq, a in items:
        key = (a.rule_id, a.severity, "" if a.rule is not None else a.difference.aspect)
        group = groups.get(key)
        if group is None:
            group = groups[key] = {"rule": a.rule_id, "severity": a.severity, "count": 0, "first_seq": seq}
            if a.rule is None:
                group["aspect"] = a.difference.aspect
        group["count"] += 1
    return sorted(groups.values(), key=lambda g: (RANK[g["severity"]], g["rule"] is not None))


def triage(
    pairs: Sequence[tuple[Any, Attribution]],
    sql: Mapping[Any, str | None],
    causes: Iterable[tuple[Any, Attribution]] | None = None,
) -> dict[str, Any]:
    """``differences`` (seq, aspect, severity, rule, expected, actual, sql) and ``root_causes``:
    the machine-readable shape shared by ``replay --json``, conformance cases and redirected tests."""
    differences = [
        {
            "seq": seq,
            "aspect": a.difference.aspect,
            "severity": a.severity,
            "rule": a.rule_id,
            "expected": a.difference.expected,
            "actual": a.difference.actual,
            "relation": a.difference.relation,
            "sql": sql.get(seq) or None,
            "message": a.difference.message,
        }
        for seq, a in pairs
    ]
    return {"differences": differences, "root_causes": root_causes(pairs if causes is None else causes)}
