"""Option parsing, parametrization ids, usage errors (pytester, real backends)."""

from __future__ import annotations

import pytest

DOWNSTREAM = """
def test_uses_db(db, traceparity_backend):
    db.execute("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)")
    db.execute("INSERT INTO t(b) VALUES (?)", ("x",))
    assert db.execute("SELECT a, b FROM t").rows == [(1, "x")]

def test_plain():
    pass
"""


def test_default_runs_reference_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(DOWNSTREAM)
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_uses_db[[]sqlalchemy-sqlite[]] PASSED*", "*test_plain PASSED*"])
    result.stdout.fnmatch_lines(["traceparity: backends=sqlalchemy-sqlite reference=sqlalchemy-sqlite"])


def test_two_backends_run_twice(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(DOWNSTREAM)
    result = pytester.runpytest("-v", "--backends=sqlalchemy-sqlite,libsql-local")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["*test_uses_db[[]sqlalchemy-sqlite[]] PASSED*", "*test_uses_db[[]libsql-local[]] PASSED*"]
    )


def test_all_means_every_registered_backend(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(traceparity_backend): pass")
    result = pytester.runpytest("--backends=all", "--collect-only", "-q")
    from pytest_traceparity.registry import standalone_registry

    registry = standalone_registry()
    ids = [backend.id for backend in registry if registry.in_all(backend)]
    result.stdout.fnmatch_lines([f"*test_it[[]{i}[]]" for i in ids])
    assert result.ret == 0


def test_ini_sets_backends(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntraceparity_backends = libsql-local\n")
    pytester.makepyfile("def test_it(traceparity_backend): assert traceparity_backend == 'libsql-local'")
    pytester.runpytest().assert_outcomes(passed=1)


def test_command_line_beats_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntraceparity_backends = libsql-local\n")
    pytester.makepyfile("def test_it(traceparity_backend): assert traceparity_backend == 'sqlalchemy-sqlite'")
    pytester.runpytest("--backends=sqlalchemy-sqlite").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backends=nope"], "*unknown backend 'nope'; valid ids: sqlalchemy-sqlite, libsql-local*"),
        (["--backends=all,libsql-local"], "*--backends=all cannot be combined*"),
        (["--reference-backend=nope"], "*--reference-backend: unknown backend 'nope'*"),
        (["--sqld=podman"], "*--sqld='podman' is not one of: auto, binary, docker, url, stand-in*"),
        (["--sqld=url"], "*--sqld=url needs --sqld-url*"),
        (["--replica-sync=sometimes"], "*--replica-sync='sometimes' is not one of*"),
    ],
)
def test_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makepyfile("def test_it(db): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_reference_backend_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "def test_it(traceparity, traceparity_backend):\n"
        "    assert traceparity.reference == 'libsql-local'\n"
        "    assert traceparity_backend == 'libsql-local'\n"
    )
    pytester.runpytest("--reference-backend=libsql-local").assert_outcomes(passed=1)


def test_reference_from_pyproject(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject='[tool.traceparity]\nreference_backend = "libsql-local"\n')
    pytester.makepyfile("def test_it(traceparity): assert traceparity.reference == 'libsql-local'")
    pytester.runpytest().assert_outcomes(passed=1)


def test_each_test_gets_a_fresh_database(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", [1, 2])
        def test_fresh(db, n):
            assert db.execute("SELECT count(*) FROM sqlite_master").rows == [(0,)]
            db.execute("CREATE TABLE t(a)")
        """
    )
    from pytest_traceparity.registry import standalone_registry

    registry = standalone_registry()
    in_all = [backend for backend in registry if registry.in_all(backend)]
    pytester.runpytest("--backends=all").assert_outcomes(passed=2 * len(in_all))


def test_backend_unavailable_is_an_error_not_a_skip(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_traceparity.backends.libsql_local import LibsqlLocalBackend

        class Broken(LibsqlLocalBackend):
            id = "broken"
            def unavailable_reason(self):
                return "the broken client is not installed; pip install broken"

        def pytest_traceparity_register_backends(registry):
            registry.register(Broken())
        """
    )
    pytester.makepyfile("def test_it(db): pass")
    result = pytester.runpytest("--backends=broken")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*backend 'broken' was selected but cannot run here: the broken client*"])


def test_dynamic_request_of_the_backend_fixture_says_why_it_skips(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_dyn(request):
            request.getfixturevalue("traceparity_backend")
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*requested dynamically (request.getfixturevalue)*name traceparity_backend*"])
