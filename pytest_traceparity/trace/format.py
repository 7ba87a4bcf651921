"""Trace format v1: JSON Lines, one header line, one event per line, one end line.

Why a line format: traces of real workloads get large, so both sides stream; a diff of
a re-recorded trace is reviewable line by line; a truncated file is detected by its
missing end line. Values travel in the typed encoding of
:mod:`pytest_traceparity.values` so i64 beyond 2**53, blobs and non-finite
floats survive JSON.

::

    {"format":"traceparity-trace","version":1,"source":{"command":[...]}}
    {"seq":1,"conn":1,"op":"open","db":"db1","target":"app.db","driver":"sqlite3"}
    {"seq":2,"conn":1,"op":"execute","sql":"INSERT INTO t VALUES (?)","params":[{"int":"1"}]}
    {"seq":3,"conn":1,"op":"executemany","sql":"...","params":[[...],[...]]}
    {"seq":4,"conn":1,"op":"begin","mode":"DEFERRED"}
    {"seq":5,"conn":1,"op":"commit"}
    {"end":true,"events":5}
"""

from __future__ import annotations

import base64
import json
import json.scanner
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import REGENERATE_HINT as REGENERATE_HINT
from ..errors import TraceFormatError as TraceFormatError
from ..values import SqlValue, decode_value, encode_params

FORMAT = "traceparity-trace"
VERSION = 1
SUPPORTED_VERSIONS = (1,)

OPS = ("open", "execute", "executemany", "executescript", "begin", "commit", "rollback", "sync", "close", "register")
REGISTER_KINDS = ("function", "aggregate", "window", "collation")
SQL_OPS = ("execute", "executemany", "executescript")
BEGIN_MODES = ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")


_EVENT_KEYS = {
    "seq",
    "conn",
    "op",
    "db",
    "target",
    "driver",
    "sql",
    "params",
    "mode",
    "error",
    "seed",
    "kind",
    "name",
    "arity",
    "rowcount",
    "fresh",
}


@dataclass
class TraceHeader:
    version: int = VERSION
    source: dict[str, Any] = field(default_factory=dict)
    recorded_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": FORMAT, "version": self.version, "source": self.source}
        if self.recorded_at is not None:
            data["recorded_at"] = self.recorded_at
        return data


@dataclass
class Event:
    """One recorded call. ``params`` is decoded; ``many`` holds executemany's batches."""

    seq: int
    conn: int
    op: str
    sql: str | None = None
    params: tuple[SqlValue, ...] | dict[str, SqlValue] = ()
    many: list[tuple[SqlValue, ...] | dict[str, SqlValue]] | None = None
    db: str | None = None
    target: str | None = None
    driver: str | None = None
    mode: str | None = None
    error: dict[str, Any] | None = None
    seed: dict[str, Any] | None = None  # open: content of a database that existed before recording
    fresh: bool = False  # open: the program deleted this database's file since its last use
    kind: str | None = None  # register: function / aggregate / window / collation
    name: str | None = None  # register: the registered name
    arity: int | None = None  # register: argument count (-1: any)
    rowcount: int | None = None  # execute/executemany of INSERT/UPDATE/DELETE: what the program saw
    line: int = 0

    def short(self, limit: int = 160) -> str:
        """One line for messages: the SQL (or the op) trimmed to ``limit``."""
        text = " ".join((self.sql or self.op.upper()).split())
        if self.op == "begin":
            text = f"BEGIN {self.mode or 'DEFERRED'} (implicit)"
        elif self.op == "register":
            text = f"register {self.kind} {self.name}/{self.arity}"
        return text if len(text) <= limit else text[: limit - 3] + "..."


def _stdlib_loads(text: str) -> Any:
    """``json.loads`` of one newline-terminated line through the C scanner directly."""
    try:
        value, end = _SCAN(text, 0)
    except (StopIteration, ValueError):
        return json.loads(text)
    return value if end == len(text) - 1 and text[end] == "\n" else json.loads(text)


_SCAN: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_fast_loads: Callable[[str], Any] | None
_FAST_ERRORS: tuple[type[Exception], ...] = (ValueError,)
try:  # a long trace is mostly parsing JSON lines: msgspec does it about three times as fast as the stdlib
    import msgspec

    _fast_loads = msgspec.json.Decoder().decode
    _FAST_ERRORS = (msgspec.MsgspecError, ValueError)
except ImportError:  # pragma: no cover - msgspec is a dependency; a platform without its wheel still works
    _fast_loads = None


_EXECUTE = '"op":"execute"'
_execute_decode: Callable[[str], Any] | None = None
_UNSET: Any = None
if _fast_loads is not None:

    class _ExecuteLine(msgspec.Struct, forbid_unknown_fields=True):
        """An execute event as the rules accept it (a key outside the format, a wrong type: not decoded)."""

        seq: int
        conn: int
        op: str
        sql: str
        params: list[Any] | msgspec.UnsetType = msgspec.UNSET  # absent: no parameters; null: not decoded
        rowcount: int | None = None
        error: dict[str, Any] | None = None
        # allowed on any event (the rules ignore them on an execute)
        db: Any = None
        target: Any = None
        driver: Any = None
        mode: Any = None
        seed: Any = None
        kind: Any = None
        name: Any = None
        arity: Any = None
        fresh: Any = None

    _execute_decode = msgspec.json.Decoder(_ExecuteLine).decode
    _UNSET = msgspec.UNSET


def loads_line(text: str) -> Any:
    """``json.loads`` of one line (a long trace is mostly this call). A line msgspec refuses (NaN, a number
    out of a float's range, a lone surrogate, bad JSON) goes to ``json.loads``: same values, same errors."""
    if _fast_loads is not None:
        try:
            return _fast_loads(text)
        except _FAST_ERRORS:
            pass
    return _stdlib_loads(text)


def dumps(obj: dict[str, Any]) -> str:
    """Canonical one-line JSON: fixed separators, non-ASCII kept, insertion order kept."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def event_json(seq: int, conn: int, op: str, **fields: Any) -> dict[str, Any]:
    """An event object with its keys in the canonical order (seq, conn, op, then fields)."""
    data: dict[str, Any] = {"seq": seq, "conn": conn, "op": op}
    for key in (
        "db",
        "target",
        "driver",
        "key",
        "fresh",
        "seed",
        "kind",
        "name",
        "arity",
        "mode",
        "sql",
        "params",
        "rowcount",
        "error",
        "t",
        "w",
    ):
        if fields.get(key) is not None:
            data[key] = fields[key]
    return data


class TraceWriter:
    """Streams a trace to a file; ``close()`` writes the end line that marks it complete."""

    def __init__(self, target: str | os.PathLike[str] | IO[str], header: TraceHeader | None = None) -> None:
        if isinstance(target, (str, os.PathLike)):
            self.path: str | None = str(target)
            self._fh: IO[str] = open(target, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
            self._owned = True
        else:
            self.path = getattr(target, "name", None)
            self._fh = target
            self._owned = False
        self.count = 0
        self.closed = False
        self._fh.write(dumps((header or TraceHeader()).to_json()) + "\n")
        self._fh.flush()

    def write_event(self, op: str, conn: int, *, flush: bool = True, **fields: Any) -> int:
        """Append one event (``params`` already typed-encoded); returns its seq."""
        if op not in OPS:
            raise ValueError(f"unknown trace op {op!r}; expected one of {', '.join(OPS)}")
        self.count += 1
        self._fh.write(dumps(event_json(self.count, conn, op, **fields)) + "\n")
        if flush:
            self._fh.flush()
        return self.count

    def write_raw(self, data: dict[str, Any]) -> None:
        """Append an already-built event, renumbering its seq (used when merging parts)."""
        self.count += 1
        data = {"seq": self.count, **{k: v for k, v in data.items() if k != "seq"}}
        self._fh.write(dumps(data) + "\n")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._fh.write(dumps({"end": True, "events": self.count}) + "\n")
        self._fh.flush()
        if self._owned:
            self._fh.close()


def encode_event_params(op: str, params: Any) -> Any:
    if op == "executemany":
        return [encode_params(p) for p in params]
    return encode_params(params)


class TraceReader:
    """Streams and validates a trace: ``header`` on open, then events one line at a time.

    Iterating raises :class:`TraceFormatError` at the first bad line, and at the end
    when the end line is missing (a truncated or interrupted recording).
    """

    def __init__(self, path: str | os.PathLike[str], *, require_end: bool = True) -> None:
        self.path = Path(path)
        self.require_end = require_end
        self.header = self._read_header()
        self.events_read = 0

    def _fail(self, line: int | None, message: str, field_name: str | None = None) -> TraceFormatError:
        return TraceFormatError(self.path, line, message, field_name=field_name)

    def _open(self) -> IO[str]:
        try:
            return self.path.open("r", encoding="utf-8", newline="")
        except FileNotFoundError:
            raise TraceFormatError(
                self.path, None, "no such trace file", hint="check the path (or --traces GLOB)"
            ) from None
        except IsADirectoryError:
            raise TraceFormatError(
                self.path, None, "is a directory, not a trace file", hint="give a .jsonl trace file"
            ) from None
        except OSError as exc:
            raise TraceFormatError(
                self.path, None, f"cannot read: {exc.strerror}", hint="check the file's permissions"
            ) from None

    def _parse(self, text: str, lineno: int) -> dict[str, Any]:
        if not text.endswith("\n"):
            raise self._fail(lineno, "the last line is incomplete (the trace is truncated)")
        try:
            data = loads_line(text)
        except json.JSONDecodeError as exc:
            raise self._fail(lineno, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        except UnicodeDecodeError:  # pragma: no cover - decoding happens while reading
            raise self._fail(lineno, "not UTF-8 text") from None
        if not isinstance(data, dict):
            raise self._fail(lineno, f"expected a JSON object, got {type(data).__name__}")
        return data

    def _read_header(self) -> TraceHeader:
        with self._open() as fh:
            try:
                first = fh.readline()
            except UnicodeDecodeError:
                raise self._fail(1, "not UTF-8 text (is this a trace file?)") from None
        if not first:
            raise self._fail(1, "empty file, expected a trace header line")
        data = self._parse(first, 1)
        if data.get("format") != FORMAT:
            raise self._fail(1, f"expected {FORMAT!r}, got {data.get('format')!r} (is this a trace file?)", "format")
        version = data.get("version")
        if version not in SUPPORTED_VERSIONS:
            raise TraceFormatError(
                self.path,
                1,
                f"unknown trace format version {version!r}; this pytest-traceparity reads "
                f"version(s) {', '.join(map(str, SUPPORTED_VERSIONS))}",
                field_name="version",
                hint="upgrade pytest-traceparity, or re-record the trace with this version",
            )
        source = data.get("source", {})
        if not isinstance(source, dict):
            raise self._fail(1, "must be an object", "source")
        recorded_at = data.get("recorded_at")
        if recorded_at is not None and not isinstance(recorded_at, str):
            raise self._fail(1, "must be a string", "recorded_at")
        return TraceHeader(version=version, source=source, recorded_at=recorded_at)

    def __iter__(self) -> Iterator[Event]:
        expected_seq = 1
        opened: dict[int, str] = {}
        closed: set[int] = set()
        ended = False
        with self._open() as fh:
            lineno = 0
            while True:
                try:
                    text = fh.readline()
                except UnicodeDecodeError:
                    raise self._fail(lineno + 1, "not UTF-8 text") from None
                if not text:
                    break
                lineno += 1
                if lineno == 1:
                    continue
                if ended:
                    if text.strip():
                        raise self._fail(lineno, "content after the end line")
                    continue
                event = self._execute_line(text, lineno, expected_seq, opened, closed) if _EXECUTE in text else None
                if event is not None:  # the usual line, decoded and checked in one go
                    expected_seq += 1
                    self.events_read += 1
                    yield event
                    continue
                try:  # _parse's usual case, inlined
                    data = loads_line(text)
                    if text[-1] != "\n" or type(data) is not dict:
                        raise ValueError
                except ValueError:
                    if text.isspace():
                        raise self._fail(lineno, "blank line inside the trace") from None
                    data = self._parse(text, lineno)
                if "end" in data:
                    count = data.get("events")
                    if data.get("end") is not True or count != expected_seq - 1:
                        raise self._fail(
                            lineno, f"end line says {count!r} events but {expected_seq - 1} were read", "events"
                        )
                    ended = True
                    continue
                event = self._event(data, lineno, expected_seq, opened, closed)
                expected_seq += 1
                self.events_read += 1
                yield event
        if not ended and self.require_end:
            raise self._fail(
                lineno + 1 if lineno else None,
                f"missing end line after {expected_seq - 1} event(s): the trace is truncated or "
                "the recording was interrupted",
            )

    def _execute_line(
        self, text: str, lineno: int, expected_seq: int, opened: dict[int, str], closed: set[int]
    ) -> Event | None:
        """An execute line that passes every rule, decoded straight into its fields by msgspec; ``None`` for
        anything else (another op, a broken rule, params by name): the dict path then checks it and names
        the first problem exactly as before."""
        if _execute_decode is None:
            return None
        try:
            line = _execute_decode(text)
        except _FAST_ERRORS:
            return None
        conn = line.conn
        db = opened.get(conn)
        if line.seq != expected_seq or line.op != "execute" or db is None or conn in closed or text[-1] != "\n":
            return None
        raw = line.params
        params = () if raw is _UNSET else _fast_values(raw)
        if params is None:
            return None
        return Event(
            line.seq, conn, "execute", line.sql, params, None, db, rowcount=line.rowcount, error=line.error, line=lineno
        )

    def _event(
        self, data: dict[str, Any], lineno: int, expected_seq: int, opened: dict[int, str], closed: set[int]
    ) -> Event:
        """Check one event against the rule tables below (the first broken rule names its field), build it."""
        if not data.keys() <= _EVENT_KEYS:
            unknown = sorted(set(data) - _EVENT_KEYS)
            raise self._fail(lineno, f"unknown key(s) {unknown}", unknown[0])
        seq: Any = data.get("seq")
        conn: Any = data.get("conn")
        op: Any = data.get("op")
        if type(seq) is not int or seq != expected_seq or type(conn) is not int or conn < 1 or op not in OPS:
            self._check(_HEAD_RULES, data, lineno, expected_seq)  # raises, naming the first bad field
        if op == "open":
            return self._open_event(data, lineno, expected_seq, opened, closed)
        db = opened.get(conn)
        if db is None:
            raise self._fail(lineno, f"connection {conn} is used before its 'open' event", "conn")
        if conn in closed:
            raise self._fail(lineno, f"connection {conn} is used after its 'close' event", "conn")
        sql, rowcount, error = data.get("sql"), data.get("rowcount"), data.get("error")
        if op == "execute" and type(sql) is str:  # the usual event: the same rules, asked only when one fails
            params = self._params(data.get("params", _NO_PARAMS), lineno, "params")
            if not ((rowcount is None or type(rowcount) is int) and (error is None or type(error) is dict)):
                self._check(_TAIL, data, lineno, expected_seq)
            return Event(seq, conn, op, sql, params, None, db, rowcount=rowcount, error=error, line=lineno)
        before, after = _OP_RULES[op]
        self._check(before, data, lineno, expected_seq)
        event = Event(seq=seq, conn=conn, op=op, sql=sql, db=db, line=lineno)
        fill = _FILL.get(op)
        if fill is not None:
            fill(self, event, data, lineno)
        if op == "close":
            closed.add(conn)
        self._check(after, data, lineno, expected_seq)
        event.rowcount, event.error = rowcount, error
        return event

    def _open_event(
        self, data: dict[str, Any], lineno: int, expected_seq: int, opened: dict[int, str], closed: set[int]
    ) -> Event:
        conn = data["conn"]
        if conn in opened or conn in closed:
            raise self._fail(lineno, f"connection {conn} is opened twice", "conn")
        self._check(_OPEN_RULES, data, lineno, expected_seq)
        opened[conn] = data["db"]
        return Event(
            seq=data["seq"],
            conn=conn,
            op="open",
            db=data["db"],
            target=data["target"],
            driver=data["driver"],
            seed=data.get("seed"),
            fresh=data.get("fresh", False),
            line=lineno,
        )

    def _check(self, rules: tuple[_Rule, ...], data: dict[str, Any], lineno: int, expected_seq: int) -> None:
        """Raise for the first rule ``data`` breaks (rules run in order, so the message names one field)."""
        for key, default, check, message in rules:
            value = data.get(key, default)
            if not check(value, expected_seq):
                raise self._fail(lineno, message.format(value=value, expected=expected_seq, op=data.get("op")), key)

    def _params(self, raw: Any, lineno: int, where: str) -> tuple[SqlValue, ...] | dict[str, SqlValue]:
        fast = _fast_values(raw) if type(raw) is list else None
        return fast if fast is not None else self._slow_params(raw, lineno, where)  # the slow way names the value

    def _slow_params(self, raw: Any, lineno: int, where: str) -> tuple[SqlValue, ...] | dict[str, SqlValue]:
        if isinstance(raw, list):
            values = []
            for index, item in enumerate(raw):
                try:
                    values.append(decode_value(item))
                except (ValueError, TypeError) as exc:
                    raise self._fail(lineno, str(exc), f"{where}[{index}]") from None
            return tuple(values)
        if isinstance(raw, dict):
            named = {}
            for key, item in raw.items():
                try:
                    named[key] = decode_value(item)
                except (ValueError, TypeError) as exc:
                    raise self._fail(lineno, str(exc), f"{where}.{key}") from None
            return named
        raise self._fail(lineno, f"must be a list or an object, got {type(raw).__name__}", where)


# -- the event rules: (key, default when absent, check(value, expected seq), message) ---------------------
_Rule = tuple[str, Any, Callable[[Any, int], bool], str]
_ABSENT = object()
_NO_PARAMS: list[Any] = []


# what each op adds to its event once its rules passed (params are decoded here, naming a bad value)
def _fill_execute(reader: TraceReader, event: Event, data: dict[str, Any], lineno: int) -> None:
    event.params = reader._params(data.get("params", _NO_PARAMS), lineno, "params")


def _fill_executemany(reader: TraceReader, event: Event, data: dict[str, Any], lineno: int) -> None:
    event.many = [reader._params(p, lineno, f"params[{i}]") for i, p in enumerate(data["params"])]


def _fill_begin(reader: TraceReader, event: Event, data: dict[str, Any], lineno: int) -> None:
    event.mode = data.get("mode", "DEFERRED")


def _fill_register(reader: TraceReader, event: Event, data: dict[str, Any], lineno: int) -> None:
    event.kind, event.name, event.arity = data["kind"], data["name"], data.get("arity")


_FILL: dict[str, Callable[[TraceReader, Event, dict[str, Any], int], None]] = {
    "execute": _fill_execute,
    "executemany": _fill_executemany,
    "begin": _fill_begin,
    "register": _fill_register,
}


def _nonempty_str(value: Any, _: int) -> bool:
    return isinstance(value, str) and value != ""


def _optional_int(value: Any, _: int) -> bool:
    return value is None or type(value) is int


def _one_of(values: tuple[str, ...]) -> tuple[Callable[[Any, int], bool], str]:
    return (lambda value, _: value in values), f"must be one of {', '.join(values)}, got {{value!r}}"


_HEAD_RULES: tuple[_Rule, ...] = (
    ("seq", None, lambda v, _: type(v) is int, "must be an integer, got {value!r}"),
    (
        "seq",
        None,
        lambda v, expected: v == expected,
        "expected {expected} (events are numbered 1, 2, 3 ...), got {value}",
    ),
    ("conn", None, lambda v, _: type(v) is int and v >= 1, "must be a positive integer, got {value!r}"),
    ("op", None, lambda v, _: v in OPS, "unknown op {value!r}; expected one of " + ", ".join(OPS)),
)
_OPEN_RULES: tuple[_Rule, ...] = (
    *((key, None, _nonempty_str, "must be a non-empty string") for key in ("db", "target", "driver")),
    ("seed", None, lambda v, _: v is None or isinstance(v, dict), "must be an object"),
    ("fresh", False, lambda v, _: isinstance(v, bool), "must be true or false, got {value!r}"),
)
_SQL: _Rule = ("sql", None, lambda v, _: isinstance(v, str), "op {op!r} needs an SQL string")
_NO_SQL: _Rule = ("sql", _ABSENT, lambda v, _: v is _ABSENT, "op {op!r} takes no SQL")
_NO_PARAMS_RULE: _Rule = ("params", _ABSENT, lambda v, _: v is _ABSENT, "op {op!r} takes no params")
_TAIL: tuple[_Rule, ...] = (
    ("rowcount", None, _optional_int, "must be an integer, got {value!r}"),
    ("error", None, lambda v, _: v is None or isinstance(v, dict), "must be an object"),
)
# per op: rules checked before its params are decoded, and after (so the first problem is reported first)
_OP_RULES: dict[str, tuple[tuple[_Rule, ...], tuple[_Rule, ...]]] = {
    op: ((_NO_SQL, _NO_PARAMS_RULE, *_TAIL), ()) for op in OPS
}
_OP_RULES["execute"] = ((_SQL,), _TAIL)
_OP_RULES["executemany"] = (
    (_SQL, ("params", None, lambda v, _: isinstance(v, list), "executemany needs a list of parameter sets")),
    _TAIL,
)
_OP_RULES["executescript"] = ((_SQL, _NO_PARAMS_RULE, *_TAIL), ())
_OP_RULES["register"] = (
    (
        _NO_SQL,
        _NO_PARAMS_RULE,
        ("kind", None, *_one_of(REGISTER_KINDS)),
        ("name", None, _nonempty_str, "must be a non-empty string"),
        ("arity", None, _optional_int, "must be an integer, got {value!r}"),
        *_TAIL,
    ),
    (),
)
_OP_RULES["begin"] = ((_NO_SQL, _NO_PARAMS_RULE, ("mode", "DEFERRED", *_one_of(BEGIN_MODES)), *_TAIL), ())


def _fast_values(raw: list[Any]) -> tuple[SqlValue, ...] | None:
    """:func:`~pytest_traceparity.values.decode_value` of each well-formed typed value, in one call (``None``: one
    is not well formed; the caller then decodes them one by one, naming the bad one)."""
    out: list[SqlValue] = []
    append = out.append
    for item in raw:
        if type(item) is not dict or len(item) != 1:
            return None
        for key, value in item.items():
            if type(value) is str:
                if key == "text":
                    append(value)
                    continue
                if key == "int":
                    try:
                        append(int(value))
                    except ValueError:
                        return None
                    continue
                if key == "real":
                    try:
                        append(float(value))
                    except ValueError:
                        return None
                    continue
                if key == "blob":
                    try:
                        append(base64.b64decode(value, validate=True))
                    except ValueError:  # binascii.Error
                        return None
                    continue
            elif key == "null":
                append(None)
                continue
            return None
    return tuple(out)


def validate(path: str | os.PathLike[str]) -> int:
    """Read a whole trace (streamed) and return its event count; raises on the first problem."""
    reader = TraceReader(path)
    for _ in reader:
        pass
    return reader.events_read
