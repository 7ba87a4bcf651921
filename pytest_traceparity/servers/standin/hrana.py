"""Hrana 2/3 over HTTP with the JSON encoding: decoding, batons, streams, responses.

Wire shapes follow docs/HRANA_3_SPEC.md and what sqld actually serializes (for
instance ``step_end.last_insert_rowid`` is a JSON number while
``StmtResult.last_insert_rowid`` is a string, and blobs are base64 without padding).
The whole body is decoded and validated before anything runs, like sqld's serde step:
a malformed request fails as a unit with a 400 and never half-executes.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import ffi
from .database import Database, ProtocolError
from .engine import (
    Cond,
    Program,
    StmtError,
    StmtOutcome,
    StmtSpec,
    check_supported,
    describe,
    eval_cond,
    run_sequence,
    run_statement,
    transaction_timeout,
)
from .streams import Stream, StreamManager

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
MAX_SQL_COUNT = 50
MAX_STORED_SQL_SIZE = 5000
_DECIMAL = re.compile(r"[+-]?[0-9]{1,25}")


# ---------------------------------------------------------------- decoding helpers


def _fail(message: str) -> ProtocolError:
    return ProtocolError(f"Cannot deserialize client message from JSON: {message}", "JSON_DESERIALIZE")


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"{what} must be an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(f"{what} must be an array")
    return value


def _opt_str(obj: dict[str, Any], key: str, what: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise _fail(f"{what}.{key} must be a string or null")
    return value


def _int(value: Any, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(f"{what} must be an integer in [{lo}, {hi}]")
    return value


def _opt_i32(obj: dict[str, Any], key: str, what: str) -> int | None:
    value = obj.get(key)
    return None if value is None else _int(value, f"{what}.{key}", I32_MIN, I32_MAX)


def decode_value(raw: Any, what: str = "value") -> Any:
    obj = _obj(raw, what)
    kind = obj.get("type")
    if kind == "null":
        return None
    if kind == "integer":
        text = obj.get("value")
        if not isinstance(text, str):
            raise _fail(f"{what}.value: expected decimal integer as a string")
        if not _DECIMAL.fullmatch(text):
            raise _fail(f"{what}.value: expected decimal integer as a string")
        number = int(text, 10)
        if not I64_MIN <= number <= I64_MAX:
            raise _fail(f"{what}.value: integer out of 64-bit range")
        return number
    if kind == "float":
        raw_number = obj.get("value")
        if isinstance(raw_number, bool) or not isinstance(raw_number, (int, float)):
            raise _fail(f"{what}.value: expected a number")
        try:
            result = float(raw_number)
        except OverflowError:  # a JSON integer beyond any double
            raise _fail(f"{what}.value: number out of range for a float") from None
        if not math.isfinite(result):
            raise _fail(f"{what}.value: expected a finite number")
        return result
    if kind == "text":
        text = obj.get("value")
        if not isinstance(text, str):
            raise _fail(f"{what}.value: expected a string")
        return text
    if kind == "blob":
        encoded = obj.get("base64")
        if not isinstance(encoded, str):
            raise _fail(f"{what}.base64: expected binary data encoded as base64")
        stripped = encoded.rstrip("=")
        try:
            return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise _fail(f"{what}.base64: expected binary data encoded as base64") from None
    raise _fail(f"{what}.type: unknown value type {kind!r}")


def encode_value(value: Any) -> dict[str, Any]:
    if value is None:
        return {"type": "null"}
    if isinstance(value, int):
        return {"type": "integer", "value": str(value)}
    if isinstance(value, float):
        # serde_json writes non-finite floats as null; so does sqld.
        return {"type": "float", "value": value if math.isfinite(value) else None}
    if isinstance(value, str):
        return {"type": "text", "value": value}
    return {"type": "blob", "base64": base64.b64encode(bytes(value)).decode("ascii").rstrip("=")}


@dataclass
class RawStmt:
    sql: str | None
    sql_id: int | None
    args: list[Any]
    named_args: list[tuple[str, Any]]
    want_rows: bool


def decode_stmt(raw: Any, what: str) -> RawStmt:
    obj = _obj(raw, what)
    args = [decode_value(v, f"{what}.args[{i}]") for i, v in enumerate(_list(obj.get("args", []), "args"))]
    named: list[tuple[str, Any]] = []
    for i, item in enumerate(_list(obj.get("named_args", []), f"{what}.named_args")):
        entry = _obj(item, f"{what}.named_args[{i}]")
        name = entry.get("name")
        if not isinstance(name, str):
            raise _fail(f"{what}.named_args[{i}].name must be a string")
        if "value" not in entry:
            raise _fail(f"{what}.named_args[{i}]: missing field `value`")
        named.append((name, decode_value(entry["value"], f"{what}.named_args[{i}].value")))
    want_rows = obj.get("want_rows")
    if want_rows is not None and not isinstance(want_rows, bool):
        raise _fail(f"{what}.want_rows must be a boolean")
    return RawStmt(
        sql=_opt_str(obj, "sql", what),
        sql_id=_opt_i32(obj, "sql_id", what),
        args=args,
        named_args=named,
        want_rows=True if want_rows is None else want_rows,
    )


def decode_cond(raw: Any, what: str, step_index: int, version: int) -> Cond:
    obj = _obj(raw, what)
    kind = obj.get("type")
    if kind in ("ok", "error"):
        step = _int(obj.get("step"), f"{what}.step", 0, 2**32 - 1)
        if step >= step_index:
            raise ProtocolError("Invalid reference to step in a batch condition", "BATCH_COND_BAD_STEP")
        return Cond(kind, step=step)
    if kind == "not":
        if "cond" not in obj:
            raise _fail(f"{what}: missing field `cond`")
        return Cond("not", children=[decode_cond(obj["cond"], f"{what}.cond", step_index, version)])
    if kind in ("and", "or"):
        conds = _list(obj.get("conds"), f"{what}.conds")
        return Cond(
            kind,
            children=[decode_cond(c, f"{what}.conds[{i}]", step_index, version) for i, c in enumerate(conds)],
        )
    if kind == "is_autocommit":
        if version < 3:
            raise ProtocolError(
                "BatchCond of type `is_autocommit` is only supported in protocol version hrana3 and higher",
                "NOT_SUPPORTED",
            )
        return Cond("is_autocommit")
    raise _fail(f"{what}.type: unknown condition type {kind!r}")


@dataclass
class RawStep:
    cond: Cond | None
    stmt: RawStmt


def decode_batch(raw: Any, what: str, version: int) -> list[RawStep]:
    obj = _obj(raw, what)
    steps = []
    for i, item in enumerate(_list(obj.get("steps"), f"{what}.steps")):
        step = _obj(item, f"{what}.steps[{i}]")
        if "stmt" not in step:
            raise _fail(f"{what}.steps[{i}]: missing field `stmt`")
        cond_raw = step.get("condition")
        cond = None if cond_raw is None else decode_cond(cond_raw, f"{what}.steps[{i}].condition", i, version)
        steps.append(RawStep(cond, decode_stmt(step["stmt"], f"{what}.steps[{i}].stmt")))
    return steps


@dataclass
class Request:
    kind: str
    stmt: RawStmt | None = None
    steps: list[RawStep] = field(default_factory=list)
    sql: str | None = None
    sql_id: int | None = None


_REQUEST_KINDS = (
    "close",
    "execute",
    "batch",
    "sequence",
    "describe",
    "store_sql",
    "close_sql",
    "get_autocommit",
)


def decode_request(raw: Any, what: str, version: int) -> Request:
    obj = _obj(raw, what)
    kind = obj.get("type")
    if kind not in _REQUEST_KINDS:
        raise _fail(f"{what}.type: unknown variant {kind!r}, expected one of {', '.join(_REQUEST_KINDS)}")
    if kind == "execute":
        if "stmt" not in obj:
            raise _fail(f"{what}: missing field `stmt`")
        return Request(kind, stmt=decode_stmt(obj["stmt"], f"{what}.stmt"))
    if kind == "batch":
        if "batch" not in obj:
            raise _fail(f"{what}: missing field `batch`")
        return Request(kind, steps=decode_batch(obj["batch"], f"{what}.batch", version))
    if kind in ("sequence", "describe"):
        return Request(kind, sql=_opt_str(obj, "sql", what), sql_id=_opt_i32(obj, "sql_id", what))
    if kind == "store_sql":
        sql = obj.get("sql")
        if not isinstance(sql, str):
            raise _fail(f"{what}.sql must be a string")
        return Request(kind, sql=sql, sql_id=_int(obj.get("sql_id"), f"{what}.sql_id", I32_MIN, I32_MAX))
    if kind == "close_sql":
        return Request(kind, sql_id=_int(obj.get("sql_id"), f"{what}.sql_id", I32_MIN, I32_MAX))
    if kind == "get_autocommit" and version < 3:
        raise ProtocolError(
            "The `get_autocommit` request is only supported in protocol version hrana3 and higher",
            "NOT_SUPPORTED",
        )
    return Request(kind)


def decode_pipeline(body: Any, version: int) -> tuple[str | None, list[Request]]:
    obj = _obj(body, "request body")
    baton = _opt_str(obj, "baton", "request body")
    if "requests" not in obj:
        raise _fail("missing field `requests`")
    requests = [decode_request(r, f"requests[{i}]", version) for i, r in enumerate(_list(obj["requests"], "requests"))]
    return baton, requests


def decode_cursor(body: Any) -> tuple[str | None, list[RawStep]]:
    obj = _obj(body, "request body")
    baton = _opt_str(obj, "baton", "request body")
    if "batch" not in obj:
        raise _fail("missing field `batch`")
    return baton, decode_batch(obj["batch"], "batch", 3)


# ---------------------------------------------------------------- execution


def stmt_spec(stream: Stream, raw: RawStmt) -> StmtSpec:
    return StmtSpec(
        sql=stream.resolve_sql(raw.sql, raw.sql_id),
        args=raw.args,
        named_args=raw.named_args,
        want_rows=raw.want_rows,
    )


def cols_json(cols: list[ffi.Column]) -> list[dict[str, Any]]:
    return [{"name": c.name, "decltype": c.decltype} for c in cols]


def stmt_result_json(outcome: StmtOutcome) -> dict[str, Any]:
    return {
        "cols": cols_json(outcome.cols),
        "rows": [[encode_value(v) for v in row] for row in outcome.rows],
        "affected_row_count": outcome.affected_row_count,
        "last_insert_rowid": None if outcome.last_insert_rowid is None else str(outcome.last_insert_rowid),
        "replication_index": None,
        "rows_read": outcome.rows_read,
        "rows_written": outcome.rows_written,
        "query_duration_ms": round(outcome.query_duration_ms, 3),
    }


def run_batch(
    stream: Stream,
    steps: list[RawStep],
    on_step: Callable[[int, StmtOutcome | None, StmtError | None], None],
    *,
    limit_response: bool = True,
) -> None:
    """Run the steps in order; ``on_step`` sees each executed step's outcome or error."""
    conn = stream.get_conn()
    specs = [stmt_spec(stream, step.stmt) for step in steps]  # protocol errors before running
    for spec in specs:  # sqld parses the whole batch first: one bad statement fails it all
        check_supported(spec.sql)
    outcomes: list[bool | None] = []
    program = Program(stream.db, conn, limit_response=limit_response)
    for i, step in enumerate(steps):
        if program.timed_out:  # sqld fails every later step of a timed-out program
            outcomes.append(False)
            on_step(i, None, transaction_timeout())
            continue
        enabled = step.cond is None or eval_cond(step.cond, outcomes, conn.autocommit)
        if not enabled:
            # sqld records a skipped step like a failed one (connection/program.rs pushes
            # `enabled`), so `error` on a skipped step is true and `ok` is false.
            outcomes.append(False)
            continue
        try:
            outcome = run_statement(stream.db, conn, specs[i], program)
        except StmtError as err:
            if err.code == "RESPONSE_TOO_LARGE":  # sqld aborts the whole batch
                raise
            outcomes.append(False)
            on_step(i, None, err)
        else:
            outcomes.append(True)
            on_step(i, outcome, None)


def handle_request(stream: Stream, req: Request) -> dict[str, Any]:
    """One stream request; statement errors become ``{"type": "error"}`` results."""
    try:
        return {"type": "ok", "response": _dispatch(stream, req)}
    except StmtError as err:
        return {"type": "error", "error": err.to_json()}


def _dispatch(stream: Stream, req: Request) -> dict[str, Any]:
    kind = req.kind
    if kind == "close":
        stream.close()
        return {"type": "close"}
    if kind == "execute":
        assert req.stmt is not None
        conn = stream.get_conn()
        outcome = run_statement(stream.db, conn, stmt_spec(stream, req.stmt))
        return {"type": "execute", "result": stmt_result_json(outcome)}
    if kind == "batch":
        n = len(req.steps)
        results: list[dict[str, Any] | None] = [None] * n
        errors: list[dict[str, Any] | None] = [None] * n

        def record(i: int, outcome: StmtOutcome | None, err: StmtError | None) -> None:
            if outcome is not None:
                results[i] = stmt_result_json(outcome)
            if err is not None:
                errors[i] = err.to_json()

        run_batch(stream, req.steps, record)
        return {
            "type": "batch",
            "result": {"step_results": results, "step_errors": errors, "replication_index": None},
        }
    if kind == "sequence":
        conn = stream.get_conn()
        run_sequence(stream.db, conn, stream.resolve_sql(req.sql, req.sql_id))
        return {"type": "sequence"}
    if kind == "describe":
        conn = stream.get_conn()
        return {"type": "describe", "result": describe(conn, stream.resolve_sql(req.sql, req.sql_id))}
    if kind == "store_sql":
        assert req.sql is not None and req.sql_id is not None
        if req.sql_id in stream.sqls:
            raise ProtocolError(f"SQL text {req.sql_id} already exists", "SQL_EXISTS")
        if len(stream.sqls) >= MAX_SQL_COUNT:
            raise StmtError(
                f"The server already stores {len(stream.sqls)} SQL texts, it cannot store more",
                "SQL_STORE_TOO_MANY",
            )
        size = len(req.sql.encode("utf-8", "surrogatepass"))
        if size > MAX_STORED_SQL_SIZE:
            raise StmtError(
                f"The statement is too large to be stored: {size} B/{MAX_STORED_SQL_SIZE} B",
                "SQL_STORE_TOO_LARGE",
            )
        stream.sqls[req.sql_id] = req.sql
        return {"type": "store_sql"}
    if kind == "close_sql":
        if req.sql_id is not None:
            stream.sqls.pop(req.sql_id, None)
        return {"type": "close_sql"}
    # get_autocommit
    return {"type": "get_autocommit", "is_autocommit": stream.get_conn().autocommit}


def pipeline(manager: StreamManager, db: Database, body: Any, version: int) -> dict[str, Any]:
    """``POST /v{2,3}/pipeline``: decode, run every request in order, hand back a baton."""
    baton, requests = decode_pipeline(body, version)
    stream = manager.acquire(baton, db)
    try:
        with stream.using():
            results = [handle_request(stream, req) for req in requests]
    except BaseException:
        manager.discard(stream)
        raise
    return {"baton": manager.release(stream), "base_url": None, "results": results}


def cursor(manager: StreamManager, db: Database, body: Any) -> list[dict[str, Any]]:
    """``POST /v3/cursor``: the first line is the baton, then one entry per line."""
    baton, steps = decode_cursor(body)
    stream = manager.acquire(baton, db)
    entries: list[dict[str, Any]] = []

    def record(i: int, outcome: StmtOutcome | None, err: StmtError | None) -> None:
        if outcome is not None:
            entries.append({"type": "step_begin", "step": i, "cols": cols_json(outcome.cols)})
            entries.extend({"type": "row", "row": [encode_value(v) for v in r]} for r in outcome.rows)
            entries.append(
                {
                    "type": "step_end",
                    "affected_row_count": outcome.affected_row_count,
                    "last_insert_rowid": outcome.last_insert_rowid,
                }
            )
        elif err is not None:
            if err.partial is not None:
                cols, rows = err.partial
                entries.append({"type": "step_begin", "step": i, "cols": cols_json(cols)})
                entries.extend({"type": "row", "row": [encode_value(v) for v in r]} for r in rows)
            entries.append({"type": "step_error", "step": i, "error": err.to_json()})

    try:
        with stream.using():
            run_batch(stream, steps, record, limit_response=False)
        # sqld's cursor ends with the replication index (hrana/cursor.rs, `finish`); a
        # primary without replication reports null.
        entries.append({"type": "replication_index", "replication_index": None})
    except StmtError as err:  # the batch as a whole was refused
        entries.append({"type": "error", "error": err.to_json()})
    except ProtocolError as err:
        if not entries:
            manager.discard(stream)
            raise
        entries.append({"type": "error", "error": {"message": err.message, "code": err.code}})
    except BaseException:
        manager.discard(stream)
        raise
    head = {"baton": manager.release(stream), "base_url": None}
    return [head, *entries]
