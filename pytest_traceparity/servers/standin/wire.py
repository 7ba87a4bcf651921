"""The stand-in's HTTP layer: reading requests, shaping answers, never crashing on input.

Bodies are read whole (Content-Length or chunked, bounded); malformed HTTP, JSON and
Hrana get 4xx answers; Hrana protocol violations are plain text like sqld's; logs name
method, path (never its query string) and status, never headers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from .engine import Database, ProtocolError


class Dispatcher(Protocol):
    """The stand-in as this HTTP layer sees it (a protocol: :mod:`.server` builds on this module)."""

    log_requests: bool

    def dispatch(self, method: str, raw_path: str, headers: Any, body: bytes) -> Response: ...


MAX_BODY = 32 * 1024 * 1024
# A body that stops arriving for this long is treated as shorter than its Content-Length
# (a client that sent less waits for our answer; 120 s of silence helps nobody).
BODY_IDLE_TIMEOUT = 2.0
_QUERY_RE = re.compile(r"\?[^\s\"']*")  # query strings may carry tokens: never logged

log = logging.getLogger("pytest_traceparity.standin")


class HttpError(Exception):
    """An HTTP-level failure rendered as sqld does: ``{"error": ...}`` (plus Hrana keys)."""

    def __init__(self, status: int, message: str, code: str = "HTTP_ERROR") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass
class Request:
    """What a route handler sees."""

    method: str
    path: str
    query: str
    headers: Any
    body: bytes
    match: re.Match[str]
    server: Dispatcher
    namespace: Database | None = None

    def json(self) -> Any:
        return parse_json(self.body)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Response:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False)
        try:
            return cls(status, text.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate: JSON escapes are still valid JSON
            return cls(status, json.dumps(payload, ensure_ascii=True, allow_nan=False).encode("ascii"))

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode("utf-8"), "text/plain; charset=utf-8")


def error_response(status: int, message: str, code: str) -> Response:
    return Response.json({"error": message, "message": message, "code": code}, status)


# Hrana protocol errors sqld answers as JSON; every other 400 ProtocolError is plain text.
_JSON_PROTOCOL_CODES = {"STREAM_EXPIRED"}


def protocol_error_response(err: ProtocolError) -> Response:
    """sqld answers a Hrana protocol violation with 400 and its message as ``text/plain``
    (libsql-server/src/hrana/http/mod.rs, ``protocol_error_response``); clients then raise
    e.g. "Server returned HTTP status 400: Received an invalid baton". Errors of the server
    around the protocol (namespaces, auth) are JSON like sqld's ``{"error": ...}``."""
    if err.status == 400 and err.code not in _JSON_PROTOCOL_CODES:
        return Response(400, err.message.encode("utf-8", "replace"), "text/plain")
    return error_response(err.status, err.message, err.code)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON number {name}")


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    return False


def parse_json(body: bytes) -> Any:
    """Decode a request body; like serde_json, a lone UTF-16 surrogate escape is an error."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(
            f"Cannot deserialize client message from JSON: {exc}", "JSON_DESERIALIZE"
        ) from None
    if _SURROGATE_ESCAPE.search(body) and _has_lone_surrogate(value):
        raise ProtocolError(
            "Cannot deserialize client message from JSON: lone surrogate in hex escape", "JSON_DESERIALIZE"
        )
    return value


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    standin: Dispatcher


class _HttpServer6(_HttpServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    """Reads one request fully, dispatches it, always answers with a JSON body on errors."""

    server: _HttpServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms per statement). TCP_NODELAY removes that stall.
    disable_nagle_algorithm = True
    timeout = 120  # longer than hyper's 90 s pool idle timeout: the client closes first
    error_content_type = "application/json"

    def log_message(self, format: str, *args: Any) -> None:
        # Only method/path/status reach the log; headers (and so tokens) never do.
        if self.server.standin.log_requests:
            log.info("%s %s", self.address_string(), _QUERY_RE.sub("", format % args))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Method, path without its query string (it may carry a token), status."""
        path = (getattr(self, "path", "") or "-").split("?", 1)[0].split("#", 1)[0]
        status = code.value if isinstance(code, HTTPStatus) else code
        self.log_message('"%s %s" %s %s', getattr(self, "command", None) or "-", path, status, size)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed HTTP (bad request line, oversized headers): JSON instead of HTML."""
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # answer with a status line, not bare 0.9 bytes
        text = message or HTTPStatus(code).phrase
        self._send(error_response(code, text, "HTTP_ERROR"))

    def _send(self, resp: Response) -> None:
        try:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(resp.body)))
            for key, value in resp.headers.items():
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(resp.body)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            raise HttpError(400, "invalid Content-Length header", "HTTP_ERROR") from None
        if length < 0:
            self.close_connection = True
            raise HttpError(400, "invalid Content-Length header", "HTTP_ERROR")
        if length > MAX_BODY:
            self.close_connection = True
            raise HttpError(413, f"request body larger than {MAX_BODY} bytes", "BODY_TOO_LARGE")
        try:
            self.connection.settimeout(BODY_IDLE_TIMEOUT)
            body = self.rfile.read(length)
        except (TimeoutError, OSError):
            body = b""
        finally:
            with contextlib.suppress(OSError):
                self.connection.settimeout(self.timeout)
        if len(body) != length:
            self.close_connection = True
            raise HttpError(400, "request body shorter than Content-Length", "HTTP_ERROR")
        return body

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise HttpError(400, "malformed chunked body", "HTTP_ERROR") from None
            if size < 0 or total + size > MAX_BODY:
                self.close_connection = True
                raise HttpError(413, f"request body larger than {MAX_BODY} bytes", "BODY_TOO_LARGE")
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)
            total += size

    def _handle(self) -> None:
        standin = self.server.standin
        try:
            body = self._read_body()
            resp = standin.dispatch(self.command, self.path, self.headers, body)
        except HttpError as err:
            resp = error_response(err.status, err.message, err.code)
        except ProtocolError as err:
            resp = protocol_error_response(err)
        except Exception as exc:  # a bug: answer 500, keep serving, say where to look
            log.exception("stand-in: internal error on %s %s", self.command, urlsplit(self.path).path)
            resp = error_response(500, f"internal stand-in error: {type(exc).__name__}: {exc}", "INTERNAL")
        self._send(resp)

    do_GET = do_POST = do_DELETE = do_PUT = do_HEAD = do_PATCH = _handle
