"""Command line for the stand-in: ``python -m pytest_traceparity.servers.standin --port N``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from .server import STANDIN_VERSION, StandinServer

TOKEN_ENV = "TRACEPARITY_STANDIN_AUTH_TOKEN"


def read_token(args: argparse.Namespace) -> str | None:
    """The token from --auth-token-file, --auth-token or the environment (in that order)."""
    if args.auth_token_file:
        try:
            with open(args.auth_token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
        except OSError as exc:
            raise ValueError(f"--auth-token-file {args.auth_token_file}: {exc.strerror or exc}") from None
        if not token:
            raise ValueError(f"--auth-token-file {args.auth_token_file} is empty")
        return token
    if args.auth_token:
        print(
            f"traceparity serve: warning: --auth-token is visible in `ps`; use ${TOKEN_ENV} or --auth-token-file",
            file=sys.stderr,
        )
        return str(args.auth_token)
    return os.environ.get(TOKEN_ENV) or None


def build_parser(prog: str = "traceparity serve") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"Run the traceparity sqld stand-in {STANDIN_VERSION} (Hrana over HTTP on SQLite).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (0 = any free port; default 8080)")
    parser.add_argument("--db-dir", default=None, help="where namespace databases live (default: a temp dir)")
    parser.add_argument(
        "--auth-token-file",
        default=None,
        help="require 'Authorization: Bearer TOKEN' with TOKEN read from this file "
        f"(or set ${TOKEN_ENV}; default: no auth)",
    )
    parser.add_argument(
        "--auth-token",
        default=None,
        help=f"the token itself: visible to every user in `ps`; prefer ${TOKEN_ENV} or --auth-token-file",
    )
    parser.add_argument("--stream-expiry", type=float, default=10.0, help="idle seconds before a stream expires")
    parser.add_argument(
        "--txn-timeout",
        type=float,
        default=5.0,
        help="seconds a write transaction may hold the lock before a waiting writer takes it over "
        "and the holder gets TRANSACTION_TIMEOUT (sqld: 5)",
    )
    parser.add_argument(
        "--txn-handover",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds a waiting writer waits before taking the lock over (default: --txn-timeout, as sqld); "
        "shorter only speeds up contention tests, a holder nobody waits for keeps --txn-timeout",
    )
    parser.add_argument(
        "--max-response-size",
        type=int,
        default=10_000_000,
        help="bytes one execute/batch response may hold before RESPONSE_TOO_LARGE (sqld: 10MB)",
    )
    parser.add_argument("--log-requests", action="store_true", help="log method, path and status to stderr")
    return parser


def serve_main(argv: list[str] | None = None, prog: str = "traceparity serve") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        token = read_token(args)
    except ValueError as exc:
        print(f"traceparity serve: {exc}", file=sys.stderr)
        return 2
    if args.log_requests:
        import logging

        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    try:
        server = StandinServer(
            args.host,
            args.port,
            args.db_dir,
            token,
            stream_expiry=args.stream_expiry,
            txn_timeout=args.txn_timeout,
            txn_handover=args.txn_handover,
            max_response_size=args.max_response_size,
            log_requests=args.log_requests,
        ).start()
    except OSError as exc:
        if exc.filename:  # the database directory could not be created or opened
            what = f"--db-dir {exc.filename}: {exc.strerror or exc}; give a writable directory"
        else:  # the server's own message names the address and what to do
            what = exc.strerror or str(exc)
        print(f"traceparity serve: {what}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError) as exc:  # RuntimeError: ffi.SqliteLibraryError (no usable SQLite)
        print(f"traceparity serve: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        sys.stdout.write(f"listening on {server.url}\n")
        sys.stdout.flush()
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(serve_main(sys.argv[1:], prog="python -m pytest_traceparity.servers.standin"))
