"""Mounts the sync protocol on a :class:`~.server.StandinServer` (the server calls
:func:`register_routes` itself); one :class:`~.sync.SyncPrimary` per namespace."""

from __future__ import annotations

import threading
import weakref
from typing import Any
from urllib.parse import unquote

from .sync import SyncPrimary, SyncProtocolError
from .wire import HttpError, Response

_PRIMARIES: weakref.WeakKeyDictionary[Any, SyncPrimary] = weakref.WeakKeyDictionary()
_PRIMARIES_LOCK = threading.Lock()


def primary_for(db: Any) -> SyncPrimary:
    """The sync primary of a stand-in namespace, created on first use."""
    with _PRIMARIES_LOCK:
        if getattr(db, "deleted", False):  # never re-create the files of a deleted namespace
            raise SyncProtocolError(404, f"Namespace `{db.name}` doesn't exist")
        primary = _PRIMARIES.get(db)
        if primary is None or primary._closed:
            primary = SyncPrimary(db.path, db.lock)
            db.write_listeners.append(primary.on_write)
            _PRIMARIES[db] = primary
        return primary


def register_routes(server: Any) -> None:
    """Mount info/export/sync on every namespace of a :class:`StandinServer`."""

    def route(req: Any) -> Any:
        try:
            primary = primary_for(req.namespace)
        except SyncProtocolError as err:
            raise HttpError(err.status, err.message, "SYNC_ERROR") from None
        status, ctype, body = primary.handle(req.method, req.path, req.headers, req.body)
        return Response(status, body, ctype)

    def checkpoint(req: Any) -> Any:
        db = server.namespaces.get(unquote(req.match["ns"]))
        gen = primary_for(db).checkpoint()
        return Response.json({"generation": gen})

    def delete(req: Any) -> Any:
        name = unquote(req.match["ns"])
        server.namespaces.check_deletable(name)
        db = server.namespaces.get(name)
        db.mark_deleted()  # before the primary goes: no request can start a new one
        with _PRIMARIES_LOCK:
            primary = _PRIMARIES.pop(db, None)
        if primary is not None:
            primary.destroy()
        server.delete_namespace(name)
        return Response.json(None)

    server.add_route("GET", r"/info", route)
    server.add_route("GET", r"/export/\d+", route)
    server.add_route("GET", r"/sync/\d+/\d+/\d+", route)
    server.add_route("POST", r"/sync/\d+/\d+/\d+(?:/[^/]+)?", route)
    server.add_route("POST", r"/v1/namespaces/(?P<ns>[^/]+)/checkpoint", checkpoint, namespaced=False)
    server.add_route("DELETE", r"/v1/namespaces/(?P<ns>[^/]+)", delete, namespaced=False)
