"""The one SQL tokenizer: statement kinds after comments, ';' and BOMs; script splitting."""

from __future__ import annotations

import pytest

from pytest_traceparity.sqltext import is_transaction_control, split, statement_kind


@pytest.mark.parametrize(("sql", "kind"), [
    ("BEGIN", "BEGIN"),
    ("-- start\nBEGIN", "BEGIN"),
    ("; ;\n begin immediate", "BEGIN"),
    ("\ufeffselect 1", "SELECT"),
    ("/* a */ /* b */ COMMIT", "COMMIT"),
    ("/* unterminated", ""),
    ("", ""),
    ("'BEGIN'", ""),
    ("  release sp", "RELEASE"),
])
def test_statement_kind(sql: str, kind: str) -> None:
    assert statement_kind(sql) == kind


def test_transaction_control_ignores_keywords_inside_strings_and_comments() -> None:
    assert is_transaction_control(";\ufeff/* x */ BEGIN IMMEDIATE")
    assert not is_transaction_control("INSERT INTO t VALUES ('BEGIN')")
    assert not is_transaction_control("-- BEGIN\nINSERT INTO t VALUES (1)")


def test_split_keeps_trigger_bodies_and_quoted_semicolons() -> None:
    script = """
    CREATE TABLE t(x);
    INSERT INTO t VALUES ('a;b');
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO t VALUES (1); UPDATE t SET x = 2; END;
    -- trailing comment
    ;;
    """
    parts = split(script)
    assert len(parts) == 3
    assert parts[1] == "INSERT INTO t VALUES ('a;b')"
    assert parts[2].startswith("CREATE TRIGGER") and parts[2].endswith("END")
