"""The stand-in's ctypes binding uses the very SQLite the sqlite3 module uses, or refuses to start."""

from __future__ import annotations

import _sqlite3
import ctypes
import ctypes.util
import sqlite3
import subprocess
import sys

import pytest

from pytest_traceparity.servers.standin import ffi


def test_library_is_the_same_copy_as_the_sqlite3_modules() -> None:
    """A global setting made through the ctypes library is seen by Python's sqlite3: one copy, not two."""
    lib = ffi.library()
    limit = lib.sqlite3_soft_heap_limit64
    limit.restype, limit.argtypes = ctypes.c_int64, [ctypes.c_int64]
    before = limit(-1)  # a negative argument only reads the limit
    try:
        limit(123456789)
        conn = sqlite3.connect(":memory:")
        try:
            assert conn.execute("PRAGMA soft_heap_limit").fetchone()[0] == 123456789
        finally:
            conn.close()
    finally:
        limit(before)
    assert ffi.sqlite_version() == sqlite3.sqlite_version


def test_find_library_is_only_the_last_resort() -> None:
    paths = ffi._candidate_paths()
    assert paths[0] == _sqlite3.__file__
    found = ctypes.util.find_library("sqlite3")
    if found is not None:
        assert paths.index(found) == len(paths) - 1


def test_a_library_of_another_version_is_refused() -> None:
    with pytest.raises(ffi.SqliteLibraryError) as info:
        ffi.load_library(ffi._candidate_paths(), "3.0.0")
    message = str(info.value)
    assert f"SQLite {sqlite3.sqlite_version}, but Python's sqlite3 module uses 3.0.0" in message
    assert "--sqld=binary/docker/url" in message


def test_serve_refuses_to_start_when_versions_differ() -> None:
    code = (
        "import sqlite3, sys\n"
        "sqlite3.sqlite_version = '3.0.0'  # as if Python's sqlite3 were linked to another SQLite\n"
        "from pytest_traceparity.servers.standin.__main__ import serve_main\n"
        "sys.exit(serve_main(['--port', '0']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        "traceparity serve: traceparity stand-in: cannot load the SQLite C library that Python's sqlite3 "
        "module uses (SQLite 3.0.0)" in done.stderr
    )
    assert "Traceback" not in done.stderr
    assert "listening on" not in done.stdout
