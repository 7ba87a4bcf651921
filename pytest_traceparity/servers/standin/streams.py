"""Hrana streams and batons: who owns a stream's SQLite connection, and when it closes.

Batons are signed (keyed BLAKE2s) and single-use, like sqld's (libsql-server/src/hrana/http/stream.rs).
A stream acquired by a request belongs to that request's thread alone; an idle stream
belongs to the manager, and whoever takes it out of the table (expiry, namespace delete,
shutdown) closes its connection. That rule is what keeps a connection from ever being
used by two threads, or used after it was closed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import random
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import ffi
from .database import Database, ProtocolError

DEFAULT_STREAM_EXPIRY = 10.0
CLEANUP_AFTER = 300.0


@dataclass
class Stream:
    """Server side of a Hrana stream: one SQLite connection plus stored SQL texts.

    Ownership: while ``state == "acquired"`` exactly one request thread owns the stream and
    is the only thread that touches ``conn`` (and the only one that may close it). An
    ``available`` stream belongs to the manager; whoever removes it from the manager
    (expiry, namespace delete, shutdown) owns it and closes it. Other threads may only
    set ``cancelled`` and :meth:`ffi.Connection.interrupt` the connection.
    """

    stream_id: int
    seq: int
    db: Database
    conn: ffi.Connection | None
    sqls: dict[int, str] = field(default_factory=dict)
    state: str = "acquired"  # acquired | available
    expires_at: float = 0.0
    cancelled: bool = False  # the namespace is being deleted / the server is stopping

    def get_conn(self) -> ffi.Connection:
        if self.cancelled:
            raise (
                self.db.gone()
                if self.db.deleted
                else ProtocolError("The server is shutting down", "SERVER_SHUTTING_DOWN", 503)
            )
        if self.conn is None:
            raise ProtocolError("Stream for this baton was closed", "BATON_STREAM_CLOSED")
        return self.conn

    def using(self) -> Any:
        """Hold the connection's use lock for a request (a lock thief never touches it then)."""
        conn = self.conn
        return contextlib.nullcontext() if conn is None else conn.use_lock

    def resolve_sql(self, sql: str | None, sql_id: int | None) -> str:
        if sql is not None and sql_id is not None:
            raise ProtocolError("Either `sql` or `sql_id` are required, but not both", "SQL_ID_AND_SQL_GIVEN")
        if sql is not None:
            return sql
        if sql_id is None:
            raise ProtocolError("Either `sql` or `sql_id` are required", "SQL_ID_OR_SQL_NOT_GIVEN")
        if sql_id not in self.sqls:
            raise ProtocolError(f"SQL text {sql_id} not found", "SQL_NOT_FOUND")
        return self.sqls[sql_id]

    def close(self) -> None:
        """Close the connection (rolling back any open transaction); owner only."""
        conn, self.conn = self.conn, None
        if conn is not None:
            self.db.txn.forget(conn)  # a writer waiting for this stream's lock may go on
            self.db.release_connection(conn)


class StreamManager:
    """Hands out streams by baton; batons are signed with a keyed MAC and single-use (like sqld).

    Every transition happens under one condition lock; connections are closed outside
    it by the thread that took the stream out of the table (see :class:`Stream`).
    """

    def __init__(self, expiry: float = DEFAULT_STREAM_EXPIRY, clock: Callable[[], float] = time.monotonic) -> None:
        self.expiry = expiry
        self.clock = clock  # when streams expire (injectable: tests move time instead of sleeping)
        self._key = os.urandom(32)
        # Stream ids and baton sequence numbers only need to be unlikely to repeat: batons
        # are signed with the key above. os.urandom cost ~60 us a call here (two per
        # new stream), a seeded PRNG a fraction of a microsecond.
        self._ids = random.Random(os.urandom(32))
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._streams: dict[int, Stream] = {}
        self._expired: dict[int, float] = {}

    def _mac(self, payload: bytes) -> bytes:
        # keyed BLAKE2s is a MAC by design, and a quarter of the cost of OpenSSL's HMAC-SHA256
        # here (two or three batons per request)
        return hashlib.blake2s(payload, key=self._key).digest()

    def _encode(self, stream: Stream) -> str:
        payload = struct.pack(">QQ", stream.stream_id, stream.seq)
        return base64.b64encode(payload + self._mac(payload)).decode("ascii").rstrip("=")

    def _decode(self, baton: str) -> tuple[int, int]:
        try:
            data = base64.b64decode(baton + "=" * (-len(baton) % 4), validate=True)
        except (binascii.Error, ValueError):
            data = b""
        if len(data) != 48 or not hmac.compare_digest(self._mac(data[:16]), data[16:]):
            raise ProtocolError("Received an invalid baton", "BATON_INVALID")
        stream_id, seq = struct.unpack(">QQ", data[:16])
        return stream_id, seq

    def acquire(self, baton: str | None, db: Database) -> Stream:
        if baton is None:
            conn = db.stream_connection()
            with self._lock:
                if db.deleted:  # deleted between connect() and here: close_for has run
                    conn.close()
                    raise db.gone()
                stream_id = self._ids.getrandbits(64)
                while stream_id in self._streams or stream_id in self._expired:
                    stream_id = self._ids.getrandbits(64)
                stream = Stream(stream_id, self._ids.getrandbits(64), db, conn)
                self._streams[stream_id] = stream
            return stream
        stream_id, seq = self._decode(baton)
        gone: list[Stream] = []
        try:
            with self._lock:
                gone = self._expire_due_locked(self.clock())
                if stream_id in self._expired:
                    raise ProtocolError("The stream has expired due to inactivity", "STREAM_EXPIRED")
                found = self._streams.get(stream_id)
                if found is None:
                    raise ProtocolError("Received an invalid baton", "BATON_INVALID")
                stream = found
                if stream.state != "available" or stream.seq != seq:
                    raise ProtocolError("Received a baton that has already been used", "BATON_REUSED")
                if stream.db is not db:
                    raise ProtocolError("Received a baton that belongs to another namespace", "BATON_INVALID")
                if db.deleted:
                    raise db.gone()
                stream.state = "acquired"
                stream.seq = (stream.seq + 1) % 2**64
                return stream
        finally:
            for victim in gone:  # whoever notices an expiry closes the connection
                victim.close()

    def release(self, stream: Stream) -> str | None:
        """Make the stream available again; None when it was closed (or cancelled)."""
        with self._lock:
            if stream.conn is not None and not stream.cancelled:
                stream.state = "available"
                stream.expires_at = self.clock() + self.expiry
                return self._encode(stream)
            self._streams.pop(stream.stream_id, None)
            self._changed.notify_all()
        stream.close()
        return None

    def discard(self, stream: Stream) -> None:
        """The owner gives the stream up (a protocol error): close it."""
        with self._lock:
            self._streams.pop(stream.stream_id, None)
            self._changed.notify_all()
        stream.close()

    def _expire_due_locked(self, now: float) -> list[Stream]:
        gone = []
        for stream in list(self._streams.values()):
            if stream.state == "available" and stream.expires_at <= now:
                del self._streams[stream.stream_id]
                self._expired[stream.stream_id] = now + CLEANUP_AFTER
                gone.append(stream)
        for stream_id, cleanup_at in list(self._expired.items()):
            if cleanup_at <= now:
                del self._expired[stream_id]
        return gone

    def reap(self) -> int:
        """Expire idle streams (rolling back their transactions); returns how many."""
        with self._lock:
            gone = self._expire_due_locked(self.clock())
        for stream in gone:
            stream.close()
        return len(gone)

    def close_for(self, db: Database | None = None, wait: float = 30.0) -> int:
        """Close every stream (of one namespace, or all), waiting for requests in flight.

        Idle streams are closed here. A stream a request is using is cancelled: its running
        statement is interrupted and its owner closes it when the request ends; we wait
        (up to ``wait`` seconds) for that. Returns how many streams were still busy then.
        """
        deadline = time.monotonic() + wait
        while True:
            with self._lock:
                mine = [s for s in self._streams.values() if db is None or s.db is db]
                idle = [s for s in mine if s.state == "available"]
                for stream in idle:  # ours now: closed below, outside the lock
                    del self._streams[stream.stream_id]
                busy = [s for s in mine if s.state != "available"]
                for stream in busy:
                    stream.cancelled = True
                    if stream.conn is not None:
                        stream.conn.interrupt()
                remaining = deadline - time.monotonic()
                if not idle:
                    if not busy or remaining <= 0:
                        return len(busy)
                    self._changed.wait(min(remaining, 0.1))
            for stream in idle:
                stream.close()

    def count(self) -> int:
        with self._lock:
            return len(self._streams)
