"""A credential that never prints itself.

Auth tokens travel from options and URLs to the HTTP header that needs them. On the way
they sit in settings objects, option mappings and function arguments, all of which pytest
shows in tracebacks (``--tb=long`` prints every frame's arguments, ``-l`` its locals), and
so in JUnit XML. Holding them as :class:`Secret` keeps them out of all of those; only
:func:`reveal`, called where a header or a client argument is built, yields the text.
"""

from __future__ import annotations

import hmac
from typing import overload
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"


class Secret:
    """Opaque token holder: ``repr`` is ``'***'``, ``str`` and formatting give ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        self._value = str(value)

    def reveal(self) -> str:
        """The token itself: call only where it leaves the process (a header, a client)."""
        return self._value

    def __repr__(self) -> str:
        return f"'{MASK}'"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        """Equal to the same token, wrapped or not (so settings compare as before)."""
        if isinstance(other, Secret):
            other = other._value
        if not isinstance(other, str):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:  # picklable (xdist, multiprocessing)
        return (Secret, (self._value,))


@overload
def reveal(value: Secret | str) -> str: ...
@overload
def reveal(value: None) -> None: ...
@overload
def reveal(value: Secret | str | None) -> str | None: ...
def reveal(value: Secret | str | None) -> str | None:
    """The plain text of a token that may or may not be wrapped."""
    return value.reveal() if isinstance(value, Secret) else value


def as_secret(value: Secret | str | None) -> Secret | None:
    """Wrap a token (empty or missing -> None)."""
    if value is None or value == "":
        return None
    return value if isinstance(value, Secret) else Secret(value)


_TOKEN_KEYS = ("authToken", "auth_token", "jwt")


def split_token(url: str) -> tuple[str, Secret | None]:
    """Move a token out of a URL (``?authToken=...`` or ``user:TOKEN@``) so it is never printed.

    libsql URLs may carry their token inline; the harness passes it as ``auth_token`` instead
    and every label, error and report shows the URL without it.
    """
    parts = urlsplit(url)
    token = None
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _TOKEN_KEYS:
            token = token or value
        else:
            query.append((key, value))
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        if ":" in userinfo:
            token = token or userinfo.split(":", 1)[1] or None
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), parts.fragment)), as_secret(token)


def redact(text: str, *secrets: str | Secret | None) -> str:
    """Remove every secret from ``text`` before it reaches output or a report."""
    for secret in secrets:
        plain = reveal(secret)
        if plain:
            text = text.replace(plain, "***")
    return text
