"""Values that differ on every run by nature, compared by storage class only.

``DEFAULT CURRENT_TIMESTAMP``, ``random()``, ``datetime('now')``... make even the
reference fail its own golden. A statement that computes such a value has its result
values replaced by a placeholder of the same storage class (NULL stays NULL, an integer
becomes 0, text becomes ''...), in the golden and in every replay alike; tables such a
statement writes, and columns whose DEFAULT is volatile, enter the final-state digest
the same way. Users add their own patterns (regexes searched in the SQL) in
``pyproject.toml``::

    [tool.traceparity]
    volatile = ["uuid_generate\\\\(", "\\\\bnow_ms\\\\("]
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..sqltext import statement_kind, tokens, words
from ..values import Result, SqlValue

BUILTIN = (
    r"\bCURRENT_(?:TIMESTAMP|DATE|TIME)\b",
    r"\brandom(?:blob)?\s*\(",
    r"\b(?:datetime|date|time|julianday|unixepoch|strftime|timediff)\s*\([^;]*?'(?:now|localtime)'",
    r"\bdatabase_list\b",  # file paths of the replay's own private databases
)


def _placeholder(value: SqlValue) -> SqlValue:
    if value is None:
        return None
    if isinstance(value, bool):
        return 0
    return type(value)()


def load_patterns(start: Path) -> list[str]:
    """User patterns from the nearest ``pyproject.toml`` at or above ``start`` (none if absent)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: tomli is a declared dependency there
        import tomli as tomllib
    for folder in [start.resolve(), *start.resolve().parents]:
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            try:
                data = tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return []
            patterns = data.get("tool", {}).get("traceparity", {}).get("volatile", [])
            return [p for p in patterns if isinstance(p, str)]
    return []


class Volatility:
    """Decides which statements and columns are volatile, and masks their values."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.patterns = [re.compile(p, re.IGNORECASE) for p in (*BUILTIN, *extra)]
        self.tables: set[str] = set()  # tables written by a volatile statement (lower-case names)
        self.columns: dict[str, set[str]] = {}  # table -> columns with a volatile DEFAULT (lower-case)

    def is_volatile(self, sql: str) -> bool:
        return any(p.search(sql) for p in self.patterns)

    def observe(self, sql: str) -> bool:
        """True when ``sql`` itself computes a volatile value; remembers which table it writes,
        and which columns a ``CREATE TABLE`` gives a volatile DEFAULT."""
        if not sql:
            return False
        kind = statement_kind(sql)
        if kind == "CREATE" and self._create_table(sql):
            return False
        if kind == "ALTER":
            self._alter(sql)
            return False
        if not self.is_volatile(sql):
            return False
        ws = words(sql)
        for verb, skip in (("INTO", ()), ("UPDATE", ("OR", "ROLLBACK", "ABORT", "REPLACE", "FAIL", "IGNORE"))):
            if verb in ws:
                i = ws.index(verb) + 1
                while i < len(ws) and ws[i] in skip:
                    i += 1
                if i < len(ws) and ws[i] != "SELECT":
                    self.tables.add(ws[i].lower())
        return True

    def _create_table(self, sql: str) -> bool:
        toks = [t for t in tokens(sql) if t.kind != "semicolon"]
        heads = [t.text.upper() for t in toks[:6]]
        if not heads or heads[0] != "CREATE" or "TABLE" not in heads:
            return False
        i = heads.index("TABLE") + 1
        while i < len(toks) and toks[i].text.upper() in ("IF", "NOT", "EXISTS"):
            i += 1
        if i >= len(toks):
            return True
        table = toks[i].text.strip('"`[]').lower()
        if i + 2 < len(toks) and toks[i + 1].text == ".":
            table = toks[i + 2].text.strip('"`[]').lower()
        depth, start, defs = 0, None, []
        for tok in toks[i:]:
            if tok.text == "(":
                depth += 1
                if depth == 1:
                    start = tok.start + 1
                    continue
            elif tok.text == ")":
                depth -= 1
                if depth == 0 and start is not None:
                    defs.append(sql[start : tok.start])
                    break
            elif tok.text == "," and depth == 1 and start is not None:
                defs.append(sql[start : tok.start])
                start = tok.start + 1
        hot = set()
        for definition in defs:
            name = self._volatile_column(definition)
            if name is not None:
                hot.add(name)
        self.tables.discard(table)  # a new table of that name starts with nothing volatile in it
        if hot:
            self.columns[table] = hot
        else:
            self.columns.pop(table, None)
        return True

    def _volatile_column(self, definition: str) -> str | None:
        first = next(iter(tokens(definition)), None)
        if first is None or first.text.upper() in ("PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "CONSTRAINT"):
            return None
        if "DEFAULT" in words(definition) and self.is_volatile(definition):
            return first.text.strip('"`[]').lower()
        return None

    def _alter(self, sql: str) -> None:
        """``ALTER TABLE a RENAME TO b`` carries a's volatile columns to b; ``ADD [COLUMN]`` may add one."""
        toks = [t for t in tokens(sql) if t.kind != "semicolon"]
        names = [t.text.strip('"`[]').lower() for t in toks]
        upper = [t.text.upper() for t in toks]
        if len(toks) < 5 or upper[1] != "TABLE":
            return
        i = 2
        if i + 2 < len(toks) and toks[i + 1].text == ".":
            i += 2
        table = names[i]
        rest = upper[i + 1 :]
        if rest[:2] == ["RENAME", "TO"] and len(rest) > 2:
            target = names[-1]
            if table in self.columns:
                self.columns[target] = self.columns.pop(table)
            if table in self.tables:
                self.tables.discard(table)
                self.tables.add(target)
        elif rest[:1] == ["ADD"]:
            index = i + 3 if rest[1:2] == ["COLUMN"] else i + 2
            if index >= len(toks):
                return
            start = toks[index].start
            name = self._volatile_column(sql[start:])
            if name is not None:
                self.columns.setdefault(table, set()).add(name)

    def result_columns(self, sql: str, columns: tuple[str, ...]) -> list[int] | None:
        """Positions of ``columns`` a read of ``sql`` must compare by type (``None``: all)."""
        if self.is_volatile(sql):
            return None
        named = {w.lower() for w in words(sql)} | {
            t.text.strip('"`[]').lower() for t in tokens(sql) if t.kind == "ident"
        }
        if named & self.tables:
            return None
        hot: set[str] = set()
        for table in named & set(self.columns):
            hot |= self.columns[table]
        return [i for i, c in enumerate(columns) if c.lower() in hot]

    def mask(self, result: Result, positions: list[int] | None = None) -> Result:
        rows = [
            tuple(_placeholder(v) if positions is None or i in positions else v for i, v in enumerate(row))
            for row in result.rows
        ]
        return Result(columns=result.columns, rows=rows, rowcount=result.rowcount, lastrowid=result.lastrowid)

    def volatile_columns(self, table: str, columns: list[dict[str, Any]]) -> list[int] | None:
        """Column positions to compare by type in ``table``'s digest (``None``: all of them)."""
        if table.lower() in self.tables:
            return None
        hot = self.columns.get(table.lower(), set())
        return [
            i
            for i, c in enumerate(columns)
            if (c.get("default") and self.is_volatile(str(c["default"]))) or str(c.get("name")).lower() in hot
        ]
