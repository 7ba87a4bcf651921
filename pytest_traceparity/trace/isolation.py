"""Keep a replay inside its private workdir: file targets named by a trace are mapped there.

A trace is data from another machine: ``ATTACH DATABASE '/abs/path' AS x``,
``VACUUM INTO 'copy.db'`` or ``load_extension('/lib/x.so')`` would otherwise create,
overwrite or load files wherever the recorded program pointed, and the replay's outcome
would depend on the replaying machine. Each distinct target (literal or bound parameter)
becomes one more per-trace file under the replay's workdir, numbered by first
appearance, so the same trace maps the same way on every backend.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..sqltext import Token, string_value, tokens

_KEEP = ("", ":memory:")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class PathMapper:
    """Maps every file target a trace names to a file under ``root()`` (created lazily)."""

    def __init__(self, root: Callable[[], Path]) -> None:
        self._root = root
        self._dir: Path | None = None
        self.mapped: dict[str, str] = {}

    def __call__(self, target: str) -> str:
        if target in _KEEP:
            return target
        if target.startswith("file:"):
            body, sep, query = target[5:].partition("?")
            if "mode=memory" in query or body in _KEEP:
                return target
            return f"file:{self(body)}{sep}{query}"
        if target not in self.mapped:
            if self._dir is None:
                self._dir = self._root()
                self._dir.mkdir(parents=True, exist_ok=True)
            base = _SAFE.sub("_", target.replace("\\", "/").rsplit("/", 1)[-1])[:40] or "db"
            self.mapped[target] = str(self._dir / f"f{len(self.mapped) + 1}-{base}")
        return self.mapped[target]


def _targets(toks: list[Token]) -> list[int]:
    """Indexes of the tokens that name a file: after ATTACH [DATABASE], VACUUM [schema] INTO,
    and the first argument of load_extension(...)."""
    found: list[int] = []
    n = len(toks)
    for i, tok in enumerate(toks):
        if tok.kind != "word":
            continue
        word = tok.text.upper()
        j = -1
        if word == "ATTACH":
            j = i + 1
            if j < n and toks[j].kind == "word" and toks[j].text.upper() == "DATABASE":
                j += 1
        elif word == "VACUUM":
            j = i + 1
            if j < n and toks[j].kind in ("word", "ident") and toks[j].text.upper() != "INTO":
                j += 1
            if not (j < n and toks[j].kind == "word" and toks[j].text.upper() == "INTO"):
                continue
            j += 1
        elif word == "LOAD_EXTENSION" and i + 1 < n and toks[i + 1].text == "(":
            j = i + 2
        if 0 <= j < n:
            found.append(j)
    return found


def _param_slot(toks: list[Token], index: int, positional: list[int]) -> int | str | None:
    """The parameter a placeholder token binds: a 0-based position or a name."""
    tok = toks[index]
    if tok.text == "?":
        nxt = toks[index + 1] if index + 1 < len(toks) else None
        if nxt is not None and nxt.kind == "number" and nxt.start == tok.start + 1:
            return int(nxt.text) - 1
        return positional.index(index)
    if tok.text in (":", "@", "$") and index + 1 < len(toks) and toks[index + 1].kind == "word":
        return toks[index + 1].text
    return None


def file_targets(sql: str) -> bool:
    """Whether ``sql`` names a file (ATTACH, VACUUM INTO, load_extension) that :func:`isolate` maps."""
    return _file_spots(sql) is not None


@functools.lru_cache(maxsize=4096)
def _file_spots(sql: str) -> tuple[list[Token], list[int]] | None:
    """Tokens and file-target positions of ``sql`` (``None``: it names no file); one tokenization per text."""
    lowered = sql.lower()
    if "attach" not in lowered and "into" not in lowered and "load_extension" not in lowered:
        return None
    toks = list(tokens(sql))
    spots = _targets(toks)
    return (toks, spots) if spots else None


def isolate(sql: str, params: Any, mapper: PathMapper) -> tuple[str, Any]:
    """``(sql, params)`` with every file target replaced by its private mapping."""
    found = _file_spots(sql)
    if found is None:
        return sql, params
    toks, spots = found
    positional = [i for i, t in enumerate(toks) if t.text == "?"]
    edits: list[tuple[int, int, str]] = []
    for index in spots:
        tok = toks[index]
        if tok.kind == "string":
            new = mapper(string_value(tok))
            edits.append((tok.start, tok.start + len(tok.text), "'" + new.replace("'", "''") + "'"))
            continue
        slot = _param_slot(toks, index, positional)
        if isinstance(slot, int) and isinstance(params, (list, tuple)) and 0 <= slot < len(params):
            if isinstance(params[slot], str):
                params = list(params)
                params[slot] = mapper(params[slot])
        elif isinstance(slot, str) and isinstance(params, dict) and isinstance(params.get(slot), str):
            params = {**params, slot: mapper(params[slot])}
    for start, end, text in sorted(edits, reverse=True):
        sql = sql[:start] + text + sql[end:]
    if isinstance(params, list):
        params = tuple(params)
    return sql, params


def isolate_many(sql: str, batches: list[Any], mapper: PathMapper) -> tuple[str, list[Any]]:
    if not batches:
        return isolate(sql, (), mapper)[0], batches
    out = [isolate(sql, p, mapper) for p in batches]
    return out[0][0], [p for _, p in out]
