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
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import urlsplit

from .database import Database, ProtocolError, begin_deferring, run_deferred


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
        return cls(status, encode_json(payload))

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


# Built once: json.dumps/json.loads with any option build a new encoder/decoder per call.
# Compact separators, like serde_json's output.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def encode_json(payload: Any) -> bytes:
    """UTF-8 JSON; a lone surrogate (which UTF-8 cannot carry) is written as a JSON escape."""
    try:
        return _ENCODER.encode(payload).encode("utf-8")
    except UnicodeEncodeError:
        return _ASCII_ENCODER.encode(payload).encode("ascii")


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
        value = _DECODER.decode(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"Cannot deserialize client message from JSON: {exc}", "JSON_DESERIALIZE") from None
    if _SURROGATE_ESCAPE.search(body) and _has_lone_surrogate(value):
        raise ProtocolError(
            "Cannot deserialize client message from JSON: lone surrogate in hex escape", "JSON_DESERIALIZE"
        )
    return value


# ---------------------------------------------------------------- HTTP/1.1 listener
#
# A small HTTP/1.1 server on plain sockets, one thread per client connection. It replaces
# http.server, whose per-request cost (header parsing through the email package, buffered
# line reads, headers and body in separate writes) was a third of a statement's time.

MAX_HEAD = 64 * 1024  # request line + headers; longer gets 431
MAX_HEADERS = 100
IDLE_TIMEOUT = 120.0  # longer than hyper's 90 s pool idle timeout: the client closes first
_REASONS = {status.value: status.phrase for status in HTTPStatus}


def _set_timeouts(sock: socket.socket, seconds: float) -> None:
    """Kernel-side receive and send timeouts on a blocking socket.

    ``settimeout`` would make Python ``poll()`` before every ``recv`` and ``send``: two
    extra system calls per request. With ``SO_RCVTIMEO``/``SO_SNDTIMEO`` a silent peer
    makes the call fail (an ``OSError``) after ``seconds`` just the same.
    """
    if sys.platform == "win32":
        value = struct.pack("=I", int(seconds * 1000))
    else:
        whole = int(seconds)
        value = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


class Headers:
    """Request headers, looked up case-insensitively (the first of repeated names wins)."""

    __slots__ = ("_items", "_map")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._map: dict[str, str] = {}
        for name, value in items:
            self._map.setdefault(name.lower(), value)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._map.get(name.lower(), default)

    def __getitem__(self, name: str) -> str | None:
        return self._map.get(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_date_cache: list[Any] = [0, b""]


def _http_date() -> bytes:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0], _date_cache[1] = now, formatdate(now, usegmt=True).encode("ascii")
    return _date_cache[1]  # type: ignore[no-any-return]


def render(resp: Response, *, head_only: bool = False, close: bool = False) -> bytes:
    """Status line, headers and body in one buffer: one write, no delayed-ACK stall."""
    reason = _REASONS.get(resp.status, "")
    lines = [
        f"HTTP/1.1 {resp.status} {reason}\r\nContent-Type: {resp.content_type}\r\n"
        f"Content-Length: {len(resp.body)}\r\n".encode("latin-1"),
        b"Date: ",
        _http_date(),
        b"\r\n",
    ]
    for key, value in resp.headers.items():
        lines.append(f"{key}: {value}\r\n".encode("latin-1", "replace"))
    if close:
        lines.append(b"Connection: close\r\n")
    lines.append(b"\r\n")
    if not head_only:
        lines.append(resp.body)
    return b"".join(lines)


class _Conn:
    """One client connection: read a request, dispatch it, answer; repeat while kept alive."""

    def __init__(self, listener: HttpListener, sock: socket.socket, addr: Any) -> None:
        self.listener = listener
        self.sock = sock
        self.peer = str(addr[0]) if isinstance(addr, tuple) else str(addr)
        self.buf = b""

    def _recv(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except (TimeoutError, OSError):
            return b""

    def _read_head(self) -> bytes | None:
        """Bytes up to the blank line; None when the client closed (or idled out) between requests."""
        while True:
            if self.buf[:1] in (b"\r", b"\n"):  # stray line ends between requests are allowed
                self.buf = self.buf.lstrip(b"\r\n")
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head, self.buf = self.buf[:end], self.buf[end + 4 :]
                if len(head) > MAX_HEAD:
                    raise _BadRequest(431, "Request header fields too large")
                return head
            if len(self.buf) > MAX_HEAD:
                raise _BadRequest(431, "Request header fields too large")
            data = self._recv()
            if not data:
                if self.buf.strip():
                    raise _BadRequest(400, "Bad request: incomplete request head")
                return None
            self.buf += data

    @staticmethod
    def _parse_head(head: bytes) -> tuple[str, str, str, Headers]:
        lines = head.decode("latin-1").split("\r\n")
        words = lines[0].split()
        if len(words) != 3 or not words[2].startswith("HTTP/"):
            raise _BadRequest(400, f"Bad request syntax ({lines[0][:100]!r})")
        method, target, version = words
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise _BadRequest(
                505 if version.startswith("HTTP/") and version[5:6].isdigit() else 400,
                f"Unsupported HTTP version ({version[:20]!r})",
            )
        if len(lines) - 1 > MAX_HEADERS:
            raise _BadRequest(431, "Too many headers")
        items = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise _BadRequest(400, "Bad request: malformed header line")
            items.append((name, value.strip()))
        return method, target, version, Headers(items)

    def _read_exact(self, length: int) -> bytes:
        """``length`` body bytes; fewer when the client stops sending for BODY_IDLE_TIMEOUT."""
        if len(self.buf) < length:
            parts, have = [self.buf], len(self.buf)
            _set_timeouts(self.sock, BODY_IDLE_TIMEOUT)
            try:
                while have < length:
                    data = self._recv()
                    if not data:
                        break
                    parts.append(data)
                    have += len(data)
            finally:
                with contextlib.suppress(OSError):
                    _set_timeouts(self.sock, IDLE_TIMEOUT)
            self.buf = b"".join(parts)
        body, self.buf = self.buf[:length], self.buf[length:]
        return body

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf and len(self.buf) <= 1024:
            data = self._recv()
            if not data:
                raise HttpError(400, "malformed chunked body", "HTTP_ERROR")
            self.buf += data
        line, sep, rest = self.buf.partition(b"\r\n")
        if not sep:
            raise HttpError(400, "malformed chunked body", "HTTP_ERROR")
        self.buf = rest
        return line

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                size = int(self._read_line().split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HttpError(400, "malformed chunked body", "HTTP_ERROR") from None
            if size < 0 or total + size > MAX_BODY:
                raise HttpError(413, f"request body larger than {MAX_BODY} bytes", "BODY_TOO_LARGE")
            if size == 0:
                while self._read_line():
                    pass
                return b"".join(chunks)
            chunk = self._read_exact(size)
            if len(chunk) != size:
                raise HttpError(400, "malformed chunked body", "HTTP_ERROR")
            chunks.append(chunk)
            self._read_line()
            total += size

    def _read_body(self, version: str, headers: Headers) -> bytes:
        if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length_header = headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise HttpError(400, "invalid Content-Length header", "HTTP_ERROR") from None
        if length < 0:
            raise HttpError(400, "invalid Content-Length header", "HTTP_ERROR")
        if length > MAX_BODY:
            raise HttpError(413, f"request body larger than {MAX_BODY} bytes", "BODY_TOO_LARGE")
        if version == "HTTP/1.1" and (headers.get("Expect") or "").lower() == "100-continue":
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self._read_exact(length)
        if len(body) != length:
            raise HttpError(400, "request body shorter than Content-Length", "HTTP_ERROR")
        return body

    def serve(self) -> None:
        begin_deferring()
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.setblocking(True)
            _set_timeouts(self.sock, IDLE_TIMEOUT)
            while not self.listener.closing and self._one():
                run_deferred()
        except OSError:
            pass
        finally:
            run_deferred()
            self.listener.forget(self)
            with contextlib.suppress(OSError):
                self.sock.close()

    def _one(self) -> bool:
        """Serve one request; False when the connection must close."""
        try:
            head = self._read_head()
            if head is None:
                return False
            method, target, version, headers = self._parse_head(head)
        except _BadRequest as bad:
            self._answer("-", "-", error_response(bad.status, bad.message, "HTTP_ERROR"), close=True)
            return False
        conn_header = (headers.get("Connection") or "").lower()
        keep = conn_header != "close" if version == "HTTP/1.1" else conn_header == "keep-alive"
        try:
            body = self._read_body(version, headers)
        except HttpError as err:  # the body was not (fully) read: the stream is out of step
            self._answer(method, target, error_response(err.status, err.message, err.code), close=True)
            return False
        try:
            resp = self.listener.standin.dispatch(method, target, headers, body)
        except HttpError as err:
            resp = error_response(err.status, err.message, err.code)
        except ProtocolError as err:
            resp = protocol_error_response(err)
        except Exception as exc:  # a bug: answer 500, keep serving, say where to look
            log.exception("stand-in: internal error on %s %s", method, urlsplit(target).path)
            resp = error_response(500, f"internal stand-in error: {type(exc).__name__}: {exc}", "INTERNAL")
        self._answer(method, target, resp, close=not keep)
        return keep

    def _answer(self, method: str, target: str, resp: Response, *, close: bool) -> None:
        if self.listener.standin.log_requests:  # before answering: the client may stop us next
            path = target.split("?", 1)[0].split("#", 1)[0]
            log.info("%s %s", self.peer, _QUERY_RE.sub("", f'"{method} {path}" {resp.status} {len(resp.body)}'))
        with contextlib.suppress(OSError):  # the client went away: nothing to tell it
            self.sock.sendall(render(resp, head_only=method == "HEAD", close=close))


class HttpListener:
    """Accepts connections on a loopback address; one daemon thread per connection."""

    def __init__(self, address: tuple[str, int], standin: Dispatcher) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.standin = standin
        self.closing = False
        self._conns: set[_Conn] = set()
        self._lock = threading.Lock()
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind(address)
            self._sock.listen(128)
        except OSError:
            self._sock.close()
            raise
        self.server_address = self._sock.getsockname()
        self._stopped = threading.Event()

    def serve_forever(self, poll_interval: float = 0.2) -> None:
        self._sock.settimeout(poll_interval)
        try:
            while not self.closing:
                try:
                    sock, addr = self._sock.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if self.closing:
                        break
                    time.sleep(0.01)  # e.g. out of file descriptors: do not spin
                    continue
                conn = _Conn(self, sock, addr)
                with self._lock:
                    self._conns.add(conn)
                threading.Thread(target=conn.serve, name="standin-conn", daemon=True).start()
        finally:
            self._stopped.set()

    def forget(self, conn: _Conn) -> None:
        with self._lock:
            self._conns.discard(conn)

    def shutdown(self) -> None:
        """Stop accepting and wait for the accept loop to end."""
        self.closing = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() at once (Linux)
        self._stopped.wait(5)

    def server_close(self) -> None:
        """Close the listening socket and every client connection (idle keep-alives too)."""
        self.closing = True
        with contextlib.suppress(OSError):
            self._sock.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
