"""``traceparity`` command line: thin dispatch to the core modules.

Every subcommand returns an exit code; user mistakes print one line naming what is
wrong and what to do, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from .errors import TraceparityError

# subcommand -> (module, function, one-line help). Each function takes argv and returns an exit code.
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "record": ("pytest_traceparity.cli_trace", "record_main", "record a program's SQL: record -o TRACE -- CMD..."),
    "replay": ("pytest_traceparity.cli_trace", "replay_main", "replay a trace on a backend and compare to its golden"),
    "minimize": (
        "pytest_traceparity.cli_trace",
        "minimize_main",
        "shrink a trace to a minimal one showing the same difference: minimize TRACE --backend ID -o OUT",
    ),
    "diff": ("pytest_traceparity.cli_db", "diff_main", "compare two traces, goldens or databases"),
    "fingerprint": ("pytest_traceparity.cli_db", "fingerprint_main", "print a database's schema fingerprint"),
    "serve": (
        "pytest_traceparity.servers.standin.__main__",
        "serve_main",
        "run the sqld stand-in (Hrana + sync) on 127.0.0.1",
    ),
    "report": ("pytest_traceparity.report.cli", "report_main", "render and merge JSON parity reports"),
    "backends": ("pytest_traceparity.cli", "backends_main", "list registered backends and whether they can run"),
    "conformance": (
        "pytest_traceparity.cli",
        "conformance_main",
        "run the installed conformance suite (extra args go to pytest)",
    ),
}


def backends_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="traceparity backends", description=SUBCOMMANDS["backends"][2])
    parser.parse_args(list(argv))
    from .registry import standalone_registry

    for backend in standalone_registry():
        reason = backend.unavailable_reason()
        status = "ok" if reason is None else f"unavailable: {reason}"
        caps = ",".join(sorted(backend.capabilities)) or "-"
        print(f"{backend.id:<20} {status:<12} caps={caps}  {backend.description}")
    return 0


def conformance_main(argv: Sequence[str]) -> int:
    """``pytest --pyargs pytest_traceparity.pytest_glue.conformance_suite`` with the caller's extra arguments."""
    import pytest

    suite = "pytest_traceparity.pytest_glue.conformance_suite"
    return int(pytest.main(["--pyargs", suite, "-p", "no:cacheprovider", *argv]))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        _usage(sys.stdout)
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        from . import __version__

        print(f"traceparity {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"traceparity: unknown command {name!r}; run 'traceparity --help' for the list", file=sys.stderr)
        return 2
    module_name, function_name, _ = SUBCOMMANDS[name]
    try:
        function: Callable[[Sequence[str]], int] = getattr(importlib.import_module(module_name), function_name)
        return int(function(rest))
    except TraceparityError as exc:
        print(f"traceparity {name}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"traceparity {name}: interrupted", file=sys.stderr)
        return 130


def _usage(stream: object) -> None:
    lines = ["usage: traceparity COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<12} {help_text}" for name, (_, _, help_text) in SUBCOMMANDS.items()]
    lines += ["", "Run 'traceparity COMMAND --help' for a command's options."]
    print("\n".join(lines), file=stream)  # type: ignore[call-overload]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
