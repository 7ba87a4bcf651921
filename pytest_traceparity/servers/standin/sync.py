"""The embedded-replica sync protocol, served by the stand-in (Turso Cloud speaks it; OSS sqld does not).

What the ``libsql`` client (crate 0.9.x, Python wheel 0.1.11) expects, learned from its
sources and checked against it in ``tests/test_sync_*.py``:

* ``GET /info`` -> ``{"current_generation": N}`` with N >= 1 (bootstrap only).
* ``GET /export/N`` -> the database file at the start of generation N (the replica writes
  it verbatim, then ``PATH-info`` = ``{"hash", "version": 0, "durable_frame_num",
  "generation"}`` with a crc32 over the three numbers).
* ``GET /sync/G/START/END`` -> WAL frames START..END-1 of generation G (frames numbered from
  1 in each generation), back to back, 24-byte header + 4096-byte page each. The client
  only reads the page number and the commit marker ("size after", bytes 4..8); salts and
  checksums are ignored. No frame there: status 400 with ``{"generation": CURRENT}``; when
  CURRENT > G the client checkpoints its WAL and continues with G+1 from frame 1, so
  generation G+1 must start exactly where G ended.
* ``POST /sync/G/START/END[/BATON]`` (offline writes) -> the client's own WAL frames,
  at most 128 per request; answer ``{"status": "ok"|"conflict", "generation": G,
  "max_frame_no": M, "baton": ...}`` and M must be END-1 or the client fails. A baton
  lets one transaction span several requests.

The archive behind it is :mod:`.sync_archive`; the routes are mounted by
:func:`.sync_routes.register_routes`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from . import wal
from .sync_archive import (
    FRAME_SIZE,
    PROTOCOL_PAGE_SIZE,
    PUSH_LOCK_TIMEOUT,
    STATE_VERSION,
    SyncArchive,
    SyncProtocolError,
    _Pending,
)

__all__ = ["FRAME_SIZE", "PROTOCOL_PAGE_SIZE", "PUSH_LOCK_TIMEOUT", "STATE_VERSION", "SyncPrimary", "SyncProtocolError"]

Reply = tuple[int, str, bytes]

# (method, path, handler): the whole sync protocol of one database
_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(r"/info"), "_info"),
    ("GET", re.compile(r"/export/(\d+)"), "_export"),
    ("GET", re.compile(r"/sync/(\d+)/(\d+)/(\d+)"), "_pull"),
    ("POST", re.compile(r"/sync/(\d+)/(\d+)/(\d+)(?:/([^/]+))?"), "_push"),
)


def _json(status: int, payload: dict[str, Any]) -> Reply:
    return status, "application/json", json.dumps(payload).encode()


@dataclass
class _PushTxn:
    applied: bool = False


class SyncPrimary(SyncArchive):
    """Serves one database to embedded replicas: info, export, pull and push.

    ``lock`` is the namespace lock the stand-in holds around writes (any lock works
    standalone). Call :meth:`ingest` after writes (or register :meth:`on_write` as a
    stand-in write listener); sync requests ingest too, so missing a call only delays.
    """

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        """Answer one sync request; ``path`` is relative to the database URL."""
        try:
            for verb, pattern, name in _ROUTES:
                m = pattern.fullmatch(path)
                if m and verb == method:
                    handler: Callable[..., Reply] = getattr(self, name)
                    numbers = [int(g) for g in m.groups()[:3]]  # generation, start, end (as present)
                    return handler(*numbers, *m.groups()[3:], body) if verb == "POST" else handler(*numbers)
            raise SyncProtocolError(404, f"no sync route for {method} {path}")
        except SyncProtocolError as err:
            payload = {"error": err.message, **err.extra}
            return _json(err.status, payload)

    def _info(self) -> Reply:
        with self.lock, self._mutex:
            self._ingest()
            # max_frame_no is a stand-in extra (the client ignores unknown keys):
            # it lets the harness report how many frames a replica is behind.
            return _json(200, {"current_generation": self.state.generation, "max_frame_no": self.state.frames})

    def _export(self, gen: int) -> Reply:
        with self.lock, self._mutex:
            self._ingest()
            path = self._gen_db(gen)
            if gen < 1 or gen > self.state.generation or not path.exists():
                raise SyncProtocolError(
                    404,
                    f"generation {gen} does not exist on this primary (current generation is {self.state.generation})",
                )
            return 200, "application/octet-stream", path.read_bytes()

    def _pull(self, gen: int, start: int, end: int) -> Reply:
        with self.lock, self._mutex:
            self._ingest()
            current = self.state.generation
            if start < 1 or end <= start:
                raise SyncProtocolError(400, f"bad frame range {start}..{end} (frames start at 1)", generation=current)
            if gen < 1 or gen > current:
                raise SyncProtocolError(
                    409,
                    f"the replica is at generation {gen} but this primary's current generation is "
                    f"{current}: the replica belongs to another primary or the primary lost its "
                    f"sync state; delete the replica file and its -info file and sync again",
                )
            count = self._frame_count(gen)
            if start > count + 1:
                raise SyncProtocolError(
                    409,
                    f"the replica claims {start - 1} frames of generation {gen} but this primary "
                    f"has {count}; delete the replica file and its -info file and sync again",
                )
            if start == count + 1:
                if gen < current and gen in self.state.breaks:
                    raise SyncProtocolError(
                        409,
                        f"generation {gen + 1} does not continue generation {gen} (the primary's "
                        f"WAL was checkpointed before its frames were archived); delete the replica "
                        f"file and its -info file to bootstrap again",
                    )
                # Nothing more in this generation: tell the client where the primary is.
                return _json(400, {"generation": current})
            stop = min(end, count + 1)
            data = b"".join(wal.iter_archive(self._gen_frames(gen), FRAME_SIZE, start, stop))
            return 200, "application/octet-stream", data

    def _push(self, gen: int, start: int, end: int, baton: str | None, body: bytes) -> Reply:
        """Append a replica's WAL frames (offline writes); whole transactions only, the rest
        waits under a baton for the next request of the same push."""
        frames = self._push_frames(start, end, body)
        with self._write_transaction() as txn, self.lock, self._mutex:
            self._ingest()
            pending = self._pending_for(baton, gen, start, end)
            if gen != self.state.generation:
                return self._conflict()
            base = start - len(pending.frames) if pending else start
            if base != self.state.frames + 1:
                if baton is None and self._already_have(start, frames):
                    return _json(200, {"status": "ok", "generation": gen, "max_frame_no": end - 1})
                return self._conflict()
            txn.applied, rest_frames = self._apply_whole_transactions(
                (pending.frames if pending else []) + frames, base, gen
            )
            if baton is not None:
                self._pending.pop(baton, None)
            reply: dict[str, Any] = {"status": "ok", "generation": gen, "max_frame_no": end - 1}
            if rest_frames:
                reply["baton"] = secrets.token_hex(8)
                self._pending[reply["baton"]] = _Pending(gen, end, rest_frames)
        return _json(200, reply)

    @staticmethod
    def _push_frames(start: int, end: int, body: bytes) -> list[wal.Frame]:
        try:
            frames = wal.split_frames(body, PROTOCOL_PAGE_SIZE)
        except wal.WalFormatError as exc:
            raise SyncProtocolError(400, f"push body rejected: {exc}") from None
        if start < 1 or end - start != len(frames):
            raise SyncProtocolError(400, f"push of frames {start}..{end - 1} carries {len(frames)} frames")
        return frames

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[_PushTxn]:
        """SQLite's write lock on the primary's connection for one push (pushes are serialized);
        afterwards SQLite is made to rebuild its WAL index when frames were applied."""
        if not self._push_lock.acquire(timeout=PUSH_LOCK_TIMEOUT):
            raise SyncProtocolError(503, "primary busy with another push, retry")
        txn = _PushTxn()
        try:
            self._push_owner = threading.get_ident()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                # Another connection holds a write transaction open; the client retries 5xx.
                raise SyncProtocolError(503, f"primary busy, retry the push: {exc}") from None
            try:
                yield txn
            finally:
                self._conn.execute("ROLLBACK")
            if txn.applied:
                # Make SQLite rebuild its WAL index now rather than on the next Hrana request.
                self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            self._push_owner = None
            self._push_lock.release()

    def _pending_for(self, baton: str | None, gen: int, start: int, end: int) -> _Pending | None:
        """The earlier part of this push, held under ``baton`` (None for a push's first request)."""
        if baton is None:
            return None
        pending = self._pending.get(baton)
        if pending is None or pending.generation != gen or pending.next_frame != start:
            raise SyncProtocolError(400, f"unknown or stale push baton for frames {start}..{end - 1}")
        return pending

    def _apply_whole_transactions(self, todo: list[wal.Frame], base: int, gen: int) -> tuple[bool, list[wal.Frame]]:
        """Append every frame up to the last commit marker; returns (applied, frames left over)."""
        last_commit = max((i for i, f in enumerate(todo) if f.is_commit), default=-1)
        complete, rest = todo[: last_commit + 1], todo[last_commit + 1 :]
        if not complete:
            return False, rest
        self._append_physical(complete)
        # Still under the write lock: nobody else can have added frames.
        expected = base + len(complete) - 1
        self._ingest()
        if self.state.frames != expected:
            raise SyncProtocolError(
                500,
                f"sync primary {self.db_path}: pushed frames did not land (expected "
                f"{expected} frames in generation {gen}, have {self.state.frames})",
            )
        return True, rest

    def _conflict(self) -> Reply:
        return _json(
            200,
            {"status": "conflict", "generation": self.state.generation, "max_frame_no": self.state.frames},
        )

    def _already_have(self, start: int, frames: list[wal.Frame]) -> bool:
        """A retried push whose frames the primary already has (same pages, same markers)."""
        stop = start + len(frames)
        if stop - 1 > self.state.frames:
            return False
        have = list(wal.iter_archive(self._gen_frames(self.state.generation), FRAME_SIZE, start, stop))
        return len(have) == len(frames) and all(
            h[:8] == f.raw[:8] and h[wal.FRAME_HEADER_SIZE :] == f.page for h, f in zip(have, frames)
        )

    def _append_physical(self, frames: list[wal.Frame]) -> None:
        """Append whole transactions to the primary's WAL; caller holds SQLite's write lock."""
        st = self.state
        raw_head = wal.read_file(self.wal_path)[: wal.WAL_HEADER_SIZE]
        old = wal.parse_header(raw_head)
        if st.phys_frames == 0:
            header = wal.WalHeader.new(
                PROTOCOL_PAGE_SIZE,
                (old.checkpoint_seq + 1) & 0xFFFFFFFF if old else 0,
                (old.salt1 + 1) & 0xFFFFFFFF if old else secrets.randbits(32),
                secrets.randbits(32),
            )
            data, _ = wal.encode_frames(frames, header, (header.cksum1, header.cksum2))
            wal.fsync_write(self.wal_path, header.pack() + data, 0)
            st.salts = list(header.salts)
            st.phys_cksum = [header.cksum1, header.cksum2]
            st.delta = st.frames
        else:
            if old is None or list(old.salts) != st.salts:
                raise SyncProtocolError(500, f"sync primary {self.db_path}: WAL changed under the write lock")
            data, _ = wal.encode_frames(frames, old, tuple(st.phys_cksum))  # type: ignore[arg-type]
            wal.fsync_write(self.wal_path, data, wal.WAL_HEADER_SIZE + st.phys_frames * FRAME_SIZE)
        self._save_state()
        self._invalidate_wal_index()

    def _invalidate_wal_index(self) -> None:
        """Make SQLite rebuild its WAL index from the file (its crash-recovery path).

        The second copy of the wal-index header stops matching the first, which every
        connection treats as "recover before reading".
        """
        if self._shm_fd is None:
            self._shm_fd = os.open(self.shm_path, os.O_RDWR)
        offset = wal.SHM_HEADER_COPY_SIZE + 12  # isInit byte of the second header copy
        current = os.pread(self._shm_fd, 1, offset)
        os.pwrite(self._shm_fd, bytes([(current[0] if current else 0) ^ 0xFF]), offset)
