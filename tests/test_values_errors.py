"""Value and error normalization: the exactness that parity decisions rest on."""

from __future__ import annotations

import json
import math
import sqlite3

import pytest

from pytest_traceparity.errors import DatabaseError, classify_message, dbapi_class, wrap_error
from pytest_traceparity.values import (
    I64_MAX,
    I64_MIN,
    Result,
    canonical,
    decode_params,
    decode_value,
    display,
    encode_params,
    encode_value,
)

VALUES = [
    None,
    0,
    1,
    -1,
    I64_MAX,
    I64_MIN,
    2**53 + 1,
    0.0,
    -0.0,
    1.5,
    1e308,
    math.inf,
    -math.inf,
    "",
    "héllo ☃ 𝄞",
    b"",
    b"\x00\xff" * 10,
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_typed_encoding_round_trips_through_json(value: object) -> None:
    back = decode_value(json.loads(json.dumps(encode_value(value))))
    assert canonical(back) == canonical(value)


def test_nan_round_trips() -> None:
    back = decode_value(json.loads(json.dumps(encode_value(math.nan))))
    assert isinstance(back, float) and math.isnan(back)
    assert canonical(back) == canonical(math.nan)


def test_canonical_separates_what_python_equality_merges() -> None:
    assert canonical(1) != canonical(1.0)
    assert canonical(0.0) != canonical(-0.0)
    assert canonical(True) == canonical(1)
    assert canonical(memoryview(b"ab")) == canonical(b"ab")


def test_display_shows_storage_class() -> None:
    assert display(1) == "1 (integer)"
    assert display(1.0) == "1.0 (real)"
    assert display(None) == "NULL"
    assert "blob" in display(b"x" * 40)


@pytest.mark.parametrize("bad", [{"int": 5}, {"real": 1.0}, {"blob": "@@"}, {"what": 1}, [1], {"int": "1", "x": 1}])
def test_decode_rejects_malformed(bad: object) -> None:
    with pytest.raises(ValueError):
        decode_value(bad)


def test_params_both_styles() -> None:
    assert decode_params(encode_params((1, "a", None))) == (1, "a", None)
    assert decode_params(encode_params({"k": b"\x01"})) == {"k": b"\x01"}


def test_result_json_round_trip() -> None:
    result = Result(columns=("a", "b"), rows=[(I64_MAX, b"\x00")], rowcount=1, lastrowid=7)
    back = Result.from_json(json.loads(json.dumps(result.to_json())))
    assert back == result


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("CREATE TABLE t(a UNIQUE); INSERT INTO t VALUES (1); INSERT INTO t VALUES (1)", "constraint.unique"),
        ("CREATE TABLE t(a PRIMARY KEY); INSERT INTO t VALUES (1); INSERT INTO t VALUES (1)", "constraint.unique"),
        ("CREATE TABLE t(a NOT NULL); INSERT INTO t VALUES (NULL)", "constraint.notnull"),
        ("CREATE TABLE t(a CHECK (a > 0)); INSERT INTO t VALUES (0)", "constraint.check"),
        ("CREATE TABLE t(a INTEGER) STRICT; INSERT INTO t VALUES ('x')", "constraint.datatype"),
        (
            "PRAGMA foreign_keys=ON; CREATE TABLE p(id INTEGER PRIMARY KEY); "
            "CREATE TABLE c(p REFERENCES p(id)); INSERT INTO c VALUES (5)",
            "constraint.foreign_key",
        ),
        ("SELECT * FROM missing", "no_such_table"),
        ("CREATE TABLE t(a); SELECT b FROM t", "no_such_column"),
        ("SELECT nosuchfn(1)", "no_such_function"),
        ("SELEC 1", "syntax"),
        ("CREATE TABLE t(a); CREATE TABLE t(a)", "already_exists"),
        ("COMMIT", "transaction"),
    ],
)
def test_sqlite3_errors_classify(sql: str, kind: str) -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    *setup, last = [s for s in sql.split("; ")]
    for statement in setup:
        conn.execute(statement)
    with pytest.raises(sqlite3.Error) as info:
        conn.execute(last)
    wrapped = wrap_error(info.value, backend="stdlib")
    assert wrapped.kind == kind, str(info.value)
    assert wrapped.exc_type.startswith("sqlite3.")
    assert wrapped.backend == "stdlib"


def test_unknown_message_is_other() -> None:
    assert classify_message("the moon is made of cheese") == "other"


def test_dbapi_class_of_plain_exception_is_its_name() -> None:
    assert dbapi_class(ValueError("x")) == "ValueError"
    assert dbapi_class(sqlite3.IntegrityError("x")) == "IntegrityError"


def test_database_error_str_names_backend_kind_and_type() -> None:
    err = wrap_error(ValueError("UNIQUE constraint failed: t.a"), backend="libsql-local")
    assert isinstance(err, DatabaseError)
    assert str(err) == "constraint.unique [libsql-local]: UNIQUE constraint failed: t.a (raised ValueError)"
    assert err.to_json() == {"kind": "constraint.unique", "dbapi_class": "ValueError", "exc_type": "ValueError"}
