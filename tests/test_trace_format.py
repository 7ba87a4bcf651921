"""Trace format v1: typed values survive JSON, and every bad file is named by file:line and field."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pytest_traceparity.trace.format import (
    TraceFormatError,
    TraceHeader,
    TraceReader,
    TraceWriter,
    validate,
)
from pytest_traceparity.values import encode_params

HEADER = '{"format":"traceparity-trace","version":1,"source":{}}\n'
OPEN = '{"seq":1,"conn":1,"op":"open","db":"db1","target":"app.db","driver":"sqlite3"}\n'


def write(path: Path, *lines: str) -> Path:
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_round_trip_keeps_exact_types(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    awkward = (2**53 + 1, -(2**63), 2**63 - 1, b"\x00\xffblob", float("inf"), float("-inf"), -0.0, None, "héllo\n")
    writer = TraceWriter(path, TraceHeader(source={"command": ["x"]}))
    writer.write_event("open", 1, db="db1", target=":memory:", driver="sqlite3")
    writer.write_event("begin", 1, mode="IMMEDIATE")
    writer.write_event("execute", 1, sql="INSERT INTO t VALUES (?,?,?,?,?,?,?,?,?)", params=encode_params(awkward))
    writer.write_event("execute", 1, sql="SELECT :a", params=encode_params({"a": float("nan")}))
    writer.write_event("executemany", 1, sql="INSERT INTO t VALUES (?)", params=[encode_params((i,)) for i in range(3)])
    writer.write_event("commit", 1)
    writer.close()

    reader = TraceReader(path)
    assert reader.header.source == {"command": ["x"]}
    events = list(reader)
    assert [e.op for e in events] == ["open", "begin", "execute", "execute", "executemany", "commit"]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    params = events[2].params
    assert isinstance(params, tuple)
    assert params[:4] == awkward[:4] and isinstance(params[0], int)
    assert params[4] == math.inf and params[5] == -math.inf
    assert isinstance(params[6], float) and math.copysign(1.0, params[6]) == -1.0  # -0.0 kept apart from 0.0
    assert params[7:] == (None, "héllo\n")
    named = events[3].params
    assert isinstance(named, dict) and isinstance(named["a"], float) and math.isnan(named["a"])
    assert events[4].many == [(0,), (1,), (2,)]
    assert events[1].mode == "IMMEDIATE"
    assert events[2].db == "db1"
    assert validate(path) == 6
    # the end line records the count; the file ends with a newline
    assert json.loads(path.read_text().splitlines()[-1]) == {"end": True, "events": 6}


@pytest.mark.parametrize(
    ("lines", "line", "needle"),
    [
        ([OPEN, "{not json\n"], 3, "not valid JSON"),
        ([OPEN, '{"seq":3,"conn":1,"op":"close"}\n'], 3, "field 'seq': expected 2"),
        ([OPEN, '{"seq":2,"conn":1,"op":"explode"}\n'], 3, "field 'op': unknown op 'explode'"),
        (['{"seq":1,"conn":2,"op":"execute","sql":"SELECT 1"}\n'], 2, "field 'conn': connection 2 is used before"),
        (
            [OPEN, '{"seq":2,"conn":1,"op":"execute","sql":"SELECT ?","params":[{"int":5}]}\n'],
            3,
            "field 'params[0]': 'int' must be a decimal string",
        ),
        (
            [OPEN, '{"seq":2,"conn":1,"op":"execute","sql":"SELECT ?","params":[{"blob":"***"}]}\n'],
            3,
            "field 'params[0]'",
        ),
        ([OPEN, '{"seq":2,"conn":1,"op":"execute"}\n'], 3, "field 'sql': op 'execute' needs an SQL string"),
        (
            [OPEN, '{"seq":2,"conn":1,"op":"executemany","sql":"x","params":{"a":1}}\n'],
            3,
            "field 'params': executemany needs a list",
        ),
        ([OPEN, '{"seq":2,"conn":1,"op":"begin","mode":"LAZY"}\n'], 3, "field 'mode'"),
        ([OPEN, '{"seq":2,"conn":1,"op":"commit","color":"red"}\n'], 3, "unknown key(s) ['color']"),
        (
            [OPEN, '{"seq":2,"conn":1,"op":"close"}\n', '{"seq":3,"conn":1,"op":"commit"}\n'],
            4,
            "used after its 'close'",
        ),
        ([OPEN, '{"end":true,"events":5}\n'], 3, "end line says 5 events but 1 were read"),
        ([OPEN, '{"end":true,"events":1}\n', '{"seq":2,"conn":1,"op":"close"}\n'], 4, "content after the end line"),
        ([OPEN, "\n"], 3, "blank line"),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path: Path, lines: list[str], line: int, needle: str) -> None:
    path = write(tmp_path / "bad.jsonl", HEADER, *lines)
    with pytest.raises(TraceFormatError) as info:
        validate(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert needle in message
    assert "traceparity record" in message  # says what to do next
    assert info.value.line == line


def test_truncated_last_line(tmp_path: Path) -> None:
    path = write(tmp_path / "cut.jsonl", HEADER, OPEN, '{"seq":2,"conn":1,"op":"exe')
    with pytest.raises(TraceFormatError, match=r"cut\.jsonl:3: the last line is incomplete \(the trace is truncated\)"):
        validate(path)


def test_missing_end_line_is_truncation(tmp_path: Path) -> None:
    path = write(tmp_path / "noend.jsonl", HEADER, OPEN)
    with pytest.raises(TraceFormatError, match=r"noend\.jsonl:3: missing end line after 1 event\(s\)"):
        validate(path)


def test_unknown_version_says_upgrade(tmp_path: Path) -> None:
    path = write(tmp_path / "v9.jsonl", '{"format":"traceparity-trace","version":9}\n')
    with pytest.raises(TraceFormatError) as info:
        TraceReader(path)
    message = str(info.value)
    assert f"{path}:1: field 'version': unknown trace format version 9" in message
    assert "upgrade pytest-traceparity" in message


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "empty file"),
        ('{"format":"something-else","version":1}\n', "field 'format': expected 'traceparity-trace'"),
        ("[1,2]\n", "expected a JSON object"),
    ],
)
def test_bad_header(tmp_path: Path, content: str, needle: str) -> None:
    path = write(tmp_path / "h.jsonl", content)
    with pytest.raises(TraceFormatError, match=f"{path}:1: .*{needle}".replace("(", r"\(").replace("[", r"\[")):
        TraceReader(path)


def test_binary_file_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "bin.jsonl"
    path.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(TraceFormatError, match="not UTF-8"):
        TraceReader(path)
    with pytest.raises(TraceFormatError, match="no such trace file"):
        TraceReader(tmp_path / "absent.jsonl")


def test_reader_streams_one_line_at_a_time(tmp_path: Path) -> None:
    """A bad line far down is only reached when iteration gets there: nothing is read up front."""
    path = tmp_path / "long.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        fh.write(HEADER + OPEN)
        for seq in range(2, 5002):
            fh.write(json.dumps({"seq": seq, "conn": 1, "op": "execute", "sql": "SELECT 1", "params": []}) + "\n")
        fh.write("{broken\n")
    events = iter(TraceReader(path))
    first = next(events)
    assert first.op == "open" and first.line == 2
    seen = 1
    with pytest.raises(TraceFormatError, match=r"long\.jsonl:5003: not valid JSON"):
        for _ in events:
            seen += 1
    assert seen == 5001
