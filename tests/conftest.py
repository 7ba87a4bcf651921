from __future__ import annotations

from collections.abc import Iterator

# Imported once for the whole session: pytester's in-process runs restore sys.modules after
# each inner session, and SQLAlchemy 2.0 (the newest on Python 3.10) breaks when imported twice.
import aiosqlite  # noqa: F401
import pytest
import sqlalchemy.ext.asyncio  # noqa: F401

from pytest_traceparity.servers import launcher

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _inner_sessions_set_asyncio_loop_scope(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """pytester's inner sessions have no ini of ours; give pytest-asyncio its setting there too."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")  # it clears PYTEST_ADDOPTS; set ours afterwards
        monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[launcher.SqldEndpoint]:
    """A stand-in server process for one test module (stopped by its pid at module end)."""
    config = launcher.SqldConfig(strategy="stand-in", workdir=tmp_path_factory.mktemp("standin"), env={})
    handle = launcher.start_standin(config)
    try:
        yield handle.endpoint
    finally:
        handle.stop()
