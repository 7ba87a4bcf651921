"""What every ``traceparity`` subcommand shares: one-line argument errors, exit code 2 for
bad input, and user mistakes (missing files, project errors) reported without a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from .errors import TraceparityError


class CommandParser(argparse.ArgumentParser):
    """argparse that reports mistakes in one line with the command's name."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def guard(prog: str, fn: Callable[[], int]) -> int:
    try:
        return fn()
    except TraceparityError as exc:
        return fail(prog, str(exc))
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        return fail(prog, f"{exc.strerror or exc}:{where}")
    except KeyboardInterrupt:
        return fail(prog, "interrupted")
