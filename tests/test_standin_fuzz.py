"""Malformed bodies never crash or hang the stand-in: 4xx with a JSON error, server healthy."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_traceparity.servers.standin import StandinServer

ENDPOINTS = ["/v2/pipeline", "/v3/pipeline", "/v3/cursor"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinServer]:
    with StandinServer(db_dir=tmp_path_factory.mktemp("fuzz")) as srv:
        yield srv


def post(url: str, data: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def error_text(raw: bytes) -> str:
    """The message of a 4xx: JSON ``message`` (server errors) or the plain text sqld uses
    for Hrana protocol errors (libsql-server/src/hrana/http/mod.rs)."""
    try:
        payload = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8")
    assert isinstance(payload, dict) and payload["code"]
    return str(payload["message"])


def assert_healthy(server: StandinServer) -> None:
    with urllib.request.urlopen(f"{server.url}/health", timeout=5) as resp:
        assert resp.status == 200


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_any = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
# Shapes close to the protocol, with random holes and wrong types.
value_like = st.one_of(
    json_any,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["null", "integer", "float", "text", "blob", "x"])},
        optional={"value": json_any, "base64": json_any},
    ),
    # a float sent as a JSON integer no double can hold
    st.fixed_dictionaries({"type": st.just("float"), "value": st.integers(min_value=10**308, max_value=10**400)}),
)
stmt_like = st.one_of(
    json_any,
    st.fixed_dictionaries(
        {},
        optional={
            "sql": st.one_of(st.sampled_from(["SELECT 1", "SELECT ?", "SELECT :a", "", "BEGIN"]), json_any),
            "sql_id": json_any,
            "args": st.one_of(st.lists(value_like, max_size=3), json_any),
            "named_args": st.one_of(
                st.lists(st.fixed_dictionaries({}, optional={"name": json_any, "value": value_like}), max_size=2),
                json_any,
            ),
            "want_rows": json_any,
        },
    ),
)
cond_like = st.recursive(
    st.one_of(
        json_any,
        st.fixed_dictionaries(
            {"type": st.sampled_from(["ok", "error", "is_autocommit", "zzz"])}, optional={"step": json_any}
        ),
    ),
    lambda c: st.fixed_dictionaries(
        {"type": st.sampled_from(["not", "and", "or"])}, optional={"cond": c, "conds": st.lists(c, max_size=3)}
    ),
    max_leaves=5,
)
batch_like = st.one_of(
    json_any,
    st.fixed_dictionaries(
        {},
        optional={
            "steps": st.one_of(
                json_any,
                st.lists(st.fixed_dictionaries({}, optional={"stmt": stmt_like, "condition": cond_like}), max_size=3),
            )
        },
    ),
)
request_like = st.one_of(
    json_any,
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                [
                    "execute",
                    "batch",
                    "sequence",
                    "describe",
                    "store_sql",
                    "close_sql",
                    "get_autocommit",
                    "close",
                    "open_stream",
                    "",
                ]
            )
        },
        optional={"stmt": stmt_like, "batch": batch_like, "sql": json_any, "sql_id": json_any},
    ),
)
body_like = st.one_of(
    json_any,
    st.fixed_dictionaries(
        {},
        optional={
            "baton": json_any,
            "requests": st.one_of(json_any, st.lists(request_like, max_size=4)),
            "batch": batch_like,
        },
    ),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(endpoint=st.sampled_from(ENDPOINTS), body=body_like)
def test_structured_garbage_gets_json_answers(server: StandinServer, endpoint: str, body: Any) -> None:
    status, raw = post(server.url + endpoint, json.dumps(body).encode())
    assert status == 200 or 400 <= status < 500, (status, raw)
    if endpoint.endswith("cursor") and status == 200:
        for line in raw.decode().splitlines():
            json.loads(line)
    elif status != 200:
        assert error_text(raw)
    else:
        assert json.loads(raw)["results"] is not None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(endpoint=st.sampled_from([*ENDPOINTS, "/v1/namespaces/x/create"]), data=st.binary(max_size=300))
def test_random_bytes_get_4xx_json(server: StandinServer, endpoint: str, data: bytes) -> None:
    status, raw = post(server.url + endpoint, data)
    if endpoint.startswith("/v1") and status == 200:
        server.delete_namespace("x")
        return
    assert 400 <= status < 500, (status, raw)
    assert error_text(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"POST /v3/pipeline HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"POST /v3/pipeline HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
        b"POST /v3/pipeline HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /v3/pipeline HTTP/1.1\r\nHost: " + b"a" * 70000 + b"\r\n\r\n",
        b'POST /v3/pipeline HTTP/1.1\r\nHost: [abc\r\nContent-Length: 15\r\n\r\n{"requests":[]}',
        b'POST /v2/pipeline HTTP/1.1\r\nHost: [::1\r\nContent-Length: 15\r\n\r\n{"requests":[]}',
    ],
)
def test_broken_http_is_answered_with_json(server: StandinServer, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    assert 400 <= status < 500, reply[:200]
    assert json.loads(body)["message"]
    assert_healthy(server)


def test_still_healthy_after_fuzzing(server: StandinServer) -> None:
    assert_healthy(server)
    status, raw = post(
        f"{server.url}/v3/pipeline",
        json.dumps({"baton": None, "requests": [{"type": "execute", "stmt": {"sql": "SELECT 41 + 1"}}]}).encode(),
    )
    assert status == 200
    assert json.loads(raw)["results"][0]["response"]["result"]["rows"] == [[{"type": "integer", "value": "42"}]]
    assert server.streams.count() < 400  # streams of garbage requests did not pile up unboundedly


@pytest.mark.parametrize(
    "body",
    [
        # a float argument sent as a huge JSON integer
        b'{"baton": null, "requests": [{"type": "execute", "stmt": {"sql": "SELECT ?", "args": '
        b'[{"type": "float", "value": 1' + b"0" * 400 + b"}]}}]}",
        # a lone surrogate in a statement the gate refuses (and in one it would run)
        b'{"baton": null, "requests": [{"type": "execute", "stmt": {"sql": "VACUUM \\ud800"}}]}',
        b'{"baton": null, "requests": [{"type": "execute", "stmt": {"sql": "SELECT \'\\udc00\'"}}]}',
    ],
    ids=["huge-integer-float", "lone-surrogate-refused", "lone-surrogate-select"],
)
def test_client_input_gets_4xx_never_5xx(server: StandinServer, body: bytes) -> None:
    status, raw = post(f"{server.url}/v3/pipeline", body)
    assert 400 <= status < 500, (status, raw)
    assert error_text(raw)
    assert_healthy(server)


def test_body_shorter_than_content_length_gets_400_quickly(server: StandinServer) -> None:
    import time

    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        started = time.monotonic()
        sock.sendall(b'POST /v3/pipeline HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"baton":')
        reply = b""
        while chunk := sock.recv(65536):  # the write side stays open: the client waits for us
            reply += chunk
        elapsed = time.monotonic() - started
    assert int(reply.split()[1]) == 400, reply[:200]
    assert b"shorter than Content-Length" in reply
    assert elapsed < 10, f"took {elapsed:.1f} s"
    assert_healthy(server)
