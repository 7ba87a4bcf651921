"""Auth tokens never reach output: terminal, tracebacks, JUnit XML, reports, logs (issue 9)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pytest_traceparity.backends.base import BackendContext
from pytest_traceparity.config import ReplicaSettings, sqld_config
from pytest_traceparity.secret import Secret, reveal

TOKEN = "S3CRETTOKEN"
URL_TOKEN = "URLT0KENxyz"


class _HalfServer(BaseHTTPRequestHandler):
    """Healthy, a sync primary at generation 1, and broken for everything else.

    Database creation then fails past the harness's own checks: the Hrana answer is not
    JSON, the export is a 500. Those are the failures that print full tracebacks.
    """

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._answer(200, b"")
        elif self.path == "/version":
            self._answer(200, b"half-server 1")
        elif self.path.startswith("/info"):
            self._answer(200, b'{"current_generation": 1}')
        else:
            self._answer(500, b"broken")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(200, b"this is not JSON")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def half_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _HalfServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_secret_hides_itself_everywhere() -> None:
    secret = Secret(TOKEN)
    assert repr(secret) == "'***'" and str(secret) == "***" and f"{secret}" == "***"
    assert TOKEN not in repr({"token": secret}) and TOKEN not in repr([secret])
    assert reveal(secret) == TOKEN and reveal(None) is None and reveal("plain") == "plain"
    assert secret == Secret(TOKEN) and secret == TOKEN and secret != "other" and bool(secret) and not Secret("")
    with pytest.raises(TypeError):
        secret + "x"  # type: ignore[operator]


def test_settings_and_contexts_hold_secrets_not_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TURSO_AUTH_TOKEN", raising=False)
    config = sqld_config("url", url=f"http://user:{URL_TOKEN}@127.0.0.1:1", auth_token=None)
    assert isinstance(config.auth_token, Secret) and reveal(config.auth_token) == URL_TOKEN
    replica = ReplicaSettings(sync_url=f"http://127.0.0.1:1?authToken={TOKEN}")
    assert isinstance(replica.sync_token, Secret)
    ctx = BackendContext(workdir=Path("."), options={"sync_auth_token": Secret(TOKEN)})
    for text in (repr(config), repr(replica), repr(ctx), str(ctx.options)):
        assert TOKEN not in text and URL_TOKEN not in text


@pytest.mark.parametrize("how", ["option", "url"])
def test_remote_creation_failure_leaks_no_token(pytester: pytest.Pytester, half_server: str, how: str) -> None:
    pytester.makepyfile(
        """
        def test_uses_the_server(db):
            db.execute("SELECT 1")

        def test_again(db):
            db.execute("SELECT 2")
        """
    )
    if how == "option":
        args = [
            f"--sqld-url=http://{half_server}",
            f"--sqld-auth-token={TOKEN}",
            f"--sync-url=http://{half_server}?authToken={TOKEN}",
        ]
        secrets = [TOKEN]
    else:
        args = [f"--sqld-url=http://user:{URL_TOKEN}@{half_server}", f"--sync-url=http://user:{TOKEN}@{half_server}"]
        secrets = [TOKEN, URL_TOKEN]
    junit = pytester.path / "junit.xml"
    report_json = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "--backends=sqld-http,embedded-replica",
        "--sqld=url",
        "--sqld-allow-reset",
        *args,
        "--tb=long",
        "-rA",
        "-l",
        f"--junitxml={junit}",
        f"--traceparity-report={report_json}",
    )
    outputs = {
        "stdout": result.stdout.str(),
        "stderr": result.stderr.str(),
        "junit": junit.read_text(),
        "report": report_json.read_text(),
    }
    assert half_server in outputs["stdout"]  # the failure is reported, naming the server
    assert result.ret != 0
    result.assert_outcomes(errors=4)
    for name, text in outputs.items():
        for secret in secrets:
            assert secret not in text, f"{secret} leaked into {name}"
    # every file the run left behind (logs, caches) is clean too
    for path in pytester.path.rglob("*"):
        if path.is_file() and path.suffix != ".py":
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"{secret} leaked into {path}"
