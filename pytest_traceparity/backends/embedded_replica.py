"""``embedded-replica``: ``libsql.connect(path, sync_url=...)`` reading a local replica file.

Reads run on the local file; writes travel to the primary over Hrana (the client then
pulls them back: read-your-writes on the writing connection); everything else a replica
sees arrives only when ``sync()`` pulls. Each test gets a fresh primary database (a new
namespace on the stand-in) and a fresh replica file; every connection opened on it is
one more ``libsql.connect`` of that same file (they share the file, each keeps its own
sync position).

When the harness calls ``sync()`` (``--replica-sync``):

``auto`` (default)
    before a read outside a transaction whenever the primary may hold commits this
    replica file has not pulled (the harness counts the commits its own connections
    make; with ``--sync-url`` it cannot, so it syncs before every read), and after each
    write in offline mode (to push). Each statement sees what the primary has committed,
    so results should equal a plain SQLite file: a difference is a replica bug, not
    staleness.
``after-write``
    right after each statement that changed data (or ended a transaction). Other
    connections keep reading what they last pulled: a test that writes on one
    connection and reads on another sees stale rows, as a real app would.
``before-read``
    before each read outside a transaction: reads are fresh, but nothing is pulled
    right after a write beyond what the client itself does.
``manual``
    never, except once when a connection opens; only explicit ``sync`` steps (a
    ``sync`` op in a trace, ``conn.sync()`` in a test) pull. Shows the raw staleness.

Inside a transaction the harness never syncs: the client sends every statement of an
explicit transaction to the primary anyway.

:meth:`EmbeddedReplicaDatabase.info` reports the replication lag: how many frames the
replica file is behind the primary (the stand-in says how many it has in ``/info``;
a primary that does not, such as Turso Cloud, gives generations only).

Primaries: the stand-in (default, via ``--sqld``), or ``--sync-url libsql://...`` with
``TURSO_AUTH_TOKEN`` (Turso Cloud; the harness never creates or wipes databases there).
OSS sqld has no ``/info``/``/export``/``/sync`` endpoints, so this client cannot
replicate from it ("failed to pull db export: 404", libsql-python issue #101); the
backend detects that up front and says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable, DatabaseError, TraceparityError, UsageError
from ..http import request
from ..secret import Secret, as_secret, redact, reveal
from ..sqltext import access
from .base import (
    CAP_FILE,
    CAP_MULTI_CONNECTION,
    CAP_REMOTE,
    CAP_SYNC,
    BackendContext,
    Connection,
    Database,
    safe_name,
)
from .dbapi import GuardedDBAPIConnection
from .endpoint import SqldEndpoint, http_url
from .libsql_local import LibsqlClientBackend, import_libsql, libsql_version
from .sqld_http import fresh_namespace

BACKEND_ID = "embedded-replica"
REPLICA_SYNC_MODES = ("auto", "after-write", "before-read", "manual")  # --replica-sync (see above)
ISSUE_101 = "https://github.com/tursodatabase/libsql-python/issues/101"

statement_kind = access  # ``read`` or ``write``: when the harness syncs (see the modes above)


@dataclass
class PrimaryPosition:
    generation: int
    max_frame_no: int | None  # None when the primary does not tell (Turso Cloud)


def probe_primary(sync_url: str, token: Secret | str | None, timeout: float = 10.0) -> PrimaryPosition:
    """``GET /info`` as the client does at bootstrap; explains each way it can fail."""
    url = f"{http_url(sync_url)}/info"
    try:
        status, body = request("GET", url, token=token, timeout=timeout, always_authorize=True)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BackendUnavailable(
            f"{BACKEND_ID}: primary {sync_url} is unreachable ({reason}); is the server running?"
        ) from None
    if status != 200:
        detail = redact(body.decode("utf-8", "replace")[:200], token)
        if status == 404:
            raise BackendUnavailable(not_a_sync_primary(sync_url, detail))
        if status in (401, 403):
            raise BackendUnavailable(
                f"{BACKEND_ID}: primary {sync_url} refused the auth token (HTTP {status}: {detail}); "
                "set TURSO_AUTH_TOKEN (or --sqld-auth-token for the stand-in) to a token for this database"
            )
        raise BackendUnavailable(f"{BACKEND_ID}: primary {sync_url} answered GET /info with HTTP {status}: {detail}")
    try:
        info = json.loads(body)
        generation = int(info["current_generation"])
    except (ValueError, KeyError, TypeError):
        raise BackendUnavailable(
            f"{BACKEND_ID}: primary {sync_url} answered GET /info with {body[:120]!r}, not "
            '{"current_generation": N}; it does not speak the embedded-replica sync protocol'
        ) from None
    frames = info.get("max_frame_no")
    return PrimaryPosition(generation, int(frames) if isinstance(frames, int) else None)


def not_a_sync_primary(sync_url: str, detail: str = "") -> str:
    """Why the libsql client cannot replicate from this server (OSS sqld)."""
    alt = ""
    try:
        import importlib.util

        if importlib.util.find_spec("libsql_experimental") is not None:
            alt = (
                " The 'libsql-experimental' package is installed: it replicates over sqld's own "
                "gRPC protocol, but this harness does not drive it yet."
            )
    except (ImportError, ValueError):  # pragma: no cover
        pass
    return (
        f"{BACKEND_ID}: {sync_url} has no GET /info (HTTP 404{': ' + detail if detail else ''}). "
        "It is not a sync primary: OSS sqld does not serve the embedded-replica endpoints "
        "(/info, /export, /sync) that the libsql client uses, so the client fails with "
        f"'failed to pull db export: 404' (libsql-python issue #101, {ISSUE_101}). "
        "Use the stand-in (--sqld=stand-in, or --sqld=auto without --sqld-url) or a Turso "
        "Cloud database (--sync-url libsql://... with TURSO_AUTH_TOKEN)." + alt
    )


def read_replica_meta(path: Path) -> dict[str, int] | None:
    """The client's ``PATH-info`` file: generation and durable frame number, if readable."""
    try:
        data = json.loads(Path(f"{path}-info").read_text())
        return {"generation": int(data["generation"]), "durable_frame_num": int(data["durable_frame_num"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class _ClientFailure:
    """One known replica/sync failure of the libsql client: how to spot it, its kind, what to say."""

    pattern: re.Pattern[str]
    kind: str
    explain: Callable[[Path, str, str, str], str]  # (replica, sync_url, message, during) -> text
    only_during: str | None = None


def _failure(
    pattern: str, kind: str, explain: Callable[[Path, str, str, str], str], only_during: str | None = None
) -> _ClientFailure:
    return _ClientFailure(re.compile(pattern, re.IGNORECASE), kind, explain, only_during)


# First match wins; the order puts local-file problems (fixable by deleting files) first.
CLIENT_FAILURES = (
    _failure(
        "db file exists but metadata file does not",
        "misuse",
        lambda r, u, m, d: (
            f"replica file {r} exists but {r}-info does not: it is not an embedded replica of {u} (a plain "
            f"SQLite file, or a copy without its metadata). Delete {r} (and its -wal/-shm) to bootstrap a fresh "
            "replica; the primary is untouched."
        ),
    ),
    _failure(
        "metadata file exists but db file does not",
        "misuse",
        lambda r, u, m, d: (
            f"{r}-info exists but the replica file {r} does not; delete {r}-info to bootstrap a fresh replica from {u}."
        ),
    ),
    _failure("metadata file hash|metadata file version", "misuse", lambda r, u, m, d: _corrupt_metadata(r, u, m)),
    _failure("json decode error", "misuse", lambda r, u, m, d: _corrupt_metadata(r, u, m), only_during="connect"),
    _failure(
        "file is not a database|database disk image is malformed",
        "misuse",
        lambda r, u, m, d: (
            f"replica file {r} is corrupt or not a SQLite database ({m}); delete {r} and {r}-info to bootstrap "
            f"a fresh replica from {u}."
        ),
    ),
    _failure(
        "failed to pull db export.*404|404.*failed to pull db export",
        "connection",
        lambda r, u, m, d: not_a_sync_primary(u),
    ),
    _failure(
        "server returned a conflict",
        "transaction",
        lambda r, u, m, d: (
            f"push conflict: replica {r} holds local writes made on top of an older state of {u}, and the "
            f"primary has moved on ({m}). The primary kept its data; the replica's unpushed writes stay only in "
            f"{r}. Delete the replica to start from the primary's state, or replay those writes through a fresh "
            "replica."
        ),
    ),
    _failure(
        "http dispatch error|error trying to connect|Connection refused|error sending request|"
        "tcp connect error|dns error",
        "connection",
        lambda r, u, m, d: (
            f"primary {u} is unreachable during {d} ({m}); local reads of {r} keep working, writes and sync() "
            "fail until the primary is back."
        ),
    ),
    _failure(
        r"\b401\b|Unauthorized",
        "connection",
        lambda r, u, m, d: f"primary {u} refused the auth token during {d} ({m}); check TURSO_AUTH_TOKEN.",
    ),
    _failure(
        "failed to pull frame|failed to push frame|invalid local state",
        "connection",
        lambda r, u, m, d: f"sync of replica {r} with {u} failed during {d}: {m}",
    ),
)


def _corrupt_metadata(replica: Path, sync_url: str, message: str) -> str:
    return (
        f"replica metadata {replica}-info is corrupt or from another client version ({message}); "
        f"delete {replica} and {replica}-info to bootstrap a fresh replica from {sync_url}."
    )


def explain_client_error(
    exc: BaseException, *, replica: Path, sync_url: str, token: Secret | str | None, during: str
) -> DatabaseError | None:
    """A clear error for the replica/sync failures of the libsql client, or None for SQL errors."""
    message = redact(str(exc), token)
    for failure in CLIENT_FAILURES:
        if failure.only_during not in (None, during) or not failure.pattern.search(message):
            continue
        return DatabaseError(
            failure.explain(replica, sync_url, message, during),
            kind=failure.kind,
            backend=BACKEND_ID,
            exc_type=f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins."),
            dbapi_class="OperationalError" if failure.kind == "connection" else type(exc).__name__,
            original=exc,
        )
    return None


@dataclass
class PrimaryClock:
    """Counts commits the harness made on one primary, shared by all its replicas.

    ``external`` primaries (``--sync-url``) may have writers the harness does not see, so
    ``auto`` mode syncs before every read there.
    """

    ticks: int = 0
    external: bool = False


class ReplicaConnection(GuardedDBAPIConnection):
    """One ``libsql.connect`` of the replica file, syncing as ``--replica-sync`` says."""

    def __init__(self, raw: Any, database: EmbeddedReplicaDatabase) -> None:
        super().__init__(raw, BACKEND_ID)
        self.database = database

    # --- sync policy -------------------------------------------------------------
    def _maybe_sync(self, sql: str, moment: str) -> None:
        db = self.database
        if self.raw.in_transaction:
            return
        kind = statement_kind(sql)
        if moment == "before":
            if kind != "read":
                return
            if db.mode == "before-read" or (db.mode == "auto" and db.maybe_stale()):
                self.sync()
            return
        if kind != "write":
            return
        # Committed: the primary changed. The client already pulled into this replica file
        # (read-your-writes), unless it wrote locally (offline), which needs a push.
        db.clock.ticks += 1
        if not db.offline:
            db.file_seen = db.clock.ticks
        if db.mode == "after-write" or (db.mode == "auto" and db.offline):
            self.sync()

    def sync(self) -> int | None:
        """Pull (and push, offline) now; returns the replica's durable frame number."""
        try:
            self.raw.sync()
        except Exception as exc:
            raise self.database.explain(exc, "sync()") or _wrap(exc) from exc
        self.database.syncs += 1
        self.database.file_seen = self.database.clock.ticks
        meta = read_replica_meta(self.database.replica_path)
        return meta["durable_frame_num"] if meta else None

    # --- statements --------------------------------------------------------------
    def _run(self, sql: str, action: Any) -> Any:
        self._maybe_sync(sql, "before")
        try:
            result = action()
        except TraceparityError:
            raise
        except Exception as exc:
            explained = self.database.explain(exc, "a statement")
            if explained is not None:
                explained.sql = sql
                raise explained from exc
            raise
        self._maybe_sync(sql, "after")
        return result


def _wrap(exc: BaseException) -> DatabaseError:
    from ..errors import wrap_error

    return wrap_error(exc, backend=BACKEND_ID)


class EmbeddedReplicaDatabase(Database):
    """A replica file of one fresh primary database."""

    backend_id = BACKEND_ID

    def __init__(
        self,
        *,
        replica_path: Path,
        sync_url: str,
        token: Secret | str | None,
        mode: str,
        primary_label: str,
        offline: bool = False,
        endpoint: SqldEndpoint | None = None,
        namespace: str | None = None,
        clock: PrimaryClock | None = None,
    ) -> None:
        self.replica_path = replica_path
        self.sync_url = sync_url
        self._token = token
        self.mode = mode
        self.offline = offline
        self.primary_label = primary_label
        self.endpoint = endpoint
        self.namespace = namespace
        self.syncs = 0
        self.clock = clock or PrimaryClock()
        #: clock value this replica file has pulled up to
        self.file_seen = 0
        self._connections: list[ReplicaConnection] = []

    def maybe_stale(self) -> bool:
        """Might the primary hold commits this replica file has not pulled yet?"""
        return self.clock.external or self.file_seen < self.clock.ticks

    def __repr__(self) -> str:  # never shows the token
        return (
            f"EmbeddedReplicaDatabase(replica={str(self.replica_path)!r}, "
            f"sync_url={self.sync_url!r}, mode={self.mode!r})"
        )

    @property
    def served_by(self) -> str:
        return f"libsql {libsql_version()} embedded replica of {self.primary_label}"

    def explain(self, exc: BaseException, during: str) -> DatabaseError | None:
        return explain_client_error(
            exc, replica=self.replica_path, sync_url=self.sync_url, token=self._token, during=during
        )

    def connect(self) -> Connection:
        libsql = import_libsql()
        try:
            raw = libsql.connect(
                str(self.replica_path),
                sync_url=self.sync_url,
                auth_token=reveal(self._token) or "",
                offline=self.offline,
                isolation_level=None,
            )
        except Exception as exc:
            raise self.explain(exc, "connect") or _wrap(exc) from exc
        conn = ReplicaConnection(raw, self)
        conn.sync()  # start from the primary's latest state, whatever the mode
        self._connections.append(conn)
        return conn

    def another_replica(
        self, name: str = "second", *, mode: str | None = None, offline: bool | None = None
    ) -> EmbeddedReplicaDatabase:
        """A second replica file of the same primary (closing it leaves the primary alone)."""
        return EmbeddedReplicaDatabase(
            replica_path=self.replica_path.with_name(f"{safe_name(name, 40)}.replica.db"),
            sync_url=self.sync_url,
            token=self._token,
            mode=mode or self.mode,
            offline=self.offline if offline is None else offline,
            primary_label=self.primary_label,
            clock=self.clock,
        )

    def lag(self) -> dict[str, Any]:
        """How far the replica file is behind the primary right now."""
        meta = read_replica_meta(self.replica_path)
        out: dict[str, Any] = {"replica_generation": None, "replica_frame": None, "lag_frames": None}
        if meta:
            out["replica_generation"] = meta["generation"]
            out["replica_frame"] = meta["durable_frame_num"]
        try:
            pos = probe_primary(self.sync_url, self._token, timeout=5.0)
        except BackendUnavailable as exc:
            out["primary"] = f"unavailable: {exc}"
            return out
        out["primary_generation"] = pos.generation
        out["primary_frame"] = pos.max_frame_no
        if meta and pos.max_frame_no is not None and meta["generation"] == pos.generation:
            out["lag_frames"] = max(0, pos.max_frame_no - meta["durable_frame_num"])
        elif meta:
            out["lag_generations"] = pos.generation - meta["generation"]
        return out

    def info(self) -> dict[str, Any]:
        return {
            "served_by": self.served_by,
            "client": f"libsql {libsql_version()} (embedded replica{', offline writes' if self.offline else ''})",
            "replica_sync": self.mode,
            "syncs": self.syncs,
            "replica_file": str(self.replica_path),
            **self.lag(),
        }

    def close(self) -> None:
        for conn in self._connections:
            with contextlib.suppress(TraceparityError):
                conn.close()
        self._connections.clear()
        if self.endpoint is not None and self.namespace is not None:
            self.endpoint.drop_database(self.namespace)


class EmbeddedReplicaBackend(LibsqlClientBackend):
    id = BACKEND_ID
    description = "libsql.connect(path, sync_url=...) embedded replica of a sync-capable primary"
    capabilities = frozenset({CAP_FILE, CAP_SYNC, CAP_REMOTE, CAP_MULTI_CONNECTION})

    def create_database(self, ctx: BackendContext) -> Database:
        mode = str(ctx.options.get("replica_sync") or "auto")
        if mode not in REPLICA_SYNC_MODES:
            raise UsageError(f"--replica-sync={mode!r} is not one of: {', '.join(REPLICA_SYNC_MODES)}")
        offline = bool(ctx.options.get("replica_offline", False))
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        replica = ctx.workdir / f"{safe_name(ctx.name, 40)}.replica.db"
        for suffix in ("", "-wal", "-shm", "-info"):
            if Path(f"{replica}{suffix}").exists():
                os.unlink(f"{replica}{suffix}")
        sync_url = ctx.options.get("sync_url")
        if sync_url:
            token = as_secret(ctx.options.get("sync_auth_token") or os.environ.get("TURSO_AUTH_TOKEN"))
            sync_url = str(sync_url).rstrip("/")
            if not re.match(r"(libsql|https?)://", sync_url):
                raise UsageError(f"--sync-url {sync_url!r}: expected libsql://HOST, https://HOST or http://HOST:PORT")
            pos = probe_primary(sync_url, token)
            return EmbeddedReplicaDatabase(
                replica_path=replica,
                sync_url=sync_url,
                token=token,
                mode=mode,
                offline=offline,
                primary_label=f"{sync_url} (generation {pos.generation})",
                clock=PrimaryClock(external=True),
            )
        endpoint, namespace, url = fresh_namespace(ctx, BACKEND_ID)
        try:
            probe_primary(url, endpoint.auth_token)
        except BackendUnavailable:
            endpoint.drop_database(namespace)
            raise
        return EmbeddedReplicaDatabase(
            replica_path=replica,
            sync_url=url,
            token=endpoint.auth_token,
            mode=mode,
            offline=offline,
            primary_label=endpoint.label,
            endpoint=endpoint,
            namespace=namespace if endpoint.supports_namespaces else None,
        )
