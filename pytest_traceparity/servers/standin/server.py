"""The HTTP side of the stand-in: routing, namespaces, auth, lifecycle.

Routes (all on one listener; the admin API shares the port, unlike sqld where it lives on
``--admin-listen-addr``):

* ``GET /health`` (200, empty), ``GET /version`` (``traceparity-standin X (sqlite Y)``),
  ``GET /``, ``GET /v2``, ``GET /v3``;
* ``POST /v2/pipeline``, ``POST /v3/pipeline``, ``POST /v3/cursor`` — also under
  ``/dev/NAME/...`` (sqld's path-routed dev endpoints), which is how the real libsql
  client reaches a namespace on loopback without DNS;
* ``POST /v1/namespaces/NAME/create``, ``DELETE /v1/namespaces/NAME``,
  ``POST /v1/namespaces/NAME/checkpoint``, ``GET /v1/namespaces`` (stand-in only).

The namespace of a Hrana request comes, like in sqld, from the ``x-namespace`` header,
then the path prefix, then the first label of the ``Host`` header (``NAME.localhost``);
an IP-literal host or a dotless one means ``default``. Extra routes (the sync endpoints)
are mounted with :meth:`StandinServer.add_route`; a ``sync`` module next to this one
with ``register_routes(server)`` is picked up automatically.
"""

from __future__ import annotations

import contextlib
import hmac
import importlib
import ipaddress
import json
import logging
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from . import ffi, hrana
from .engine import Database, ProtocolError
from .txn import DEFAULT_TXN_TIMEOUT

STANDIN_VERSION = "0.1"
DEFAULT_NAMESPACE = "default"
MAX_BODY = 32 * 1024 * 1024
# A body that stops arriving for this long is treated as shorter than its Content-Length
# (a client that sent less waits for our answer; 120 s of silence helps nobody).
BODY_IDLE_TIMEOUT = 2.0
_QUERY_RE = re.compile(r"\?[^\s\"']*")  # query strings may carry tokens: never logged
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

log = logging.getLogger("pytest_traceparity.standin")


def version_string() -> str:
    return f"traceparity-standin {STANDIN_VERSION} (sqlite {ffi.sqlite_version()})"


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
    server: StandinServer
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


Handler = Callable[[Request], Response]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    namespaced: bool
    auth: bool


class NamespaceStore:
    """Namespace name -> :class:`Database`, one SQLite file each under ``db_dir/dbs/NAME/data``."""

    def __init__(
        self,
        db_dir: Path,
        database_class: type[Database] = Database,
        wal_autocheckpoint: int = 0,
        txn_timeout: float = DEFAULT_TXN_TIMEOUT,
    ) -> None:
        self.db_dir = db_dir
        self.database_class = database_class
        self.wal_autocheckpoint = wal_autocheckpoint
        self.txn_timeout = txn_timeout
        self._lock = threading.Lock()
        self._dbs: dict[str, Database] = {}
        for existing in sorted((db_dir / "dbs").glob("*/data")):
            name = existing.parent.name
            if _NAMESPACE_RE.fullmatch(name):
                self._dbs[name] = self._open(name)
        if DEFAULT_NAMESPACE not in self._dbs:
            self._dbs[DEFAULT_NAMESPACE] = self._open(DEFAULT_NAMESPACE)

    def _open(self, name: str) -> Database:
        return self.database_class(
            name, self.db_dir / "dbs" / name / "data", wal_autocheckpoint=self.wal_autocheckpoint,
            txn_timeout=self.txn_timeout,
        )

    @staticmethod
    def check_name(name: str) -> str:
        if not _NAMESPACE_RE.fullmatch(name):
            raise HttpError(400, "Invalid namespace", "INVALID_NAMESPACE")
        return name

    def get(self, name: str) -> Database:
        with self._lock:
            db = self._dbs.get(name)
        if db is None:
            raise HttpError(404, f"Namespace `{name}` doesn't exist", "NAMESPACE_DOESNT_EXIST")
        return db

    def create(self, name: str) -> Database:
        self.check_name(name)
        with self._lock:
            if name in self._dbs:
                raise HttpError(400, f"Namespace `{name}` already exists", "NAMESPACE_ALREADY_EXISTS")
            db = self._open(name)
            self._dbs[name] = db
            return db

    @staticmethod
    def check_deletable(name: str) -> None:
        """``default`` is where un-namespaced requests go: it always exists."""
        if name == DEFAULT_NAMESPACE:
            raise HttpError(400, "the `default` namespace cannot be deleted", "NAMESPACE_DEFAULT")

    def delete(self, name: str) -> Database:
        self.check_deletable(name)
        with self._lock:
            db = self._dbs.pop(name, None)
        if db is None:
            raise HttpError(404, f"Namespace `{name}` doesn't exist", "NAMESPACE_DOESNT_EXIST")
        return db

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._dbs)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    standin: StandinServer


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


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: the only places a test server may listen."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class StandinServer:
    """A protocol-faithful sqld stand-in on a background thread.

    ``StandinServer(port=0).start()`` picks a free port; ``.url`` is where the libsql
    client connects; ``.url_for(name)`` is the URL of a namespace (path-routed).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        db_dir: str | Path | None = None,
        auth_token: str | None = None,
        *,
        stream_expiry: float = hrana.DEFAULT_STREAM_EXPIRY,
        wal_autocheckpoint: int = 0,
        txn_timeout: float = DEFAULT_TXN_TIMEOUT,
        database_class: type[Database] = Database,
        log_requests: bool = False,
        extensions: Iterable[Callable[[StandinServer], None]] = (),
        load_sync: bool = True,
    ) -> None:
        if not is_loopback(host):
            raise ValueError(
                f"the stand-in binds to loopback addresses only (127.0.0.1, ::1, localhost), not {host!r}: "
                "it is a test fixture, not a server to expose"
            )
        self.host = host.strip("[]")
        self.requested_port = port
        self._own_dir = db_dir is None
        self.db_dir = Path(db_dir) if db_dir is not None else Path(tempfile.mkdtemp(prefix="standin-"))
        self.db_dir.mkdir(parents=True, exist_ok=True)
        self._auth_token = auth_token
        self.log_requests = log_requests
        ffi.library()  # fail early, with a clear message, if SQLite cannot be loaded
        self.namespaces = NamespaceStore(self.db_dir, database_class, wal_autocheckpoint, txn_timeout)
        self.streams = hrana.StreamManager(stream_expiry)
        self.routes: list[Route] = []
        self._httpd: _HttpServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._install_builtin_routes()
        if load_sync:
            self._load_sync_module()
        for ext in extensions:
            ext(self)

    def __repr__(self) -> str:
        auth = "on" if self._auth_token else "off"
        return f"StandinServer(url={self.url if self._httpd else None!r}, db_dir={str(self.db_dir)!r}, auth={auth})"

    # ------------------------------------------------------------ lifecycle

    def start(self) -> StandinServer:
        if self._httpd is not None:
            return self
        try:
            bind_host = self.host.strip("[]")
            server_class = _HttpServer6 if ":" in bind_host else _HttpServer
            httpd = server_class((bind_host, self.requested_port), _Handler)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"traceparity stand-in: cannot listen on {self.host}:{self.requested_port}: "
                f"{exc.strerror}; pick another --port (0 = any free port)",
            ) from exc
        httpd.standin = self
        self._httpd = httpd
        self._stopping.clear()
        serve = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                 name="standin-http", daemon=True)
        reaper = threading.Thread(target=self._reap_loop, name="standin-reaper", daemon=True)
        self._threads = [serve, reaper]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        self._stopping.set()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        self.streams.close_for(None, wait=5.0)
        if self._own_dir:
            shutil.rmtree(self.db_dir, ignore_errors=True)

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block until :meth:`stop` (used by the CLI)."""
        self.start()
        while not self._stopping.wait(0.5):
            pass

    def _reap_loop(self) -> None:
        interval = max(0.05, min(1.0, self.streams.expiry / 4))
        while not self._stopping.wait(interval):
            try:
                self.streams.reap()
            except Exception:  # keep reaping whatever happened to one stream
                log.exception("stand-in: stream reaper failed")

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the stand-in is not started; call .start() first")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    def url_for(self, namespace: str) -> str:
        """URL the libsql client can use for one namespace (``/dev/NAME`` path routing)."""
        if namespace == DEFAULT_NAMESPACE:
            return self.url
        return f"{self.url}/dev/{namespace}"

    # ------------------------------------------------------------ namespaces

    def create_namespace(self, name: str) -> Database:
        return self.namespaces.create(name)

    def delete_namespace(self, name: str) -> None:
        """Remove a namespace: no new work starts, work in flight is interrupted and
        awaited, every stream's connection is closed, then the files go."""
        db = self.namespaces.delete(name)
        db.mark_deleted()
        busy = self.streams.close_for(db)
        if busy:
            log.warning("stand-in: namespace %s deleted while %d request(s) still ran on it", name, busy)
        with db.lock:
            db.destroy()

    # ------------------------------------------------------------ routing

    def add_route(
        self,
        method: str,
        pattern: str,
        handler: Handler,
        *,
        namespaced: bool = True,
        auth: bool = True,
    ) -> None:
        """Mount a handler; ``pattern`` is a regex on the path (after any ``/dev/NAME``).

        With ``namespaced=True`` the handler receives ``request.namespace`` (a
        :class:`Database`), resolved like Hrana requests. Later routes win over earlier.
        """
        self.routes.insert(0, Route(method.upper(), re.compile(pattern), handler, namespaced, auth))

    def _install_builtin_routes(self) -> None:
        add = self.add_route
        add("GET", r"/health", lambda r: Response(200, b"", "text/plain"), namespaced=False, auth=False)
        add("GET", r"/version", lambda r: Response.text(version_string()), namespaced=False, auth=False)
        add("GET", r"/", lambda r: Response.text(f"{version_string()}: Hrana over HTTP"), namespaced=False)
        for ver in ("2", "3"):
            add("GET", rf"/v{ver}", lambda r: Response.text("Hello, this is HTTP API v2 (Hrana over HTTP)"),
                namespaced=False)
            add("POST", rf"/v{ver}/pipeline", self._pipeline_handler(int(ver)))
        add("POST", r"/v3/cursor", self._cursor)
        add("GET", r"/v1/namespaces", lambda r: Response.json({"namespaces": self.namespaces.names()}),
            namespaced=False)
        add("POST", r"/v1/namespaces/(?P<ns>[^/]+)/create", self._admin_create, namespaced=False)
        add("POST", r"/v1/namespaces/(?P<ns>[^/]+)/checkpoint", self._admin_checkpoint, namespaced=False)
        add("DELETE", r"/v1/namespaces/(?P<ns>[^/]+)", self._admin_delete, namespaced=False)

    def _load_sync_module(self) -> None:
        name = f"{__package__}.sync"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                return
            raise
        register = getattr(module, "register_routes", None)
        if register is not None:
            register(self)

    def _pipeline_handler(self, version: int) -> Handler:
        def handle(req: Request) -> Response:
            assert req.namespace is not None
            return Response.json(hrana.pipeline(self.streams, req.namespace, req.json(), version))

        return handle

    def _cursor(self, req: Request) -> Response:
        assert req.namespace is not None
        lines = hrana.cursor(self.streams, req.namespace, req.json())
        body = "".join(json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n" for line in lines)
        return Response(200, body.encode("utf-8"), "text/plain")

    def _admin_create(self, req: Request) -> Response:
        name = unquote(req.match["ns"])
        if req.body.strip():
            config = req.json()
            if not isinstance(config, dict):
                raise HttpError(400, "namespace config must be a JSON object", "HTTP_ERROR")
        self.create_namespace(name)
        return Response.json(None)

    def _admin_delete(self, req: Request) -> Response:
        self.delete_namespace(unquote(req.match["ns"]))
        return Response.json(None)

    def _admin_checkpoint(self, req: Request) -> Response:
        self.namespaces.get(unquote(req.match["ns"])).checkpoint()
        return Response.json(None)

    def _check_auth(self, headers: Any) -> None:
        if self._auth_token is None:
            return
        supplied = headers.get("Authorization") or ""
        scheme, _, token = supplied.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode("utf-8", "surrogateescape"), self._auth_token.encode("utf-8")
        ):
            reason = "no bearer token" if not supplied else "the bearer token does not match"
            raise HttpError(401, f"Unauthorized: `{reason}`", "UNAUTHORIZED")

    def _namespace_for(self, headers: Any, path_ns: str | None) -> Database:
        explicit = headers.get("x-namespace")
        if explicit:
            return self.namespaces.get(NamespaceStore.check_name(explicit))
        if path_ns is not None:
            return self.namespaces.get(NamespaceStore.check_name(path_ns))
        host = (headers.get("Host") or "").strip()
        try:
            hostname = urlsplit(f"//{host}").hostname or ""
        except ValueError:
            raise HttpError(400, f"Invalid host header: `{host[:100]}`", "INVALID_HOST") from None
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(hostname)
            return self.namespaces.get(DEFAULT_NAMESPACE)
        label, dot, _ = hostname.partition(".")
        if not dot or not label:
            return self.namespaces.get(DEFAULT_NAMESPACE)
        return self.namespaces.get(NamespaceStore.check_name(label))

    @staticmethod
    def _check_cross_site(method: str, headers: Any) -> None:
        """Refuse what a web page on another site could send without a CORS preflight.

        A browser sends ``text/plain`` or form POSTs cross-site without asking first; a
        JSON ``Content-Type`` forces a preflight we never grant. So a POST needs a JSON
        ``Content-Type``, or an ``Origin`` that is absent (not a browser) or loopback.
        """
        if method != "POST":
            return
        ctype = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype == "application/json" or ctype.endswith("+json"):
            return
        origin = headers.get("Origin")
        if origin is None:
            return
        try:
            host = urlsplit(origin.strip()).hostname if "://" in origin else None
        except ValueError:
            host = None
        if host is not None and is_loopback(host):
            return
        raise HttpError(403, "cross-origin POST refused: send Content-Type: application/json", "FORBIDDEN")

    def dispatch(self, method: str, raw_path: str, headers: Any, body: bytes) -> Response:
        self._check_cross_site(method, headers)
        parts = urlsplit(raw_path)
        path = parts.path or "/"
        path_ns: str | None = None
        dev = re.fullmatch(r"/dev/([^/]+)(/.*)", path)
        if dev:
            path_ns, path = unquote(dev.group(1)), dev.group(2)
        if len(path) > 1:
            path = path.rstrip("/")
        method = "GET" if method == "HEAD" else method
        public = any(not r.auth and r.method == method and r.pattern.fullmatch(path) for r in self.routes)
        if not public:
            self._check_auth(headers)  # before routing: no 404/405 tells a stranger what exists
        allowed: list[str] = []
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            if route.method != method:
                allowed.append(route.method)
                continue
            request = Request(method, path, parts.query, headers, body, match, self)
            if route.namespaced:
                request.namespace = self._namespace_for(headers, path_ns)
            elif path_ns is not None:
                break
            return route.handler(request)
        if allowed:
            raise HttpError(405, f"method {method} not allowed on {path}", "METHOD_NOT_ALLOWED")
        raise HttpError(404, f"no route for {method} {path}", "NOT_FOUND")
