"""Functions, aggregates and collations the recorded program registered on its connections.

The program's Python callables cannot travel in a trace, so a step that calls one cannot
be replayed faithfully on any backend. The recorder writes a ``register`` event (kind,
name, arity); the replayer marks every later step on that connection that names one of
them (a call ``name(`` or ``COLLATE name``) as excluded: it is not run, every backend gets
the same marked outcome, and the report counts the excluded steps per registration.
"""

from __future__ import annotations

from ..sqltext import tokens
from .format import Event


class Registrations:
    def __init__(self) -> None:
        self._by_conn: dict[int, dict[str, str]] = {}
        # whether any connection registered anything (else no step can depend on a registration); an
        # attribute, not a property: the replayer asks it for every step
        self.active = False

    def add(self, event: Event) -> None:
        label = f"{event.kind} {event.name}/{event.arity if event.arity is not None else '-'}"
        self._by_conn.setdefault(event.conn, {})[(event.name or "").lower()] = label
        self.active = True

    def dependency(self, conn: int, sql: str) -> str | None:
        """Why ``sql`` on ``conn`` depends on a program-registered callable, or ``None``."""
        names = self._by_conn.get(conn)
        if not names or not sql:
            return None
        toks = list(tokens(sql))
        for i, tok in enumerate(toks):
            if tok.kind not in ("word", "ident"):
                continue
            name = tok.text.strip('"`[]').lower()
            label = names.get(name)
            if label is None:
                continue
            called = i + 1 < len(toks) and toks[i + 1].text == "("
            collated = i > 0 and toks[i - 1].text.upper() == "COLLATE"
            if (called and not label.startswith("collation")) or (collated and label.startswith("collation")):
                return f"uses {label} registered by the program (not replayable; excluded from comparison)"
        return None
