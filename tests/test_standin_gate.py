"""The stand-in's SQL gate: no ATTACH form ever opens a file, as on sqld (issue 9).

sqld decides in ``libsql-server/src/query_analysis.rs``: ``ATTACH`` whose expression is a
lone identifier names a namespace, refused unless that namespace allows attach
(``connection/program.rs``, ``check_program_auth``: HTTP 401 "Not authorized to execute
query"); every other expression is an "unsupported statement". ``DETACH`` reaches
SQLite, which has nothing attached to detach.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_traceparity.servers.standin import StandinServer, ffi


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


@pytest.fixture()
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandinServer]:
    monkeypatch.chdir(tmp_path)  # a relative ATTACH target would land here
    with StandinServer(db_dir=tmp_path / "db") as srv:
        yield srv


def all_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def snapshot(tmp_path: Path) -> set[str]:
    # WAL side files of the namespace come and go; anything else new is a leak.
    return {f for f in all_files(tmp_path) if not f.endswith(("-wal", "-shm"))}


IDENTIFIER_FORMS = {
    'ATTACH "x.db" AS y': "x.db",
    "ATTACH `x.db` AS y": "`x.db`",
    "ATTACH [x.db] AS y": "[x.db]",
    "ATTACH xdb AS y": "xdb",
    'ATTACH DATABASE "x.db" AS y': "x.db",
}
UNSUPPORTED_FORMS = [
    "ATTACH 'x.db' AS y",
    "ATTACH DATABASE 'x.db' AS y",
    "ATTACH ('x.db') AS y",
    "ATTACH CAST('x.db' AS TEXT) AS y",
    "ATTACH printf('%s.db', 'x') AS y",
    "ATTACH x'782e6462' AS y",
    "ATTACH 'file:x.db?mode=rwc' AS y",
    "/* c */ ATTACH 'x.db' AS y",
    "  ;ATTACH 'x.db' AS y",
]


@pytest.mark.parametrize("sql", sorted(IDENTIFIER_FORMS))
def test_identifier_attach_is_refused_like_sqld_and_creates_nothing(
    server: StandinServer, tmp_path: Path, sql: str
) -> None:
    before = snapshot(tmp_path)
    status, body = post(
        f"{server.url}/v3/pipeline", {"baton": None, "requests": [{"type": "execute", "stmt": {"sql": sql}}]}
    )
    assert status == 401, body
    assert f"Namespace `{IDENTIFIER_FORMS[sql]}` doesn't allow attach" in body["error"]
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("sql", UNSUPPORTED_FORMS)
@pytest.mark.parametrize("how", ["execute", "batch", "sequence"])
def test_other_attach_forms_are_unsupported_and_create_nothing(
    server: StandinServer, tmp_path: Path, sql: str, how: str
) -> None:
    before = snapshot(tmp_path)
    if how == "execute":
        request: dict[str, Any] = {"type": "execute", "stmt": {"sql": sql}}
    elif how == "batch":
        request = {"type": "batch", "batch": {"steps": [{"stmt": {"sql": sql}}]}}
    else:
        request = {"type": "sequence", "sql": f"CREATE TABLE t(a); {sql}; INSERT INTO t VALUES (1)"}
    status, body = post(f"{server.url}/v3/pipeline", {"baton": None, "requests": [request]})
    assert status == 200, body
    result = body["results"][0]
    assert result["type"] == "error", result
    assert result["error"]["code"] == "SQL_PARSE_ERROR"
    assert "unsupported statement" in result["error"]["message"]
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("sql", ["DETACH y", "DETACH DATABASE y", "DETACH 'y'", "DETACH main", 'DETACH "x.db"'])
def test_detach_fails_in_sqlite_with_nothing_attached(server: StandinServer, tmp_path: Path, sql: str) -> None:
    before = snapshot(tmp_path)
    status, body = post(
        f"{server.url}/v3/pipeline", {"baton": None, "requests": [{"type": "execute", "stmt": {"sql": sql}}]}
    )
    assert status == 200
    assert body["results"][0]["type"] == "error"
    assert body["results"][0]["error"]["code"] == "SQLITE_ERROR"
    assert snapshot(tmp_path) == before


def test_sqlite_itself_refuses_attach_under_the_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever text slipped past the tokenizer, the connection's ATTACH limit is 0."""
    monkeypatch.chdir(tmp_path)
    conn = ffi.Connection(str(tmp_path / "main.db"))
    try:
        with pytest.raises(ffi.SqliteError, match="too many attached databases"):
            conn.execute_simple("ATTACH 'x.db' AS y")
    finally:
        conn.close()
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "text/plain", "Origin": "https://evil.example"}, 403),
        ({"Content-Type": "application/x-www-form-urlencoded", "Origin": "null"}, 403),
        ({"Content-Type": "text/plain", "Origin": "http://localhost:3000"}, 200),
        ({"Content-Type": "text/plain", "Origin": "http://127.0.0.1:5000"}, 200),
        ({"Content-Type": "text/plain"}, 200),
        ({"Content-Type": "application/json", "Origin": "https://app.example"}, 200),
    ],
)
def test_cross_site_posts_are_refused(server: StandinServer, headers: dict[str, str], status: int) -> None:
    body = json.dumps(
        {"baton": None, "requests": [{"type": "execute", "stmt": {"sql": "CREATE TABLE IF NOT EXISTS t(a)"}}]}
    ).encode()
    req = urllib.request.Request(f"{server.url}/v3/pipeline", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            got = resp.status
    except urllib.error.HTTPError as err:
        got = err.code
    assert got == status
    if status == 403:  # and nothing ran
        _, listing = post(
            f"{server.url}/v3/pipeline",
            {
                "baton": None,
                "requests": [{"type": "execute", "stmt": {"sql": "SELECT name FROM sqlite_schema WHERE name = 't'"}}],
            },
        )
        assert listing["results"][0]["response"]["result"]["rows"] == []
