"""Reading and writing SQLite WAL files, enough to serve and accept replica frames.

The embedded-replica protocol moves raw WAL frames (24-byte header + one page), so the
sync primary must know exactly which frames of a live ``-wal`` file are committed: the
ones whose salts match the WAL header and whose cumulative checksums verify, up to the
last frame that carries a commit marker (non-zero "database size after commit").
That is the same rule SQLite applies when it recovers a WAL, implemented from the file
format documentation (https://www.sqlite.org/fileformat2.html#walformat).
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

WAL_HEADER_SIZE = 32
FRAME_HEADER_SIZE = 24
WAL_MAGIC_LE = 0x377F0682  # checksums over little-endian words
WAL_MAGIC_BE = 0x377F0683  # checksums over big-endian words
WAL_FORMAT_VERSION = 3007000
#: wal-index header: two 48-byte copies at the start of the ``-shm`` file.
SHM_HEADER_COPY_SIZE = 48

_NATIVE_BIG = sys.byteorder == "big"


class WalFormatError(ValueError):
    """A WAL file or frame that does not follow the SQLite format."""


def checksum(data: bytes, big_endian: bool, s0: int = 0, s1: int = 0) -> tuple[int, int]:
    """SQLite's WAL checksum (a Fletcher-like sum over pairs of 32-bit words)."""
    if len(data) % 8:
        raise WalFormatError(f"checksummed data must be a multiple of 8 bytes, got {len(data)}")
    words = array("I", data)
    if words.itemsize != 4:  # pragma: no cover - every platform CPython runs on today
        words = array("L", data)
    if big_endian != _NATIVE_BIG:
        words.byteswap()
    mask = 0xFFFFFFFF
    it = iter(words)
    for a, b in zip(it, it):
        s0 = (s0 + a + s1) & mask
        s1 = (s1 + b + s0) & mask
    return s0, s1


@dataclass(frozen=True)
class WalHeader:
    magic: int
    version: int
    page_size: int
    checkpoint_seq: int
    salt1: int
    salt2: int
    cksum1: int
    cksum2: int

    @property
    def big_endian(self) -> bool:
        return bool(self.magic & 1)

    @property
    def salts(self) -> tuple[int, int]:
        return (self.salt1, self.salt2)

    def pack(self) -> bytes:
        return struct.pack(
            ">8I",
            self.magic,
            self.version,
            self.page_size,
            self.checkpoint_seq,
            self.salt1,
            self.salt2,
            self.cksum1,
            self.cksum2,
        )

    @classmethod
    def new(cls, page_size: int, checkpoint_seq: int, salt1: int, salt2: int) -> WalHeader:
        """A fresh header with a valid checksum (native word order, as SQLite writes)."""
        magic = WAL_MAGIC_BE if _NATIVE_BIG else WAL_MAGIC_LE
        first = struct.pack(">6I", magic, WAL_FORMAT_VERSION, page_size, checkpoint_seq, salt1, salt2)
        c1, c2 = checksum(first, bool(magic & 1))
        return cls(magic, WAL_FORMAT_VERSION, page_size, checkpoint_seq, salt1, salt2, c1, c2)


def parse_header(raw: bytes) -> WalHeader | None:
    """The WAL header, or None when the file is empty or not a valid WAL (SQLite ignores it)."""
    if len(raw) < WAL_HEADER_SIZE:
        return None
    fields = struct.unpack(">8I", raw[:WAL_HEADER_SIZE])
    header = WalHeader(*fields)
    if header.magic not in (WAL_MAGIC_LE, WAL_MAGIC_BE) or header.version != WAL_FORMAT_VERSION:
        return None
    ps = header.page_size
    if ps < 512 or ps > 65536 or ps & (ps - 1):
        return None
    if checksum(raw[:24], header.big_endian) != (header.cksum1, header.cksum2):
        return None
    return header


@dataclass(frozen=True)
class Frame:
    """One WAL frame as the replica protocol ships it: 24-byte header + page."""

    raw: bytes

    @property
    def pgno(self) -> int:
        return int.from_bytes(self.raw[0:4], "big")

    @property
    def size_after(self) -> int:
        """Database size in pages after this frame's transaction; 0 unless a commit frame."""
        return int.from_bytes(self.raw[4:8], "big")

    @property
    def is_commit(self) -> bool:
        return self.size_after != 0

    @property
    def page(self) -> bytes:
        return self.raw[FRAME_HEADER_SIZE:]


def split_frames(body: bytes, page_size: int) -> list[Frame]:
    """Cut a protocol body into frames; the length must be a whole number of frames."""
    size = FRAME_HEADER_SIZE + page_size
    if not body or len(body) % size:
        raise WalFormatError(
            f"body of {len(body)} bytes is not a whole number of {size}-byte frames "
            f"(24-byte header + {page_size}-byte page)"
        )
    frames = [Frame(body[i : i + size]) for i in range(0, len(body), size)]
    for number, frame in enumerate(frames, 1):
        if frame.pgno == 0:
            raise WalFormatError(f"frame {number} of the body has page number 0")
    return frames


@dataclass
class WalScan:
    """The committed prefix of a WAL file."""

    header: WalHeader | None
    frames: list[Frame] = field(default_factory=list)
    #: checksum after the last committed frame (or of the header when there is none)
    last_cksum: tuple[int, int] = (0, 0)

    @property
    def salts(self) -> tuple[int, int] | None:
        return self.header.salts if self.header else None


def scan_wal(raw: bytes, start_frame: int = 0, start_cksum: tuple[int, int] | None = None) -> WalScan:
    """Committed frames of a WAL image; ``start_frame`` skips frames already known valid.

    When skipping, ``start_cksum`` must be the checksum after frame ``start_frame``
    (the caller verified those frames before) so the chain can continue from there.
    """
    header = parse_header(raw)
    if header is None:
        return WalScan(None)
    size = FRAME_HEADER_SIZE + header.page_size
    offset = WAL_HEADER_SIZE + start_frame * size
    return _scan_frames(header, raw[offset:], start_frame, start_cksum)


def scan_wal_file(path: Path, start_frame: int = 0, start_cksum: tuple[int, int] | None = None) -> WalScan:
    """Like :func:`scan_wal` but reads only the header and the frames after ``start_frame``."""
    try:
        with open(path, "rb") as fh:
            header = parse_header(fh.read(WAL_HEADER_SIZE))
            if header is None:
                return WalScan(None)
            fh.seek(WAL_HEADER_SIZE + start_frame * (FRAME_HEADER_SIZE + header.page_size))
            data = fh.read()
    except FileNotFoundError:
        return WalScan(None)
    return _scan_frames(header, data, start_frame, start_cksum)


def _scan_frames(header: WalHeader, data: bytes, start_frame: int, start_cksum: tuple[int, int] | None) -> WalScan:
    size = FRAME_HEADER_SIZE + header.page_size
    s = (header.cksum1, header.cksum2) if start_frame == 0 else start_cksum
    if s is None:
        raise ValueError("start_cksum is required with start_frame")
    committed: list[Frame] = []
    pending: list[Frame] = []
    last_commit_cksum = s
    offset = 0
    be = header.big_endian
    while offset + size <= len(data):
        frame_raw = data[offset : offset + size]
        pgno, _n, salt1, salt2, c1, c2 = struct.unpack(">6I", frame_raw[:FRAME_HEADER_SIZE])
        if pgno == 0 or (salt1, salt2) != header.salts:
            break
        s = checksum(frame_raw[:8], be, *s)
        s = checksum(frame_raw[FRAME_HEADER_SIZE:], be, *s)
        if s != (c1, c2):
            break
        frame = Frame(frame_raw)
        pending.append(frame)
        if frame.is_commit:
            committed.extend(pending)
            pending.clear()
            last_commit_cksum = s
        offset += size
    return WalScan(header, committed, last_commit_cksum)


def encode_frames(frames: Iterable[Frame], header: WalHeader, cksum: tuple[int, int]) -> tuple[bytes, tuple[int, int]]:
    """Re-stamp frames with this WAL's salts and a checksum chain continuing ``cksum``."""
    out = bytearray()
    s = cksum
    be = header.big_endian
    for frame in frames:
        first8 = frame.raw[:8]
        page = frame.raw[FRAME_HEADER_SIZE:]
        if len(page) != header.page_size:
            raise WalFormatError(
                f"frame for page {frame.pgno} holds {len(page)} bytes, the WAL page size is {header.page_size}"
            )
        s = checksum(first8, be, *s)
        s = checksum(page, be, *s)
        out += first8 + struct.pack(">4I", header.salt1, header.salt2, s[0], s[1]) + page
    return bytes(out), s


def apply_frames(db_path: Path, frames: Iterable[Frame], page_size: int) -> None:
    """Write frames' pages into a plain database image file (what a checkpoint does)."""
    with open(db_path, "r+b") as fh:
        for frame in frames:
            fh.seek((frame.pgno - 1) * page_size)
            fh.write(frame.page)
            if frame.is_commit:
                fh.truncate(frame.size_after * page_size)


def image_with_frames(db_image: bytes, frames: Iterable[Frame], page_size: int) -> bytes:
    """The database as a reader sees it: the main file with the committed WAL frames applied.

    Equals ``sqlite3.Connection.serialize()`` (Python 3.11+) taken in the same snapshot.
    """
    image = bytearray(db_image)
    for frame in frames:
        offset = (frame.pgno - 1) * page_size
        if len(image) < offset + page_size:
            image.extend(bytes(offset + page_size - len(image)))
        image[offset : offset + page_size] = frame.page
        if frame.is_commit:
            del image[frame.size_after * page_size :]
    return bytes(image)


def iter_archive(path: Path, frame_size: int, start: int, stop: int) -> Iterator[bytes]:
    """Frames ``start``..``stop-1`` (1-based) of an archive file of back-to-back frames."""
    with open(path, "rb") as fh:
        fh.seek((start - 1) * frame_size)
        for _ in range(start, stop):
            chunk = fh.read(frame_size)
            if len(chunk) < frame_size:
                return
            yield chunk


def read_file(path: Path) -> bytes:
    """Whole file, or b"" when it does not exist (a WAL that SQLite deleted or never made)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return b""


def fsync_write(path: Path, data: bytes, offset: int) -> None:
    """pwrite + fsync on a file that SQLite does not lock (the ``-wal`` file)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)
