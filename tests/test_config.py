"""Tokens given inline in URLs are moved out before anything can print them."""

from __future__ import annotations

import pytest

from pytest_traceparity.config import ReplicaSettings, split_token, sqld_config


@pytest.mark.parametrize(
    ("url", "clean", "token"),
    [
        ("libsql://db-org.turso.io?authToken=S3CRET", "libsql://db-org.turso.io", "S3CRET"),
        ("http://127.0.0.1:8080/x?a=1&auth_token=S3CRET", "http://127.0.0.1:8080/x?a=1", "S3CRET"),
        ("http://user:S3CRET@127.0.0.1:8080", "http://127.0.0.1:8080", "S3CRET"),
        ("http://user@127.0.0.1:8080", "http://127.0.0.1:8080", None),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080", None),
    ],
)
def test_split_token(url: str, clean: str, token: str | None) -> None:
    assert split_token(url) == (clean, token)


def test_sqld_url_token_becomes_the_auth_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TURSO_AUTH_TOKEN", raising=False)
    config = sqld_config("url", url="https://db.example?authToken=S3CRET")
    assert config.url == "https://db.example" and config.auth_token == "S3CRET"
    assert "S3CRET" not in repr(config)
    explicit = sqld_config("url", url="https://db.example?authToken=S3CRET", auth_token="given")
    assert explicit.auth_token == "given"


def test_sync_url_token_is_kept_out_of_the_url() -> None:
    settings = ReplicaSettings(sync_url="libsql://db.example?authToken=S3CRET")
    assert settings.sync_url == "libsql://db.example" and settings.sync_token == "S3CRET"
    assert "S3CRET" not in repr(settings)
