"""sqld's write-lock handover: a write transaction may hold SQLite's lock for 5 s.

sqld (``libsql-server/src/connection/libsql.rs``, ``busy_handler``, ``TxnSlot``;
``TXN_TIMEOUT`` in ``connection/mod.rs``) remembers which connection took the write lock
and when. A second writer waits in its busy handler until the holder commits or its
5 s are up, then steals the lock by rolling the holder back. The holder learns at its
next step: that step, and every later step of the same program (one ``execute``, one
``batch``, one ``sequence``), fails with ``TRANSACTION_TIMEOUT``. A holder past its 5 s
times out the same way even when nobody waited.

The stand-in mirrors that with one :class:`TxnArbiter` per namespace. Rolling back a
holder from another thread is safe because every stream's connection is used under its
``use_lock`` (see ``streams.Stream``): the thief only touches a connection it could lock.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

from . import ffi

DEFAULT_TXN_TIMEOUT = 5.0
NO_SLOT_POLL = 0.002  # seconds between retries when the lock holder is not a stream
NO_SLOT_GIVE_UP = 5.0  # then SQLITE_BUSY, like a plain busy timeout

TXN_NONE, TXN_READ, TXN_WRITE = 0, 1, 2


@dataclass(eq=False)
class TxnSlot:
    conn: ffi.Connection
    expires_at: float
    stolen: bool = False
    created_at: float = field(default_factory=time.monotonic)


class TxnArbiter:
    """Who holds a namespace's write lock, since when; hands it over after ``timeout``."""

    def __init__(self, timeout: float = DEFAULT_TXN_TIMEOUT, handover: float | None = None) -> None:
        self.timeout = timeout
        # how long a *waiting* writer waits before taking the lock over (sqld: the same 5 s as
        # ``timeout``); a harness may shorten it so contention cases do not wait 5 s, while a
        # holder nobody waits for still keeps its full ``timeout``
        self.handover = handover
        self._cond = threading.Condition()
        self._slot: TxnSlot | None = None
        self._waiting = 0  # connections in busy() now
        self.steals = 0

    # ------------------------------------------------------------ holder side

    def timed_out(self, conn: ffi.Connection) -> bool:
        """Before a step: has this connection's transaction been stolen or run out of time?

        If so it is rolled back (if the thief has not already) and the caller must fail
        the step with ``TRANSACTION_TIMEOUT``.
        """
        slot: TxnSlot | None = getattr(conn, "txn_slot", None)
        if slot is None:
            return False
        if not slot.stolen and time.monotonic() <= slot.expires_at:
            return False
        with self._cond:
            slot.stolen = True
            if self._slot is slot:
                self._slot = None
            self._cond.notify_all()
        conn.txn_slot = None
        if not conn.autocommit:
            _rollback(conn)
        return True

    def after_step(self, conn: ffi.Connection, before: int) -> None:
        """After a step: claim the slot when the write lock was taken, free it when released."""
        after = conn.txn_state()
        if after == TXN_NONE and conn.has_statements():
            conn.clear_statements()  # kept statements live for one transaction only
        if after == TXN_WRITE and before != TXN_WRITE:
            slot = TxnSlot(conn, time.monotonic() + self.timeout)
            conn.txn_slot = slot
            with self._cond:
                self._slot = slot
        elif after != TXN_WRITE and before == TXN_WRITE:
            self.forget(conn)
        elif self._waiting and after != TXN_WRITE:
            # an autocommit write held the lock only while it ran (no slot): a writer waiting
            # in busy() would otherwise sleep out its NO_SLOT_POLL
            with self._cond:
                self._cond.notify_all()

    def forget(self, conn: ffi.Connection) -> None:
        """The connection ended its write transaction (or is closing): wake a waiter."""
        slot: TxnSlot | None = getattr(conn, "txn_slot", None)
        conn.txn_slot = None
        with self._cond:
            if slot is not None and self._slot is slot:
                self._slot = None
            self._cond.notify_all()

    # ------------------------------------------------------------ waiter side

    def busy(self, retries: int, waiter: ffi.Connection | None = None) -> int:
        """SQLite busy handler: 1 = try again, 0 = give up with SQLITE_BUSY."""
        with self._cond:
            slot = self._slot
            if slot is None or slot.conn is waiter:  # the holder is no stream (a checkpoint, a sync push)
                self._wait(NO_SLOT_POLL)
                return 1 if retries * NO_SLOT_POLL < NO_SLOT_GIVE_UP else 0
            deadline = slot.expires_at
            if self.handover is not None:
                deadline = min(deadline, slot.created_at + self.handover)
            remaining = deadline - time.monotonic()
            if remaining > 0:
                self._wait(remaining)
                return 1
        self._steal(slot)
        return 1

    def _wait(self, seconds: float) -> None:
        self._waiting += 1
        try:
            self._cond.wait(seconds)
        finally:
            self._waiting -= 1

    def _steal(self, slot: TxnSlot) -> None:
        holder = slot.conn
        if not holder.use_lock.acquire(blocking=False):
            time.sleep(NO_SLOT_POLL)  # the holder is mid-request; its next step times out
            return
        try:
            with self._cond:
                if slot.stolen or self._slot is not slot:
                    return
                slot.stolen = True
                self._slot = None
                self.steals += 1
            if not holder.closed and not holder.autocommit:
                _rollback(holder)
        finally:
            holder.use_lock.release()

    def install(self, conn: ffi.Connection) -> None:
        """Make ``conn`` wait for (and steal from) this namespace's lock holder."""
        conn.set_busy_handler(lambda retries: self.busy(retries, conn))


def _rollback(conn: ffi.Connection) -> None:
    with contextlib.suppress(ffi.SqliteError):  # already rolled back (SQLite may have, on an error)
        conn.execute_simple("ROLLBACK")
    conn.clear_statements()
