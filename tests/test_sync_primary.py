"""SyncPrimary on its own (no HTTP): frame selection, generations, push rules.

The primary is driven through ``handle()`` exactly as the stand-in routes requests; the
writers are plain ``sqlite3`` connections, so these tests also prove the primary copes
with writers it is not told about.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_traceparity.servers.standin import wal
from pytest_traceparity.servers.standin.sync import FRAME_SIZE, SyncPrimary


def _writer(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    return conn


Primary = tuple[SyncPrimary, sqlite3.Connection, Path]


@pytest.fixture
def primary(tmp_path: Path) -> Iterator[Primary]:
    db = tmp_path / "primary.db"
    w = _writer(db)
    w.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    p = SyncPrimary(db)
    yield p, w, db
    p.close()
    w.close()


def _get(p: SyncPrimary, path: str) -> tuple[int, bytes]:
    status, _ctype, body = p.handle("GET", path, {}, b"")
    return status, body


def open_image(image: bytes, path: Path) -> sqlite3.Connection:
    """Open an exported image as a plain rollback-journal file (works on every Python)."""
    path.write_bytes(image[:18] + b"\x01\x01" + image[20:])
    return sqlite3.connect(path)


def test_info_and_export_of_first_generation(primary: Primary) -> None:
    p, _w, _db = primary
    status, body = _get(p, "/info")
    assert status == 200 and json.loads(body) == {"current_generation": 1, "max_frame_no": 0}
    status, image = _get(p, "/export/1")
    assert status == 200
    assert image[:16] == b"SQLite format 3\x00"
    assert image[18:20] == b"\x02\x02", "export must say WAL mode, the replica relies on it"
    # the table created before the primary existed is in the export, not in the frames
    mem = open_image(image, _db.parent / "export-1.db")
    assert [r[0] for r in mem.execute("SELECT name FROM sqlite_master")] == ["t"]
    assert _get(p, "/export/2")[0] == 404


def test_pull_serves_committed_frames_only(primary: Primary) -> None:
    p, w, db = primary
    w.execute("INSERT INTO t(v) VALUES ('one')")
    status, body = _get(p, "/sync/1/1/129")
    assert status == 200 and len(body) % FRAME_SIZE == 0
    frames = wal.split_frames(body, 4096)
    assert frames[-1].is_commit
    committed = len(frames)
    physical = len(wal.scan_wal(wal.read_file(Path(f"{db}-wal"))).frames)
    # an open transaction that spills pages to the WAL before committing
    w.execute("PRAGMA cache_size=1")
    w.execute("BEGIN")
    for i in range(1200):
        w.execute("INSERT INTO t(v) VALUES (?)", ("x" * 500 + str(i),))
    assert len(wal.scan_wal(wal.read_file(Path(f"{db}-wal"))).frames) == physical
    assert len(wal.read_file(Path(f"{db}-wal"))) > 32 + (physical + 1) * FRAME_SIZE, "no spill"
    status, body = _get(p, f"/sync/1/{committed + 1}/{committed + 129}")
    assert status == 400 and json.loads(body) == {"generation": 1}
    w.execute("COMMIT")
    status, body = _get(p, f"/sync/1/{committed + 1}/{committed + 129}")
    assert status == 200
    assert len(body) == 128 * FRAME_SIZE, "a full batch: end is exclusive"


def test_checkpoint_starts_generation_that_continues_the_last(primary: Primary, tmp_path: Path) -> None:
    p, w, _db = primary
    w.execute("INSERT INTO t(v) VALUES ('before')")
    frames_gen1 = _get(p, "/sync/1/1/129")[1]
    assert p.checkpoint() == 2
    assert json.loads(_get(p, "/info")[1])["current_generation"] == 2
    # a replica at the end of generation 1 is told to move on
    n = len(frames_gen1) // FRAME_SIZE
    status, body = _get(p, f"/sync/1/{n + 1}/{n + 129}")
    assert status == 400 and json.loads(body) == {"generation": 2}
    # export 2 == export 1 + frames of generation 1
    base = tmp_path / "derived.db"
    base.write_bytes(_get(p, "/export/1")[1])
    wal.apply_frames(base, wal.split_frames(frames_gen1, 4096), 4096)
    assert base.read_bytes() == _get(p, "/export/2")[1]
    w.execute("INSERT INTO t(v) VALUES ('after')")
    status, body = _get(p, "/sync/2/1/129")
    assert status == 200 and wal.split_frames(body, 4096)[-1].is_commit


def test_restart_starts_a_new_generation(tmp_path: Path) -> None:
    db = tmp_path / "primary.db"
    w = _writer(db)
    w.execute("CREATE TABLE t(x)")
    p = SyncPrimary(db)
    w.execute("INSERT INTO t VALUES (1)")
    assert p.position() == (1, p.frame_count()) and p.frame_count() > 0
    p.close()
    w.close()  # last connection: SQLite checkpoints and deletes the WAL
    assert not Path(f"{db}-wal").exists()
    p2 = SyncPrimary(db)
    try:
        assert p2.generation == 2
        assert p2.frame_count(1) > 0
        image = _get(p2, "/export/2")[1]
        mem = open_image(image, db.parent / "export-2.db")
        assert mem.execute("SELECT x FROM t").fetchall() == [(1,)]
    finally:
        p2.close()


def test_unknown_generation_and_claims_beyond_the_primary_are_errors(primary: Primary) -> None:
    p, _w, _db = primary
    status, body = _get(p, "/sync/7/1/129")
    assert status == 409 and "generation 7" in json.loads(body)["error"]
    status, body = _get(p, "/sync/1/50/178")
    assert status == 409 and "delete the replica" in json.loads(body)["error"]


def test_push_appends_to_the_primary_wal_and_conflicts_when_behind(primary: Primary) -> None:
    p, w, db = primary
    w.execute("INSERT INTO t(v) VALUES ('seed')")
    n = p.frame_count()
    # build a transaction on a copy, as a replica would, and push its frames
    replica = db.parent / "replica.db"
    replica.write_bytes(_get(p, "/export/1")[1])
    wal.apply_frames(replica, wal.split_frames(_get(p, f"/sync/1/1/{n + 1}")[1], 4096), 4096)
    r = _writer(replica)
    r.execute("INSERT INTO t(v) VALUES ('from replica')")
    pushed = wal.scan_wal(wal.read_file(Path(f"{replica}-wal"))).frames
    body = b"".join(f.raw for f in pushed)
    status, _, reply = p.handle("POST", f"/sync/1/{n + 1}/{n + 1 + len(pushed)}", {}, body)
    assert status == 200
    assert json.loads(reply) == {"status": "ok", "generation": 1, "max_frame_no": n + len(pushed)}
    # the primary's own connections see it (SQLite re-read its WAL)
    assert [v for (v,) in w.execute("SELECT v FROM t ORDER BY id")] == ["seed", "from replica"]
    assert w.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # the same push again is recognised as already applied
    status, _, reply = p.handle("POST", f"/sync/1/{n + 1}/{n + 1 + len(pushed)}", {}, body)
    assert json.loads(reply)["status"] == "ok"
    # a push based on an older position is a conflict and changes nothing
    w.execute("INSERT INTO t(v) VALUES ('primary moved on')")
    changed = body[:200] + bytes([body[200] ^ 1]) + body[201:]
    status, _, reply = p.handle("POST", f"/sync/1/{n + 1}/{n + 1 + len(pushed)}", {}, changed)
    assert json.loads(reply) == {"status": "conflict", "generation": 1, "max_frame_no": p.frame_count()}
    assert [v for (v,) in w.execute("SELECT v FROM t ORDER BY id")] == ["seed", "from replica", "primary moved on"]
    r.close()


def test_push_body_must_be_whole_frames(primary: Primary) -> None:
    p, _w, _db = primary
    status, _, reply = p.handle("POST", "/sync/1/2/3", {}, b"\x00" * 100)
    assert status == 400 and "whole number" in json.loads(reply)["error"]


def test_image_from_file_and_wal_equals_serialize(tmp_path: Path) -> None:
    """The Python 3.10 path (no Connection.serialize) builds the same image from file + WAL."""
    import sqlite3

    from pytest_traceparity.servers.standin import wal

    path = tmp_path / "db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t(a)")
    conn.executemany("INSERT INTO t VALUES (?)", [(b"x" * 3000,) for _ in range(20)])
    conn.execute("DELETE FROM t WHERE rowid > 5")
    conn.execute("VACUUM")  # shrinks the database: a commit frame truncates the image
    scan = wal.scan_wal(wal.read_file(Path(f"{path}-wal")))
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    built = wal.image_with_frames(wal.read_file(path), scan.frames, page_size)
    if not hasattr(conn, "serialize"):
        pytest.skip("Connection.serialize needs Python 3.11+; nothing to compare the built image with")
    assert built == conn.serialize()
