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
are mounted with :meth:`StandinServer.add_route`; the sync protocol's routes are
registered from :mod:`.sync_routes` unless ``load_sync=False``.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import ipaddress
import logging
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from . import ffi, hrana, streams, sync_routes
from .database import Database, background
from .txn import DEFAULT_TXN_TIMEOUT
from .wire import (  # noqa: F401  (HttpError, Response: the API extensions such as sync use)
    MAX_BODY,
    HttpError,
    HttpListener,
    Request,
    Response,
    encode_json,
    error_response,
    parse_json,
    protocol_error_response,
)

STANDIN_VERSION = "0.1"
DEFAULT_NAMESPACE = "default"
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DEV_PATH = re.compile(r"/dev/([^/]+)(/.*)")

log = logging.getLogger("pytest_traceparity.standin")


def version_string() -> str:
    return f"traceparity-standin {STANDIN_VERSION} (sqlite {ffi.sqlite_version()})"


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
        max_response_size: int | None = None,
        txn_handover: float | None = None,
    ) -> None:
        self.max_response_size = max_response_size
        self.txn_handover = txn_handover
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
        db = self.database_class(
            name,
            self.db_dir / "dbs" / name / "data",
            wal_autocheckpoint=self.wal_autocheckpoint,
            txn_timeout=self.txn_timeout,
        )
        if self.max_response_size is not None:
            db.max_response_size = self.max_response_size
        db.txn.handover = self.txn_handover
        return db

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

    def close_ready(self) -> None:
        """Close every namespace's connections opened ahead, and wait for background closes."""
        with self._lock:
            dbs = list(self._dbs.values())
        for db in dbs:
            db.close_ready()
        background.flush()

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._dbs)


@functools.lru_cache(maxsize=256)
def _host_namespace(host: str) -> str:
    """A ``Host`` header's namespace: first label; ``default`` for an IP or a dotless name."""
    try:
        hostname = urlsplit(f"//{host}").hostname or ""
    except ValueError:
        raise HttpError(400, f"Invalid host header: `{host[:100]}`", "INVALID_HOST") from None
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(hostname)
        return DEFAULT_NAMESPACE
    label, dot, _ = hostname.partition(".")
    if not dot or not label:
        return DEFAULT_NAMESPACE
    return NamespaceStore.check_name(label)


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
        stream_expiry: float = streams.DEFAULT_STREAM_EXPIRY,
        wal_autocheckpoint: int = 0,
        txn_timeout: float = DEFAULT_TXN_TIMEOUT,
        max_response_size: int | None = None,
        txn_handover: float | None = None,
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
        self.namespaces = NamespaceStore(
            self.db_dir, database_class, wal_autocheckpoint, txn_timeout, max_response_size, txn_handover
        )
        self.streams = streams.StreamManager(stream_expiry)
        self.routes: list[Route] = []
        self._route_cache: dict[tuple[str, str], tuple[Route | None, re.Match[str] | None, bool, list[str]]] = {}
        self._httpd: HttpListener | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._install_builtin_routes()
        if load_sync:
            sync_routes.register_routes(self)
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
            httpd = HttpListener((self.host.strip("[]"), self.requested_port), self)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"traceparity stand-in: cannot listen on {self.host}:{self.requested_port}: "
                f"{exc.strerror}; pick another --port (0 = any free port)",
            ) from exc
        self._httpd = httpd
        self._stopping.clear()
        serve = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="standin-http", daemon=True
        )
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
        self.namespaces.close_ready()
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
        self._route_cache.clear()

    def _install_builtin_routes(self) -> None:
        add = self.add_route
        add("GET", r"/health", lambda r: Response(200, b"", "text/plain"), namespaced=False, auth=False)
        add("GET", r"/version", lambda r: Response.text(version_string()), namespaced=False, auth=False)
        add("GET", r"/", lambda r: Response.text(f"{version_string()}: Hrana over HTTP"), namespaced=False)
        for ver in ("2", "3"):
            add(
                "GET",
                rf"/v{ver}",
                lambda r: Response.text("Hello, this is HTTP API v2 (Hrana over HTTP)"),
                namespaced=False,
            )
            add("POST", rf"/v{ver}/pipeline", self._pipeline_handler(int(ver)))
        add("POST", r"/v3/cursor", self._cursor)
        add(
            "GET", r"/v1/namespaces", lambda r: Response.json({"namespaces": self.namespaces.names()}), namespaced=False
        )
        add("POST", r"/v1/namespaces/(?P<ns>[^/]+)/create", self._admin_create, namespaced=False)
        add("POST", r"/v1/namespaces/(?P<ns>[^/]+)/checkpoint", self._admin_checkpoint, namespaced=False)
        add("DELETE", r"/v1/namespaces/(?P<ns>[^/]+)", self._admin_delete, namespaced=False)

    def _pipeline_handler(self, version: int) -> Handler:
        def handle(req: Request) -> Response:
            assert req.namespace is not None
            return Response.json(hrana.pipeline(self.streams, req.namespace, req.json(), version))

        return handle

    def _cursor(self, req: Request) -> Response:
        assert req.namespace is not None
        lines = hrana.cursor(self.streams, req.namespace, req.json())
        return Response(200, b"".join(encode_json(line) + b"\n" for line in lines), "text/plain")

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
        return self.namespaces.get(_host_namespace((headers.get("Host") or "").strip()))

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

    def _resolve(self, method: str, path: str) -> tuple[Route | None, re.Match[str] | None, bool, list[str]]:
        """(first route, its match, is the path public, methods of earlier matches), remembered
        per (method, path): scanning the route regexes cost more than the rest of routing."""
        key = (method, path)
        hit = self._route_cache.get(key)
        if hit is not None:
            return hit
        public = any(not r.auth and r.method == method and r.pattern.fullmatch(path) for r in self.routes)
        allowed: list[str] = []
        found: tuple[Route | None, re.Match[str] | None, bool, list[str]] = (None, None, public, allowed)
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match is not None and route.method != method:
                allowed.append(route.method)
            elif match is not None:
                found = (route, match, public, allowed)
                break
        if len(self._route_cache) >= 512:
            self._route_cache.clear()
        self._route_cache[key] = found
        return found

    def dispatch(self, method: str, raw_path: str, headers: Any, body: bytes) -> Response:
        self._check_cross_site(method, headers)
        parts = urlsplit(raw_path)
        path = parts.path or "/"
        path_ns: str | None = None
        dev = _DEV_PATH.fullmatch(path) if path.startswith("/dev/") else None
        if dev:
            path_ns, path = unquote(dev.group(1)), dev.group(2)
        if len(path) > 1:
            path = path.rstrip("/")
        method = "GET" if method == "HEAD" else method
        route, match, public, allowed = self._resolve(method, path)
        if not public:
            self._check_auth(headers)  # before routing: no 404/405 tells a stranger what exists
        if route is not None and match is not None and (route.namespaced or path_ns is None):
            request = Request(method, path, parts.query, headers, body, match, self)
            if route.namespaced:
                request.namespace = self._namespace_for(headers, path_ns)
            return route.handler(request)
        if allowed:
            raise HttpError(405, f"method {method} not allowed on {path}", "METHOD_NOT_ALLOWED")
        raise HttpError(404, f"no route for {method} {path}", "NOT_FOUND")
