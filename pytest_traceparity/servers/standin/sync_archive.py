"""The sync primary's archive: WAL frames of each generation, its export, and its state.

The primary keeps its promise to replicas (see :mod:`.sync`) this way: the namespace's
database stays in WAL mode with no automatic checkpoints; every committed frame (header
salts and checksum chain verified, cut at the last commit marker, exactly SQLite's
recovery rule) is appended to a per-generation archive as soon as the stand-in reports a
write, and to a *shadow* file (the database image as a replica sees it). A checkpoint or a
restart starts a new generation whose export is the shadow, so replicas that were behind
follow it frame-exactly. Pushed frames are appended to the primary's own WAL (re-stamped
with its salts and checksum chain, under SQLite's write lock), then SQLite is made to
re-read the WAL; the primary, its Hrana clients and every replica see the same pages.
Anything the archive cannot vouch for (frames lost to a checkpoint nobody saw) ends the
generation with an explicit error for replicas that would otherwise diverge silently.
"""

from __future__ import annotations

import contextlib
import json
import os
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


class SyncArchive:
    """One database's generations and their committed frames, kept frame-exact for replicas.

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

    # ------------------------------------------------------------------ positions

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
