"""``backends`` and ``known_divergence`` markers, and the pyproject registry on user tests."""

from __future__ import annotations

import pytest


def test_backends_marker_restricts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.backends("libsql-local")
        def test_only(traceparity_backend):
            assert traceparity_backend == "libsql-local"
        """
    )
    result = pytester.runpytest("-v", "--backends=sqlalchemy-sqlite,libsql-local")
    result.assert_outcomes(passed=1)


def test_backends_marker_with_nothing_selected_skips_with_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.backends("libsql-local")
        def test_only(traceparity_backend):
            pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*restricted by @pytest.mark.backends(libsql-local)*add one to --backends*"])


def test_stacked_backends_markers_with_globs_intersect_by_backend(pytester: pytest.Pytester) -> None:
    """A module-level glob and a function-level id both restrict: the test runs on the backends
    matching every marker (the old code intersected pattern strings and skipped with no reason)."""
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.backends("*-sqlite")

        @pytest.mark.backends("sqlalchemy-sqlite")
        def test_both(traceparity_backend):
            assert traceparity_backend == "sqlalchemy-sqlite"

        @pytest.mark.backends("libsql-*")
        def test_disjoint(traceparity_backend):
            pass
        """
    )
    result = pytester.runpytest("-v", "-rs", "--backends=sqlalchemy-sqlite,libsql-local")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*test_both?sqlalchemy-sqlite? PASSED*",
            "*restricted by @pytest.mark.backends(libsql-[*]) and @pytest.mark.backends([*]-sqlite) and no selected "
            "backend matches*",
        ]
    )


def test_backends_marker_unknown_id(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.backends("postgres")
        def test_only(traceparity_backend):
            pass
        """
    )
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*names unknown backend 'postgres'; valid ids:*"])
    assert result.ret != 0


KNOWN = """
import pytest

@pytest.mark.known_divergence(backend="libsql-local", reason="raises ValueError"{until})
def test_error_class(db):
    db.execute("CREATE TABLE t(a UNIQUE)")
    db.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(Exception) as info:
        db.execute("INSERT INTO t VALUES (1)")
    assert info.value.kind == "constraint.unique"
    assert info.value.dbapi_class == "IntegrityError"
"""


def test_known_divergence_is_xfail_with_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(KNOWN.format(until=""))
    result = pytester.runpytest("-rx", "--backends=sqlalchemy-sqlite,libsql-local")
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*XFAIL*libsql-local*known divergence on libsql-local: raises ValueError*"])


def test_known_divergence_is_strict(pytester: pytest.Pytester) -> None:
    # Declared on the reference backend, where the behaviour is right: XPASS(strict) fails.
    pytester.makepyfile(KNOWN.format(until="").replace('backend="libsql-local"', 'backend="sqlalchemy-sqlite"'))
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*XPASS(strict)*"])


def test_known_divergence_expires(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(KNOWN.format(until=', until="2020-01-01"'))
    result = pytester.runpytest("--backends=libsql-local")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*known divergence on libsql-local expired on 2020-01-01*re-check*"])


def test_pyproject_registry_applies_to_node_ids(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".toml",
        pyproject=(
            "[[tool.traceparity.known_divergences]]\n"
            'backend = "libsql-local"\n'
            'subjects = ["test_registry.py::test_error_class[libsql-local]"]\n'
            'reason = "libsql raises ValueError"\n'
        ),
    )
    pytester.makepyfile(test_registry=KNOWN.format(until="").replace("@pytest.mark.known_divergence", "#"))
    result = pytester.runpytest("-rx", "--backends=sqlalchemy-sqlite,libsql-local")
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*libsql raises ValueError*"])


def test_bad_registry_entry_names_file(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject='[[tool.traceparity.known_divergences]]\nbackend = "libsql-local"\n')
    pytester.makepyfile("def test_it(db): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pyproject.toml: known_divergences[[]0[]]: 'reason' is required*"])


def test_third_party_backend_through_the_hook(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import sqlite3
        from pytest_traceparity.backends.base import Backend, Database
        from pytest_traceparity.backends.libsql_local import DBAPIConnection

        class StdlibDatabase(Database):
            def __init__(self, path):
                self.path = path
                self.backend_id = "stdlib-sqlite3"
            @property
            def served_by(self):
                return f"sqlite3 {sqlite3.sqlite_version}"
            def connect(self):
                return DBAPIConnection(sqlite3.connect(self.path, isolation_level=None), self.backend_id)

        class StdlibBackend(Backend):
            id = "stdlib-sqlite3"
            def create_database(self, ctx):
                return StdlibDatabase(ctx.workdir / "x.db")

        def pytest_traceparity_register_backends(registry):
            registry.register(StdlibBackend())
        """
    )
    pytester.makepyfile(
        """
        def test_it(db, traceparity_backend):
            db.execute("CREATE TABLE t(a)")
            db.execute("INSERT INTO t VALUES (?)", (2**40,))
            assert db.execute("SELECT typeof(a), a FROM t").rows == [("integer", 2**40)]
            assert db.served_by.startswith("sqlite3 ") or traceparity_backend != "stdlib-sqlite3"
        """
    )
    result = pytester.runpytest("-v", "--backends=all")
    result.stdout.fnmatch_lines(["*test_it[[]stdlib-sqlite3[]] PASSED*"])


def test_duplicate_backend_id_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_traceparity.backends.libsql_local import LibsqlLocalBackend

        def pytest_traceparity_register_backends(registry):
            registry.register(LibsqlLocalBackend())
        """
    )
    pytester.makepyfile("def test_it(db): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*backend id 'libsql-local' is registered twice*rename one*"])


def test_async_twin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        def test_async(adb):
            async def body():
                await adb.execute("CREATE TABLE t(a)")
                async with adb.transaction():
                    await adb.execute("INSERT INTO t VALUES (?)", (1,))
                    assert await adb.in_transaction()
                return (await adb.execute("SELECT a FROM t")).rows
            assert asyncio.run(body()) == [(1,)]
        """
    )
    from pytest_traceparity.registry import standalone_registry

    registry = standalone_registry()
    in_all = [backend for backend in registry if registry.in_all(backend)]
    pytester.runpytest("--backends=all").assert_outcomes(passed=len(in_all))
