"""Race namespace delete against a stream's in-flight query and its ``close`` (issue 9).

Starts ``traceparity serve`` on a free port (or uses ``--url``), then per iteration:
create namespace ``raceN``; open a stream with ``CREATE TABLE t(a)``, ``BEGIN``,
``INSERT``; then, from two threads at once, send a slow recursive-CTE ``count(*)``
followed by ``close`` on that baton, and ``DELETE /v1/namespaces/raceN``. After each
iteration the server must still answer ``/health``. Exits 1 (naming the iteration) when
the server dies or stops answering.

    python bench/standin_race.py --iterations 300
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) SELECT count(*) FROM c"


def http(method: str, url: str, payload: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        body, status = err.read(), err.code
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, body.decode("utf-8", "replace")


def stmt(sql: str) -> dict[str, Any]:
    return {"type": "execute", "stmt": {"sql": sql}}


def start_server(workdir: str) -> tuple[subprocess.Popen[bytes], str, str]:
    log_path = os.path.join(workdir, "serve.log")
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the child for its lifetime
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_traceparity.cli",
            "serve",
            "--port",
            "0",
            "--db-dir",
            os.path.join(workdir, "db"),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"traceparity serve did not start (log: {log_path}): {line!r}")
    return proc, line.removeprefix("listening on "), log_path


def iteration(url: str, n: int, rows: int) -> None:
    name = f"race{n}"
    status, body = http("POST", f"{url}/v1/namespaces/{name}/create", {})
    if status != 200:
        raise RuntimeError(f"create {name}: {status} {body}")
    status, body = http(
        "POST",
        f"{url}/dev/{name}/v2/pipeline",
        {
            "baton": None,
            "requests": [stmt("CREATE TABLE t(a)"), stmt("BEGIN"), stmt("INSERT INTO t VALUES (1)")],
        },
    )
    if status != 200:
        raise RuntimeError(f"setup {name}: {status} {body}")
    baton = body["baton"]
    outcomes: dict[str, Any] = {}

    def slow() -> None:
        try:
            outcomes["slow"] = http(
                "POST",
                f"{url}/dev/{name}/v2/pipeline",
                {
                    "baton": baton,
                    "requests": [stmt(SLOW.format(rows=rows)), {"type": "close"}],
                },
            )
        except OSError as exc:
            outcomes["slow"] = (599, f"no answer: {exc}")

    def delete() -> None:
        try:
            outcomes["delete"] = http("DELETE", f"{url}/v1/namespaces/{name}")
        except OSError as exc:
            outcomes["delete"] = (599, f"no answer: {exc}")

    threads = [threading.Thread(target=slow), threading.Thread(target=delete)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for key, (status, body) in outcomes.items():
        if status >= 500:
            raise RuntimeError(f"{key} {name}: HTTP {status} {body}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the slow recursive CTE")
    parser.add_argument("--url", default=None, help="race an already running server instead")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="standin-race-") as workdir:
        proc = None
        url = args.url
        log_path = "(external server)"
        if url is None:
            proc, url, log_path = start_server(workdir)
        started = time.monotonic()
        try:
            for n in range(args.iterations):
                try:
                    iteration(url, n, args.rows)
                    status, _ = http("GET", f"{url}/health", timeout=10)
                except (OSError, RuntimeError) as exc:
                    status = -1
                    print(f"iteration {n}: {exc}", file=sys.stderr)
                if status != 200 or (proc is not None and proc.poll() is not None):
                    code = None if proc is None else proc.poll()
                    print(f"FAIL: server stopped answering at iteration {n} (exit status {code}); log: {log_path}")
                    if proc is not None and os.path.exists(log_path):
                        print(Path(log_path).read_text(encoding="utf-8", errors="replace")[-2000:])
                    return 1
            elapsed = time.monotonic() - started
            print(f"OK: {args.iterations} iterations in {elapsed:.1f} s; server still answers /health")
            return 0
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
