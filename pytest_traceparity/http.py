"""The one small HTTP client of the harness (health checks, sync-primary probes, server setup).

Plain ``urllib`` so the core needs nothing beyond the standard library; an HTTP error status
is returned, not raised, because every caller turns specific statuses into its own message.
Connection failures (``OSError`` / ``URLError``) propagate: only the caller knows which server
it was talking to and what the user should check.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from .secret import Secret, reveal


def request(
    method: str,
    url: str,
    *,
    token: Secret | str | None = None,
    body: Any = None,
    timeout: float = 10.0,
    host: str | None = None,
    always_authorize: bool = False,
) -> tuple[int, bytes]:
    """``(status, body)``; ``body`` is sent as JSON. The token only ever goes into the header.

    ``always_authorize`` sends ``Authorization: Bearer`` even without a token, as the libsql
    client does when it bootstraps a replica (some primaries answer 401 rather than 404 then).
    """
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token or always_authorize:
        req.add_header("Authorization", f"Bearer {reveal(token) or ''}")
    if host:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
