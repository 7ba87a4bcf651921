"""The shipped rules for Turso's engine, turso-sync and SQLAlchemy over libsql: loaded, matched by cause."""

from __future__ import annotations

from pytest_traceparity.compare import Difference, statement_context
from pytest_traceparity.divergences import DivergenceRegistry, builtin_entries

TURSO = ("turso-local", "sqlalchemy-turso", "turso-sync")


def shipped() -> DivergenceRegistry:
    return DivergenceRegistry(builtin_entries())


def test_turso_file_is_loaded_with_the_main_one_and_ids_are_unique() -> None:
    rules = builtin_entries()
    origins = {r.origin.split(" ")[0] for r in rules}
    assert origins == {"pytest_traceparity/known_divergences.toml", "pytest_traceparity/known_divergences_turso.toml"}
    assert len({r.id for r in rules}) == len(rules)
    turso = [r for r in rules if "known_divergences_turso" in r.origin]
    for rule in turso:
        assert rule.subjects or "Do:" in rule.reason, rule.id
        assert not rule.subjects or rule.strict, f"{rule.id}: subject lists must be exact"


def test_refused_feature_is_attributed_by_its_statement_on_an_unseen_workload() -> None:
    diff = Difference(
        "error.unexpected",
        "unexpected error other (Parse error: WITHOUT ROWID tables are an experimental feature)",
        expected="none",
        actual="other",
        context=statement_context("execute", "CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID"),
    )
    for backend in TURSO:
        verdict = shipped().judge(backend, "trace::never-seen#3", [diff])
        assert [a.rule_id for a in verdict.attributions] == ["turso.refuses-without-rowid"]
        assert verdict.attributions[0].severity == "error-new"


def test_lastrowid_rule_does_not_take_an_insert_or_another_value() -> None:
    reg = shipped()
    after_update = Difference(
        "lastrowid.dml", "x", expected="3", actual="None", context=statement_context("execute", "UPDATE t SET v = 1")
    )
    assert reg.attribute("turso-local", "trace::t#1", after_update).rule_id == "turso.lastrowid-none-after-non-insert"
    # a wrong number (not None) after UPDATE is not what the rule describes
    wrong = Difference(
        "lastrowid.dml", "x", expected="3", actual="7", context=statement_context("execute", "UPDATE t SET v = 1")
    )
    assert reg.attribute("turso-local", "trace::t#1", wrong).rule is None


def test_libsql_rules_cover_sqlalchemy_over_libsql() -> None:
    diff = Difference(
        "rows.storage_class",
        "x",
        expected="integer",
        actual="real",
        relation="int-outside-i32-as-real",
        context=statement_context("execute", "SELECT v FROM t"),
    )
    for backend in ("sqlalchemy-libsql", "sqlalchemy-libsql-http"):
        attribution = shipped().attribute(backend, "trace::never-seen#1", diff)
        assert attribution.rule_id == "libsql.int-outside-i32-bound-as-real"
