"""Schema fingerprint and per-table content digests, computed through SQL only.

Why SQL only: the same code must run on every backend (a local file, sqld over HTTP, a
replica), so it reads ``sqlite_master`` and the ``pragma_*`` table-valued functions
through the uniform :class:`~pytest_traceparity.backends.base.Connection` API rather than
opening files. The result is canonical JSON (sorted keys, fixed separators) plus its
sha256; :func:`diff_schemas` names the objects that differ.

Content digests are order-insensitive and streaming: each row's typed encoding is
hashed and the hashes are summed modulo 2**256, so ``SELECT *`` without ``ORDER BY``
on any backend gives the same digest for the same multiset of rows.
"""

from __future__ import annotations

import hashlib
import json
from binascii import b2a_base64
from collections.abc import Callable, Iterable, Iterator, Sequence
from json.encoder import encode_basestring as _json_string  # what json.dumps(ensure_ascii=False) uses
from typing import Any

from .values import Result, encode_value

FINGERPRINT_VERSION = 1
_FTS_SHADOW = ("_data", "_idx", "_content", "_docsize", "_config", "_segments", "_segdir", "_stat")
_RTREE_SHADOW = ("_node", "_parent", "_rowid")

Execute = Callable[[str], Result]


def _q(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _squash(sql: str | None) -> str | None:
    return " ".join(sql.split()) if sql else sql


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _rows(execute: Execute, sql: str) -> list[dict[str, Any]]:
    return execute(sql).as_dicts()


def _shadow_tables(execute: Execute, objects: list[dict[str, Any]]) -> set[str]:
    """Internal tables of virtual tables (FTS, R*Tree): their bytes vary with SQLite's version."""
    try:
        return {
            r["name"]
            for r in _rows(execute, "SELECT name, type FROM pragma_table_list WHERE schema='main'")
            if r["type"] == "shadow"
        }
    except Exception:  # SQLite < 3.37 has no table_list: fall back to the naming convention
        virtual = [
            o["name"]
            for o in objects
            if o["type"] == "table" and (o["sql"] or "").upper().startswith("CREATE VIRTUAL TABLE")
        ]
        return {
            o["name"]
            for o in objects
            for v in virtual
            if o["name"] != v and o["name"].startswith(v) and o["name"][len(v) :] in (*_FTS_SHADOW, *_RTREE_SHADOW)
        }


def schema(execute: Execute) -> dict[str, Any]:
    """Canonical description of tables, columns, indexes, foreign keys, views, triggers."""
    objects = _rows(execute, "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
    shadow = _shadow_tables(execute, objects)
    out: dict[str, Any] = {
        "version": FINGERPRINT_VERSION,
        "tables": {},
        "indexes": {},
        "views": {},
        "triggers": {},
        "virtual_tables": {},
    }
    for obj in objects:
        name, kind, sql = obj["name"], obj["type"], obj["sql"]
        if name in shadow or (name.startswith("sqlite_") and kind != "table"):
            continue
        if kind == "table" and (sql or "").upper().startswith("CREATE VIRTUAL TABLE"):
            out["virtual_tables"][name] = {"sql": _squash(sql)}
        elif kind == "table":
            out["tables"][name] = _table(execute, name, sql)
        elif kind == "index":
            out["indexes"][name] = _index(execute, name, obj["tbl_name"], sql)
        elif kind == "view":
            out["views"][name] = {"sql": _squash(sql)}
        elif kind == "trigger":
            out["triggers"][name] = {"table": obj["tbl_name"], "sql": _squash(sql)}
    return out


def _table(execute: Execute, name: str, sql: str | None) -> dict[str, Any]:
    columns = [
        {
            "name": c["name"],
            "type": c["type"],
            "notnull": bool(c["notnull"]),
            "default": c["dflt_value"],
            "pk": c["pk"],
            "hidden": c["hidden"],
        }
        for c in _rows(execute, f"SELECT * FROM pragma_table_xinfo({_q(name)}) ORDER BY cid")
    ]
    fks = [
        {k: r[k] for k in ("id", "seq", "table", "from", "to", "on_update", "on_delete", "match")}
        for r in _rows(execute, f"SELECT * FROM pragma_foreign_key_list({_q(name)}) ORDER BY id, seq")
    ]
    return {"columns": columns, "foreign_keys": fks, "sql": _squash(sql)}


def _index(execute: Execute, name: str, table: str, sql: str | None) -> dict[str, Any]:
    info = {r["name"]: r for r in _rows(execute, f"SELECT * FROM pragma_index_list({_q(table)})")}.get(name, {})
    columns = [
        {"name": r["name"], "desc": bool(r["desc"]), "coll": r["coll"]}
        for r in _rows(execute, f"SELECT * FROM pragma_index_xinfo({_q(name)}) WHERE key ORDER BY seqno")
    ]
    return {
        "table": table,
        "unique": bool(info.get("unique", 0)),
        "origin": info.get("origin"),
        "partial": bool(info.get("partial", 0)),
        "columns": columns,
        "sql": _squash(sql),
    }


def fingerprint(data: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()


Volatile = Callable[[str, list[dict[str, Any]]], "list[int] | None"]
Stream = Callable[[str], Iterable[Sequence[Sequence[Any]]]]  # a query's rows, chunk by chunk


def content_digests(
    execute: Execute, schema_data: dict[str, Any], volatile: Volatile | None = None, stream: Stream | None = None
) -> dict[str, dict[str, Any]]:
    """Per table (and virtual table): row count and an order-insensitive sha256 of the rows.

    ``volatile(table, columns)`` names the column positions (``None``: all) whose values
    enter the digest by storage class only (see :mod:`pytest_traceparity.trace.volatile`).
    ``stream(sql)`` (e.g. :meth:`Connection.stream <pytest_traceparity.backends.base.Connection.stream>`)
    yields the rows in chunks, so no table is ever held whole; without it ``execute`` reads each at once.
    """
    out: dict[str, dict[str, Any]] = {}
    names = [*schema_data["tables"], *schema_data["virtual_tables"]]
    if "sqlite_sequence" not in names and _rows(execute, "SELECT name FROM sqlite_master WHERE name='sqlite_sequence'"):
        names.append("sqlite_sequence")
    for name in sorted(names):
        sql = f"SELECT * FROM {_ident(name)}"
        digest = _Digest()
        try:
            chunks = iter(stream(sql) if stream is not None else (execute(sql).rows,))
            chunk = next(chunks, None)
        except Exception as exc:
            out[name] = {"error": _error_kind(exc)}
            continue
        positions: list[int] | None = []
        if volatile is not None and name in schema_data["tables"]:
            visible = [c for c in schema_data["tables"][name]["columns"] if not c.get("hidden")]
            positions = volatile(name, visible)
        try:
            while chunk is not None:
                digest.add(chunk if positions == [] else _mask(chunk, positions))
                chunk = next(chunks, None)
        except Exception as exc:  # the read failed part-way: the table is unreadable, as if at once
            out[name] = {"error": _error_kind(exc)}
            continue
        out[name] = digest.result()
    return out


def _mask(rows: Iterable[Sequence[Any]], positions: list[int] | None) -> list[tuple[Any, ...]]:
    def typed(v: Any) -> Any:
        return None if v is None else (0 if isinstance(v, bool) else type(v)())

    return [tuple(typed(v) if positions is None or i in positions else v for i, v in enumerate(row)) for row in rows]


def _error_kind(exc: BaseException) -> str:
    """Backend-independent: the canonical error kind, never the driver's message text."""
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str):
        return kind
    from .errors import classify_message

    return classify_message(str(exc))


class _Digest:
    """Sum of the rows' sha256 modulo 2**256 (so row order does not matter), fed chunk by chunk."""

    def __init__(self) -> None:
        self.total = 0
        self.rows = 0

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        total, sha256, from_bytes, count = self.total, hashlib.sha256, int.from_bytes, 0
        for row in rows:
            total += from_bytes(sha256(_row_json(row)).digest(), "big")
            count += 1
        self.rows += count
        self.total = total % (1 << 256)

    def result(self) -> dict[str, Any]:
        return {"rows": self.rows, "sha256": f"{self.total:064x}"}


def _row_json(row: Sequence[Any]) -> bytes:
    """``canonical_json`` of the row's typed encoding, written directly for the plain value types."""
    parts: list[str] = []
    append = parts.append
    for v in row:
        kind = type(v)
        if kind is int:
            append(f'{{"int":"{v}"}}')
        elif kind is str:
            append(f'{{"text":{_json_string(v)}}}')
        elif v is None:
            append('{"null":true}')
        elif kind is float:
            append(f'{{"real":"{"nan" if v != v else repr(v)}"}}')  # float_repr, inlined
        elif kind is bytes:
            append(f'{{"blob":"{b2a_base64(v, newline=False).decode("ascii")}"}}')
        else:
            return canonical_json([encode_value(x) for x in row]).encode("utf-8")
    return f"[{','.join(parts)}]".encode()


def digest_rows(result: Result) -> dict[str, Any]:
    digest = _Digest()
    digest.add(result.rows)
    return digest.result()


def snapshot(execute: Execute) -> dict[str, Any]:
    """Everything a golden keeps about a database's final state."""
    data = schema(execute)
    return {"schema_sha256": fingerprint(data), "schema": data, "content": content_digests(execute, data)}


def safe_snapshot(execute: Execute, volatile: Volatile | None = None, stream: Stream | None = None) -> dict[str, Any]:
    """:func:`snapshot` that never raises: an unreadable database or table is recorded as an error.

    Why: one unreadable table (an FTS4 table whose content table was dropped) must not
    abort a replay or make a golden impossible; it is part of the final state, compared
    like any other, and named (database, table) when it differs.
    """
    try:
        data = schema(execute)
    except Exception as exc:
        return {"error": f"schema unreadable ({_error_kind(exc)})"}
    return {
        "schema_sha256": fingerprint(data),
        "schema": data,
        "content": content_digests(execute, data, volatile, stream),
    }


def diff_schemas(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Human lines naming each object that is missing, extra or different (and how)."""
    lines: list[str] = []
    for section in ("tables", "virtual_tables", "indexes", "views", "triggers"):
        want, got = expected.get(section, {}), actual.get(section, {})
        label = {
            "tables": "table",
            "virtual_tables": "virtual table",
            "indexes": "index",
            "views": "view",
            "triggers": "trigger",
        }[section]
        for name, how, w, g in _differences_by_name(want, got):
            if how == "differs":
                lines.append(f"{label} {name!r} differs: {_what_differs(w, g)}")
            else:
                lines.append(f"{label} {name!r} is {how}")
    return lines


def _differences_by_name(want: dict[str, Any], got: dict[str, Any]) -> Iterator[tuple[str, str, Any, Any]]:
    """``(name, "missing" | "unexpected" | "differs", expected, actual)`` for every name that differs."""
    for name in sorted(set(want) | set(got), key=str):  # expression index columns have no name (None)
        if name not in got:
            yield name, "missing", want[name], None
        elif name not in want:
            yield name, "unexpected", None, got[name]
        elif want[name] != got[name]:
            yield name, "differs", want[name], got[name]


def _what_differs(want: dict[str, Any], got: dict[str, Any]) -> str:
    parts = []
    if "columns" in want and want.get("columns") != got.get("columns"):
        wc = {c["name"]: c for c in want["columns"]}
        gc = {c["name"]: c for c in got.get("columns", [])}
        for col, how, w, g in _differences_by_name(wc, gc):
            if how == "differs":
                fields = [f"{k} {w.get(k)!r} != {g.get(k)!r}" for k in w if w.get(k) != g.get(k)]
                parts.append(f"column {col!r} ({', '.join(fields)})")
            else:
                parts.append(f"column {col!r} {how}")
        if not parts:
            parts.append("column order")
    for key in sorted(set(want) | set(got)):
        if key != "columns" and want.get(key) != got.get(key):
            parts.append(f"{key} {want.get(key)!r} != {got.get(key)!r}")
    return "; ".join(parts)


def _readable(digest: dict[str, Any]) -> str:
    return f"unreadable ({digest['error']})" if "error" in digest else f"{digest.get('rows')} row(s)"


def diff_content(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    lines = []
    for name, how, want, got in _differences_by_name(expected, actual):
        if how != "differs":
            lines.append(f"table {name!r} content is {how}")
        elif "error" in want or "error" in got:
            lines.append(f"table {name!r}: {_readable(want)} in the golden, {_readable(got)} here")
        elif want["rows"] != got["rows"]:
            lines.append(f"table {name!r} has {got['rows']} row(s), expected {want['rows']}")
        else:
            lines.append(
                f"table {name!r} rows differ in value or type (same count {want['rows']}; digest "
                f"{got['sha256'][:12]} != {want['sha256'][:12]})"
            )
    return lines
