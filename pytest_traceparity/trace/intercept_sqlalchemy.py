"""SQLAlchemy interception: engine-wide event listeners, for drivers the two proxies do not see.

A connection already captured by the sqlite3 or libsql interception is not recorded twice.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..sqltext import is_transaction_control
from .sink import Recorder, _Active, dml_rowcount


def _captured_by_proxy(dbapi_conn: Any) -> bool:
    seen: set[int] = set()
    todo = [dbapi_conn]
    while todo:  # the adapted driver connection may wrap the real one a few levels down
        obj = todo.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if getattr(type(obj), "_tp_recording", False):
            return True
        if len(seen) < 8:
            todo.extend(getattr(obj, a, None) for a in ("driver_connection", "_connection", "_conn"))
    return False


def _sa_in_tx(dbapi_conn: Any) -> bool | None:
    for path in ((), ("_connection",), ("driver_connection",), ("_connection", "_conn")):
        obj = dbapi_conn
        for attr in path:
            obj = getattr(obj, attr, None)
        value = getattr(obj, "in_transaction", None) if obj is not None else None
        if isinstance(value, bool):
            return value
    return None


class SQLAlchemyListener:
    """Engine-wide listeners: every ``Engine`` (and the sync side of every ``AsyncEngine``)."""

    def __init__(self) -> None:
        self.installed = False

    def install(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        if self.installed:
            return
        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)
        event.listen(Engine, "handle_error", self._error)
        event.listen(Engine, "commit", self._commit)
        event.listen(Engine, "rollback", self._rollback)
        self.installed = True

    def uninstall(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        if not self.installed:
            return
        for name, fn in (
            ("before_cursor_execute", self._before),
            ("after_cursor_execute", self._after),
            ("handle_error", self._error),
            ("commit", self._commit),
            ("rollback", self._rollback),
        ):
            with contextlib.suppress(Exception):
                event.remove(Engine, name, fn)
        self.installed = False

    def _conn_id(self, conn: Any) -> tuple[Recorder, int] | None:
        rec = _Active.recorder
        if rec is None:
            return None
        try:
            pooled = conn.connection
            dbapi_conn = pooled.dbapi_connection
        except Exception:
            return None
        if _captured_by_proxy(dbapi_conn):
            return None
        info = pooled.info
        key = ("traceparity", id(rec))
        if key not in info:
            url = conn.engine.url
            info[key] = rec.open(f"sqlalchemy:{url.get_backend_name()}", url.database or ":memory:")
        return rec, info[key]

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if context is not None:
            context._tp_before = _sa_in_tx(conn.connection.dbapi_connection)

    def _emit(
        self,
        conn: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
        error: BaseException | None,
        cursor: Any = None,
    ) -> None:
        found = self._conn_id(conn)
        if found is None:
            return
        rec, cid = found
        before = getattr(context, "_tp_before", None)
        after = _sa_in_tx(conn.connection.dbapi_connection)
        began = bool(before is False and after and not is_transaction_control(statement))
        op = "executemany" if executemany else "execute"
        params = list(parameters) if executemany else parameters
        rec.statement(
            cid,
            op,
            statement,
            params,
            began=began,
            error=error,
            rowcount=None if error is not None else dml_rowcount(statement, cursor),
        )

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        self._emit(conn, statement, parameters, context, executemany, None, cursor)

    def _error(self, ctx: Any) -> None:
        if ctx.connection is not None and ctx.statement is not None:
            many = bool(getattr(ctx.execution_context, "executemany", False))
            self._emit(
                ctx.connection, ctx.statement, ctx.parameters, ctx.execution_context, many, ctx.original_exception
            )

    def _tx_end(self, conn: Any, op: str) -> None:
        found = self._conn_id(conn)
        if found is None:
            return
        in_tx = _sa_in_tx(conn.connection.dbapi_connection)
        if in_tx is not False:  # the driver has a transaction open (or we cannot tell)
            found[0].simple(found[1], op)

    def _commit(self, conn: Any) -> None:
        self._tx_end(conn, "commit")

    def _rollback(self, conn: Any) -> None:
        self._tx_end(conn, "rollback")
