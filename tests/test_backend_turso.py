"""turso-local, sqlalchemy-turso and turso-sync on the real pyturso client and a real tursodb."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pytest_traceparity.backends.base import Backend, BackendContext
from pytest_traceparity.backends.builtin import OPTIONAL_BACKENDS_IN_ALL
from pytest_traceparity.backends.sqlalchemy_turso import SQLAlchemyTursoBackend
from pytest_traceparity.backends.turso_local import TursoLocalBackend
from pytest_traceparity.backends.turso_sync import TursoSyncBackend
from pytest_traceparity.errors import DatabaseError
from pytest_traceparity.registry import BackendRegistry, standalone_registry
from pytest_traceparity.servers.tursodb import TursodbHost, TursoServers, find_tursodb

ROOT = Path(__file__).resolve().parent.parent
TURSODB = find_tursodb(os.environ.get("TRACEPARITY_TURSO_BIN"), (Path.cwd(), ROOT))
needs_tursodb = pytest.mark.skipif(
    TURSODB is None,
    reason="no tursodb binary (not on PATH, not under ./node_modules); install: npm install --prefix . turso",
)


@pytest.mark.parametrize("backend", [TursoLocalBackend(), SQLAlchemyTursoBackend()], ids=lambda b: b.id)
def test_turso_engine_keeps_i64_and_raises_integrity_error(backend: Backend, tmp_path: Path) -> None:
    database = backend.create_database(BackendContext(workdir=tmp_path, name="t"))
    assert "turso engine" in database.served_by and "pyturso" in database.served_by
    with database.connect() as conn:
        conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
        assert conn.execute("INSERT INTO t(v) VALUES (?)", (2**40,)).lastrowid == 1
        assert conn.execute("SELECT v, typeof(v) FROM t").rows == [(2**40, "integer")]
        with pytest.raises(DatabaseError) as info:
            conn.execute("INSERT INTO t(id) VALUES (1)")
        assert (info.value.kind, info.value.dbapi_class) == ("constraint.unique", "IntegrityError")
        assert not conn.in_transaction, "autocommit, like every other backend"


def test_find_tursodb_prefers_option_then_path_then_node_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def executable(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\necho Turso 9.9.9\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return path

    platform_pkg = executable(tmp_path / "proj/node_modules/@tursodatabase/cli-linux-x64-gnu/tursodb")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_tursodb(None, [tmp_path / "proj"]) == str(platform_pkg)
    dot_bin = executable(tmp_path / "proj/node_modules/.bin/tursodb")
    assert find_tursodb(None, [tmp_path / "proj"]) == str(dot_bin)
    on_path = executable(tmp_path / "bin/tursodb")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert find_tursodb(None, [tmp_path / "proj"]) == str(on_path)
    explicit = executable(tmp_path / "elsewhere/my-tursodb")
    assert find_tursodb(str(explicit), [tmp_path / "proj"]) == str(explicit)
    assert find_tursodb(str(tmp_path / "missing"), [tmp_path / "proj"]) is None


def test_turso_sync_without_binary_says_what_to_install(tmp_path: Path) -> None:
    backend = TursoSyncBackend()
    backend.configure(TursodbHost(str(tmp_path / "no-such-tursodb")))
    reason = backend.unavailable_reason()
    assert reason is not None and "npm install" in reason and "--turso-bin" in reason


class _Optional(Backend):
    id = "optional-x"
    optional = True

    def __init__(self, missing: str | None) -> None:
        self.missing = missing

    def unavailable_reason(self) -> str | None:
        return self.missing

    def create_database(self, ctx: BackendContext):  # type: ignore[no-untyped-def]
        raise AssertionError("not used")


@pytest.mark.parametrize(("missing", "in_all"), [(None, True), ("pip install x", False)])
def test_all_takes_an_optional_backend_only_when_it_can_run(missing: str | None, in_all: bool) -> None:
    registry = BackendRegistry()
    registry.register(_Optional(missing))
    assert registry.select("all", "optional-x") == (["optional-x"] if in_all else [])


def test_merge_switch_decides_whether_all_has_the_new_backends() -> None:
    registry = standalone_registry()
    selected = registry.select("all", "sqlalchemy-sqlite")
    new = {"turso-local", "sqlalchemy-libsql", "sqlalchemy-libsql-http", "sqlalchemy-turso", "turso-sync"}
    assert new <= set(registry.ids()), "registered always, so naming one can say what to install"
    runnable = {b for b in new if registry.get(b).unavailable_reason() is None}
    if OPTIONAL_BACKENDS_IN_ALL:
        assert new & set(selected) == runnable, "all takes exactly the new backends that can run here"
    else:
        assert not new & set(selected)


def test_naming_turso_sync_without_binary_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(db): pass")
    result = pytester.runpytest("--backends=turso-sync", "--turso-bin=/nonexistent/tursodb")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*backend 'turso-sync' was selected but cannot run here*npm install*"])


def test_bad_turso_sync_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(): pass")
    result = pytester.runpytest("--turso-sync=sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--turso-sync='sometimes' is not one of: auto, after-write, before-read, manual*"])


@needs_tursodb
def test_turso_sync_server_per_database_is_reaped_by_pid(tmp_path: Path) -> None:
    assert TURSODB is not None
    backend = TursoSyncBackend()
    backend.configure(TursodbHost(TURSODB, workdir=tmp_path / "servers"))
    database = backend.create_database(BackendContext(workdir=tmp_path / "a", name="a", options={"turso_sync": "auto"}))
    pid = database.server.pid  # type: ignore[attr-defined]
    try:
        assert database.served_by.startswith("tursodb ") and database.served_by.endswith("(sync server)")
        writer = database.connect()
        writer.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
        writer.execute("INSERT INTO t(v) VALUES (?)", (2**40,))  # auto mode pushes after the write
        assert database.server.execute("SELECT v FROM t") == [["1099511627776"]]  # type: ignore[attr-defined]
        other = database.another_replica("second")  # type: ignore[attr-defined]
        reader = other.connect()
        assert reader.execute("SELECT v, typeof(v) FROM t").rows == [(2**40, "integer")]
        other.close()
        assert database.server.proc.poll() is None, "closing a second replica leaves the server running"  # type: ignore[attr-defined]
    finally:
        database.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@needs_tursodb
def test_servers_close_stops_every_server_still_running(tmp_path: Path) -> None:
    assert TURSODB is not None
    servers = TursoServers(TURSODB, tmp_path)
    started = [servers.start("x"), servers.start("y")]
    assert sorted(servers.pids) == sorted(s.pid for s in started)
    assert started[0].url != started[1].url and started[0].log_path.exists()
    servers.close()
    for server in started:
        assert server.proc.poll() is not None
        with pytest.raises(ProcessLookupError):
            os.kill(server.pid, 0)
