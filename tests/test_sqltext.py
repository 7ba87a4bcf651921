"""The one SQL tokenizer: statement kinds after comments, ';' and BOMs; script splitting."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_traceparity.sqltext import access, is_transaction_control, split, statement_kind


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("BEGIN", "BEGIN"),
        ("-- start\nBEGIN", "BEGIN"),
        ("; ;\n begin immediate", "BEGIN"),
        ("\ufeffselect 1", "SELECT"),
        ("/* a */ /* b */ COMMIT", "COMMIT"),
        ("/* unterminated", ""),
        ("", ""),
        ("'BEGIN'", ""),
        ("  release sp", "RELEASE"),
    ],
)
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


def test_case_end_inside_a_trigger_body_does_not_end_the_trigger() -> None:
    trigger = (
        "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET x = CASE WHEN 1 THEN 2 END; DELETE FROM t; END"
    )
    assert split(f"{trigger}; SELECT 1") == [trigger, "SELECT 1"]


def test_access_reads_and_writes() -> None:
    assert access("  -- hi\n select 1") == "read"
    assert access("/* x */ WITH a AS (SELECT 1) SELECT * FROM a") == "read"
    assert access("WITH a AS (SELECT 'insert') SELECT * FROM a") == "read", "a keyword in a string is no write"
    assert access("WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a") == "write"
    assert access("\ufeff;PRAGMA table_info(t)") == "read"
    assert access("COMMIT") == "write"
    assert access("") == "write"


# Pieces of SQL text that make SQLite's lexer work: quoted text holding ';', '--' and '/*', comments
# holding ';' and quotes, and bracketed/backquoted identifiers. None of them ends a statement.
_TEXT = st.text(alphabet="ab ;'\"-/*\n[]`", max_size=8)
_PIECES = st.one_of(
    st.sampled_from(["x", "1", "(", ")", ",", "+", "END", "BEGIN", "CASE", "WHEN", "THEN", "ELSE"]),
    _TEXT.map(lambda t: "'" + t.replace("'", "''") + "'"),
    _TEXT.map(lambda t: '"' + t.replace('"', '""') + '"'),
    _TEXT.map(lambda t: "[" + t.replace("]", "") + "]"),
    _TEXT.map(lambda t: "`" + t.replace("`", "``") + "`"),
    _TEXT.map(lambda t: "/*" + t.replace("*/", "") + "*/"),
    _TEXT.map(lambda t: "--" + t.replace("\n", "") + "\n"),
)
_STATEMENT = st.one_of(
    st.lists(_PIECES, max_size=6).map(lambda ps: "SELECT " + " ".join(ps)),
    st.lists(_PIECES, max_size=4).map(
        lambda ps: "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT " + " ".join(ps) + "; DELETE FROM t; END"
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_STATEMENT, min_size=1, max_size=4), st.sampled_from(["", " ", "\n-- tail\n", ";"]))
def test_split_agrees_with_sqlite_complete_statement(statements: list[str], tail: str) -> None:
    """Every part ``split`` returns is one statement by SQLite's own lexer (``sqlite3.complete_statement``):
    complete once terminated, and no ``;`` inside it ends a statement early (trigger bodies stay whole)."""
    parts = split(";\n".join(statements) + tail)
    assert len(parts) == len(statements)
    for part in parts:
        assert sqlite3.complete_statement(part + "\n;"), part
        early = [i for i, ch in enumerate(part) if ch == ";" and sqlite3.complete_statement(part[: i + 1])]
        assert early == [], part


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("\ufeffSELECT 1", "select"),
        ("VALUES(1)", "select"),
        ("; begin", "transaction"),
        ("/* c */ WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", "dml"),
        ("with a as (select 'insert') select * from a", "select"),
        ("PRAGMA user_version", "pragma"),
        ("", "other"),
    ],
)
def test_rule_statement_kinds_come_from_the_one_tokenizer(sql: str, kind: str) -> None:
    """compare.sql_kind reads sqltext's tokens: a BOM, a leading ';' or a '(' no longer hide the keyword."""
    from pytest_traceparity.compare import sql_kind

    assert sql_kind(sql) == kind
