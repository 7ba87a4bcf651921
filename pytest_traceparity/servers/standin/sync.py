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

How the primary keeps that promise: the namespace's database stays in WAL mode with no
automatic checkpoints; every committed frame (header salts and checksum chain verified,
cut at the last commit marker, exactly SQLite's recovery rule) is appended to a per-
generation archive as soon as the stand-in reports a write, and to a *shadow* file (the
database image as a replica sees it). A checkpoint or a restart starts a new generation
whose export is the shadow, so replicas that were behind follow it frame-exactly.
Pushed frames are appended to the primary's own WAL (re-stamped with its salts and
checksum chain, under SQLite's write lock), then SQLite is made to re-read the WAL;
the primary, its Hrana clients and every replica see the same pages. Anything the
archive cannot vouch for (frames lost to a checkpoint nobody saw) ends the generation
with an explicit error for replicas that would otherwise diverge silently.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import threading
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import wal

PROTOCOL_PAGE_SIZE = 4096  # the libsql client hard-codes 4096-byte pages for pulls
FRAME_SIZE = wal.FRAME_HEADER_SIZE + PROTOCOL_PAGE_SIZE
STATE_VERSION = 1
PUSH_LOCK_TIMEOUT = 2.0  # seconds to wait for SQLite's write lock; the client retries 5xx

_SYNC_PATH = re.compile(r"/sync/(\d+)/(\d+)/(\d+)(?:/([^/]+))?")
_EXPORT_PATH = re.compile(r"/export/(\d+)")

Reply = tuple[int, str, bytes]


class SyncProtocolError(Exception):
    """A request this primary refuses, with the HTTP status and a message for the client."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


@dataclass
class _State:
    """What survives a restart; ``logical = physical + delta`` maps WAL frames to the generation."""

    generation: int = 1
    frames: int = 0
    delta: int = 0
    salts: list[int] | None = None
    phys_frames: int = 0
    phys_cksum: list[int] = field(default_factory=lambda: [0, 0])
    #: generations after which the next one does not continue (frames were lost)
    breaks: list[int] = field(default_factory=list)
    version: int = STATE_VERSION


@dataclass
class _Pending:
    generation: int
    next_frame: int
    frames: list[wal.Frame]


def _json(status: int, payload: dict[str, Any]) -> Reply:
    return status, "application/json", json.dumps(payload).encode()


class SyncPrimary:
    """Serves one database to embedded replicas: info, export, pull and push.

    ``lock`` is the namespace lock the stand-in holds around writes (any lock works
    standalone). Call :meth:`ingest` after writes (or register :meth:`on_write` as a
    stand-in write listener); sync requests ingest too, so missing a call only delays.
    """

    def __init__(
        self,
        db_path: str | Path,
        lock: Any = None,
        *,
        state_dir: str | Path | None = None,
        restart_generation: bool = True,
    ) -> None:
        self.db_path = Path(db_path)
        self.wal_path = Path(f"{self.db_path}-wal")
        self.shm_path = Path(f"{self.db_path}-shm")
        self.state_dir = Path(state_dir) if state_dir else Path(f"{self.db_path}-sync")
        self.lock = lock if lock is not None else threading.RLock()
        self._mutex = threading.RLock()
        self._pending: dict[str, _Pending] = {}
        self._closed = False
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # One connection for the primary's lifetime: it keeps SQLite from checkpointing and
        # deleting the WAL when the stand-in's last connection closes, and takes the write
        # lock for pushes. timeout = SQLite busy timeout.
        self._conn = sqlite3.connect(
            str(self.db_path), timeout=PUSH_LOCK_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise SyncProtocolError(
                500, f"sync primary {self.db_path}: cannot switch the database to WAL mode (got {mode!r})"
            )
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        if page_size != PROTOCOL_PAGE_SIZE:
            raise SyncProtocolError(
                500,
                f"sync primary {self.db_path}: page size is {page_size}, the libsql replica protocol "
                f"needs {PROTOCOL_PAGE_SIZE}; recreate the database with PRAGMA page_size=4096",
            )
        # Kept open until close(): closing any descriptor of a file drops every POSIX lock
        # this process holds on it, which would undermine SQLite's locks on -shm.
        self._shm_fd: int | None = None
        self._db_fd: int | None = None
        # pushes are serialized: they share self._conn and SQLite's write lock
        self._push_lock = threading.Lock()
        self._push_owner: int | None = None
        with self.lock, self._mutex:
            if (self.state_dir / "state.json").exists():
                self.state = self._load_state()
                self.ingest()
                if restart_generation and self.state.frames > 0:
                    self._new_generation()
            else:
                self.state = _State()
                self._start_first_generation()
        self._finalizer = weakref.finalize(self, _close_quietly, self._conn)

    # ------------------------------------------------------------------ files

    def _gen_db(self, gen: int) -> Path:
        return self.state_dir / f"gen-{gen}.db"

    def _gen_frames(self, gen: int) -> Path:
        return self.state_dir / f"gen-{gen}.frames"

    @property
    def _shadow(self) -> Path:
        return self.state_dir / "shadow.db"

    def _load_state(self) -> _State:
        path = self.state_dir / "state.json"
        try:
            raw = json.loads(path.read_text())
            state = _State(**raw)
        except (ValueError, TypeError) as exc:
            raise SyncProtocolError(
                500, f"sync primary state {path} is unreadable ({exc}); delete {self.state_dir} to start over"
            ) from None
        if state.version != STATE_VERSION:
            raise SyncProtocolError(500, f"sync primary state {path} has version {state.version}")
        # Crash safety: the archive may hold frames the state never recorded; drop them and
        # rebuild the shadow from the generation's export plus its archive.
        frames_path = self._gen_frames(state.generation)
        with open(frames_path, "a+b") as fh:
            fh.truncate(state.frames * FRAME_SIZE)
        shutil.copyfile(self._gen_db(state.generation), self._shadow)
        wal.apply_frames(
            self._shadow,
            (wal.Frame(f) for f in wal.iter_archive(frames_path, FRAME_SIZE, 1, state.frames + 1)),
            PROTOCOL_PAGE_SIZE,
        )
        return state

    def _save_state(self) -> None:
        path = self.state_dir / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.state)))
        os.replace(tmp, path)

    def _snapshot_now(self) -> tuple[bytes, wal.WalScan]:
        """A consistent (database image, committed WAL) pair, taken under SQLite's write lock."""
        if self._push_owner == threading.get_ident():
            # inside a push: this thread already holds the write lock on self._conn
            scan = wal.scan_wal(wal.read_file(self.wal_path))
            image = self._image(self._conn, scan)
        else:
            conn = sqlite3.connect(str(self.db_path), timeout=PUSH_LOCK_TIMEOUT, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                scan = wal.scan_wal(wal.read_file(self.wal_path))
                image = self._image(conn, scan)
                conn.execute("ROLLBACK")
            finally:
                conn.close()
        if not image:
            raise SyncProtocolError(500, f"sync primary {self.db_path}: the database is empty (0 pages)")
        return image, scan

    def _image(self, conn: sqlite3.Connection, scan: wal.WalScan) -> bytes:
        """The database image under ``conn``'s write lock (Python 3.10 has no ``serialize``)."""
        serialize = getattr(conn, "serialize", None)
        if serialize is not None:
            return bytes(serialize())
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        return wal.image_with_frames(wal.read_file(self.db_path), scan.frames, page_size)

    def _start_first_generation(self) -> None:
        image, scan = self._snapshot_now()
        self._rebase(image, scan)
        self.state.generation = 1
        self._gen_db(1).write_bytes(image)
        self._gen_frames(1).write_bytes(b"")
        self._save_state()

    def _rebase(self, image: bytes, scan: wal.WalScan) -> None:
        """Generation starts at ``image``; the WAL's existing frames are already in it."""
        self._shadow.write_bytes(image)
        self.state.frames = 0
        self.state.salts = list(scan.salts) if scan.salts else None
        self.state.phys_frames = len(scan.frames)
        self.state.phys_cksum = list(scan.last_cksum)
        self.state.delta = -len(scan.frames)

    def _new_generation(self, *, continues: bool = True) -> int:
        """Close the current generation; the next one starts from its end state."""
        old = self.state.generation
        new = old + 1
        if continues:
            shutil.copyfile(self._shadow, self._gen_db(new))
            self.state.delta -= self.state.frames
            self.state.frames = 0
        else:
            image, scan = self._snapshot_now()
            self._rebase(image, scan)
            self._gen_db(new).write_bytes(image)
            self.state.breaks.append(old)
        self._gen_frames(new).write_bytes(b"")
        self.state.generation = new
        self._pending.clear()
        self._save_state()
        return new

    # ------------------------------------------------------------------ ingest

    def on_write(self, db: Any, conn: Any) -> None:
        """Stand-in write listener: ingest once the change is committed."""
        if getattr(conn, "autocommit", True):
            self.ingest()

    def ingest(self) -> int:
        """Archive newly committed WAL frames; returns how many were added."""
        with self.lock, self._mutex:
            if self._closed:
                return 0
            return self._ingest()

    def _ingest(self) -> int:
        st = self.state
        scan: wal.WalScan | None = None
        if st.salts is not None:
            scan = wal.scan_wal_file(self.wal_path, st.phys_frames, tuple(st.phys_cksum))  # type: ignore[arg-type]
            if scan.salts is not None and list(scan.salts) == st.salts:
                return self._archive(scan.frames, scan.last_cksum)
        # No WAL yet, or it was restarted/truncated since we last looked: a new epoch.
        scan = wal.scan_wal_file(self.wal_path)
        if scan.header is None and st.phys_frames == 0:
            st.salts = None
            return 0
        if st.phys_frames > 0 and not self._continuous(scan):
            self._new_generation(continues=False)
            return 0
        st.salts = list(scan.salts) if scan.salts else None
        st.delta = st.frames
        st.phys_frames = 0
        st.phys_cksum = list(scan.last_cksum) if scan.header else [0, 0]
        self._save_state()
        return self._archive(scan.frames, scan.last_cksum)

    def _archive(self, new_frames: list[wal.Frame], last_cksum: tuple[int, int]) -> int:
        """Append committed frames to the generation's archive and the shadow image."""
        if not new_frames:
            return 0
        st = self.state
        for frame in new_frames:
            if len(frame.page) != PROTOCOL_PAGE_SIZE:
                raise SyncProtocolError(500, f"sync primary {self.db_path}: WAL page size is not 4096")
        with open(self._gen_frames(st.generation), "ab") as fh:
            for frame in new_frames:
                fh.write(frame.raw)
        wal.apply_frames(self._shadow, new_frames, PROTOCOL_PAGE_SIZE)
        st.frames += len(new_frames)
        st.phys_frames += len(new_frames)
        st.phys_cksum = list(last_cksum)
        self._save_state()
        return len(new_frames)

    def _continuous(self, scan: wal.WalScan) -> bool:
        """Does the database file hold exactly what we archived (plus new-epoch pages)?"""
        shadow = self._shadow.read_bytes()
        if self._db_fd is None:
            self._db_fd = os.open(self.db_path, os.O_RDONLY)
        image = os.pread(self._db_fd, os.fstat(self._db_fd).st_size, 0)
        later: dict[int, set[bytes]] = {}
        sizes = {len(shadow) // PROTOCOL_PAGE_SIZE}
        for frame in scan.frames:
            later.setdefault(frame.pgno, set()).add(frame.page)
            if frame.is_commit:
                sizes.add(frame.size_after)
        if len(image) // PROTOCOL_PAGE_SIZE not in sizes:
            return False
        for index in range(len(image) // PROTOCOL_PAGE_SIZE):
            page = image[index * PROTOCOL_PAGE_SIZE : (index + 1) * PROTOCOL_PAGE_SIZE]
            base = shadow[index * PROTOCOL_PAGE_SIZE : (index + 1) * PROTOCOL_PAGE_SIZE]
            if page != base and page not in later.get(index + 1, ()):
                return False
        return True

    # ------------------------------------------------------------------ protocol

    @property
    def generation(self) -> int:
        return self.state.generation

    def frame_count(self, generation: int | None = None) -> int:
        """Committed frames of a generation (the current one by default), after ingesting."""
        with self.lock, self._mutex:
            if not self._closed:
                self._ingest()
            return self._frame_count(generation)

    def _frame_count(self, generation: int | None = None) -> int:
        gen = self.state.generation if generation is None else generation
        if gen == self.state.generation:
            return self.state.frames
        try:
            return os.path.getsize(self._gen_frames(gen)) // FRAME_SIZE
        except FileNotFoundError:
            return 0

    def position(self) -> tuple[int, int]:
        """(generation, frames) after ingesting; what an up-to-date replica has."""
        with self.lock, self._mutex:
            self._ingest()
            return self.state.generation, self.state.frames

    def checkpoint(self) -> int:
        """Checkpoint the primary's WAL and start a new generation; returns its number."""
        with self.lock, self._mutex:
            self._ingest()
            with contextlib.suppress(sqlite3.OperationalError):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            gen = self._new_generation()
            self._ingest()
            return gen

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        """Answer one sync request; ``path`` is relative to the database URL."""
        try:
            if method == "GET" and path == "/info":
                with self.lock, self._mutex:
                    self._ingest()
                    # max_frame_no is a stand-in extra (the client ignores unknown keys):
                    # it lets the harness report how many frames a replica is behind.
                    return _json(
                        200,
                        {"current_generation": self.state.generation, "max_frame_no": self.state.frames},
                    )
            m = _EXPORT_PATH.fullmatch(path)
            if method == "GET" and m:
                return self._export(int(m.group(1)))
            m = _SYNC_PATH.fullmatch(path)
            if m:
                gen, start, end = int(m.group(1)), int(m.group(2)), int(m.group(3))
                if method == "GET" and m.group(4) is None:
                    return self._pull(gen, start, end)
                if method == "POST":
                    return self._push(gen, start, end, m.group(4), body)
            raise SyncProtocolError(404, f"no sync route for {method} {path}")
        except SyncProtocolError as err:
            payload = {"error": err.message, **err.extra}
            return _json(err.status, payload)

    def _export(self, gen: int) -> Reply:
        with self.lock, self._mutex:
            self._ingest()
            path = self._gen_db(gen)
            if gen < 1 or gen > self.state.generation or not path.exists():
                raise SyncProtocolError(
                    404,
                    f"generation {gen} does not exist on this primary (current generation is "
                    f"{self.state.generation})",
                )
            return 200, "application/octet-stream", path.read_bytes()

    def _pull(self, gen: int, start: int, end: int) -> Reply:
        with self.lock, self._mutex:
            self._ingest()
            current = self.state.generation
            if start < 1 or end <= start:
                raise SyncProtocolError(400, f"bad frame range {start}..{end} (frames start at 1)",
                                        generation=current)
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
        try:
            frames = wal.split_frames(body, PROTOCOL_PAGE_SIZE)
        except wal.WalFormatError as exc:
            raise SyncProtocolError(400, f"push body rejected: {exc}") from None
        if start < 1 or end - start != len(frames):
            raise SyncProtocolError(
                400, f"push of frames {start}..{end - 1} carries {len(frames)} frames"
            )
        if not self._push_lock.acquire(timeout=PUSH_LOCK_TIMEOUT):
            raise SyncProtocolError(503, "primary busy with another push, retry")
        try:
            self._push_owner = threading.get_ident()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                # Another connection holds a write transaction open; the client retries 5xx.
                raise SyncProtocolError(503, f"primary busy, retry the push: {exc}") from None
            applied = False
            try:
                with self.lock, self._mutex:
                    self._ingest()
                    st = self.state
                    pending: _Pending | None = None
                    if baton is not None:
                        pending = self._pending.get(baton)
                        if pending is None or pending.generation != gen or pending.next_frame != start:
                            raise SyncProtocolError(
                                400, f"unknown or stale push baton for frames {start}..{end - 1}"
                            )
                    if gen != st.generation:
                        return self._conflict()
                    base = start - len(pending.frames) if pending else start
                    if base != st.frames + 1:
                        if baton is None and self._already_have(start, frames):
                            return _json(200, {"status": "ok", "generation": gen, "max_frame_no": end - 1})
                        return self._conflict()
                    todo = (pending.frames if pending else []) + frames
                    last_commit = max((i for i, f in enumerate(todo) if f.is_commit), default=-1)
                    complete, rest = todo[: last_commit + 1], todo[last_commit + 1 :]
                    if complete:
                        self._append_physical(complete)
                        applied = True
                        # Still under the write lock: nobody else can have added frames.
                        expected = base + len(complete) - 1
                        self._ingest()
                        if st.frames != expected:
                            raise SyncProtocolError(
                                500,
                                f"sync primary {self.db_path}: pushed frames did not land (expected "
                                f"{expected} frames in generation {gen}, have {st.frames})",
                            )
                    if baton is not None:
                        self._pending.pop(baton, None)
                    new_baton: str | None = None
                    if rest:
                        new_baton = secrets.token_hex(8)
                        self._pending[new_baton] = _Pending(gen, end, rest)
            finally:
                self._conn.execute("ROLLBACK")
            if applied:
                # Make SQLite rebuild its WAL index now rather than on the next Hrana request.
                self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            self._push_owner = None
            self._push_lock.release()
        reply: dict[str, Any] = {"status": "ok", "generation": gen, "max_frame_no": end - 1}
        if new_baton:
            reply["baton"] = new_baton
        return _json(200, reply)

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

    # ------------------------------------------------------------------ lifecycle

    def info(self) -> dict[str, Any]:
        with self.lock, self._mutex:
            return {
                "generation": self.state.generation,
                "frames": self.state.frames,
                "state_dir": str(self.state_dir),
            }

    def close(self) -> None:
        with self.lock, self._mutex:
            if self._closed:
                return
            with contextlib.suppress(Exception):
                self._ingest()
            self._closed = True
            self._conn.close()
            for fd in (self._shm_fd, self._db_fd):
                if fd is not None:
                    os.close(fd)
            self._shm_fd = self._db_fd = None

    def destroy(self) -> None:
        """Close and remove the sync state (the namespace is being deleted)."""
        self.close()
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _close_quietly(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(Exception):
        conn.close()


# ---------------------------------------------------------------------- stand-in glue

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
    from .wire import HttpError, Response

    def route(req: Any) -> Any:
        try:
            primary = primary_for(req.namespace)
        except SyncProtocolError as err:
            raise HttpError(err.status, err.message, "SYNC_ERROR") from None
        status, ctype, body = primary.handle(req.method, req.path, req.headers, req.body)
        return Response(status, body, ctype)

    def checkpoint(req: Any) -> Any:
        from urllib.parse import unquote

        db = server.namespaces.get(unquote(req.match["ns"]))
        gen = primary_for(db).checkpoint()
        return Response.json({"generation": gen})

    def delete(req: Any) -> Any:
        from urllib.parse import unquote

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

