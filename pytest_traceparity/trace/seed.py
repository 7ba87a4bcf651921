"""A database that existed before recording: captured with the trace, restored before replay.

Captured as SQL (SQLite's own dump of schema and rows), zlib-compressed and base64
encoded in the ``open`` event's ``seed`` field. SQL, not file bytes, because the same
seed must restore on every backend, including sqld over HTTP where no file can be copied.
Past the size limit the recording says so clearly and marks the database ``skipped``;
replaying such a database starts empty, and the faithfulness check names the cause.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import zlib
from typing import Any

ENV_LIMIT = "TRACEPARITY_SEED_LIMIT"
DEFAULT_LIMIT = 16 * 1024 * 1024  # bytes of the database file
_SKIP = ("BEGIN TRANSACTION;", "COMMIT;")


def seed_limit() -> int:
    try:
        return int(os.environ.get(ENV_LIMIT, DEFAULT_LIMIT))
    except ValueError:
        return DEFAULT_LIMIT


def capture_seed(path: str, limit: int | None = None) -> dict[str, Any] | None:
    """The seed of an existing, non-empty database file at ``path`` (``None`` if there is none)."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    if size == 0:
        return None
    limit = seed_limit() if limit is None else limit
    if size > limit:
        return {
            "skipped": f"the database existed before recording but is {size} bytes, over the "
            f"{limit}-byte limit ({ENV_LIMIT}); it replays empty"
        }
    conn = sqlite3.Connection(f"file:{path}?mode=ro", uri=True)  # the class itself: never recorded
    try:
        statements = [s for s in conn.iterdump() if s not in _SKIP]
    except sqlite3.DatabaseError as exc:
        return {"skipped": f"the database existed before recording but could not be read ({exc})"}
    finally:
        conn.close()
    blob = zlib.compress(json.dumps(statements, ensure_ascii=False).encode("utf-8"), 9)
    return {"encoding": "sql-json+zlib+base64", "bytes": size, "data": base64.b64encode(blob).decode("ascii")}


def seed_statements(seed: dict[str, Any]) -> list[str]:
    if seed.get("encoding") != "sql-json+zlib+base64":
        return []
    data = zlib.decompress(base64.b64decode(seed["data"]))
    statements = json.loads(data)
    return [s for s in statements if isinstance(s, str)]


def restore_seed(database: Any, seed: dict[str, Any]) -> str:
    """Run the seed on a fresh ``database``; returns a one-line account of what happened."""
    if "skipped" in seed:
        return f"not restored: {seed['skipped']}"
    try:
        statements = seed_statements(seed)
    except (ValueError, zlib.error) as exc:
        return f"not restored: the seed is unreadable ({exc})"
    failed: list[str] = []
    conn = database.connect()
    try:
        conn.begin()
        for sql in statements:
            try:
                conn.execute(sql)
            except Exception as exc:
                failed.append(f"{' '.join(sql.split())[:60]}: {' '.join(str(exc).split())[:80]}")
        conn.commit()
    finally:
        conn.close()
    if failed:
        return f"restored {len(statements) - len(failed)} of {len(statements)} statement(s); first failure: {failed[0]}"
    return f"restored {len(statements)} statement(s)"
