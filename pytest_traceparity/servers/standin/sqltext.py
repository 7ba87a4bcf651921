"""Small lexical helpers over SQL text: what sqld learns from its own SQL parser.

sqld parses every statement before SQLite sees it; from that it knows whether a
statement is an INSERT/UPDATE/DELETE (``affected_row_count`` is reported only for
those) or an INSERT (``last_insert_rowid`` only for those), and whether the text holds
zero, one or several statements. A tokenizer that understands quotes and comments is
enough to reproduce those decisions.
"""

from __future__ import annotations

from collections.abc import Iterator

_QUOTES = {"'": "'", '"': '"', "`": "`", "[": "]"}


def tokens(sql: str) -> Iterator[str]:
    """Yield words (upper-cased), punctuation, and ``'``/``"`` for quoted tokens; skip the rest."""
    for tok, _start, _end in spans(sql):
        yield tok


def spans(sql: str) -> Iterator[tuple[str, int, int]]:
    """Like :func:`tokens`, with each token's character offsets."""
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch in _QUOTES:
            close = _QUOTES[ch]
            j = i + 1
            while j < n:
                if sql[j] == close:
                    if close != "]" and j + 1 < n and sql[j + 1] == close:
                        j += 2
                        continue
                    break
                j += 1
            yield ("'" if ch == "'" else '"'), i, min(j + 1, n)
            i = j + 1
        elif ch.isalnum() or ch == "_" or ord(ch) > 127:
            j = i
            while j < n and (sql[j].isalnum() or sql[j] in "_$" or ord(sql[j]) > 127):
                j += 1
            yield sql[i:j].upper(), i, j
            i = j
        else:
            yield ch, i, i + 1
            i += 1


def split_statements(sql: str) -> list[str]:
    """Split on top-level ``;`` (trigger bodies kept whole); blank pieces dropped."""
    pieces: list[str] = []
    start = 0
    first: list[str] = []
    in_body = False
    case_depth = 0
    for tok, _begin, end in spans(sql):
        if tok == ";" and not in_body:
            piece = sql[start:end]
            if not is_blank(piece):
                pieces.append(piece)
            start, first, case_depth = end, [], 0
            continue
        if len(first) < 4:
            first.append(tok)
        is_trigger = first[:1] == ["CREATE"] and "TRIGGER" in first
        if is_trigger and tok == "BEGIN" and not in_body:
            in_body = True
        elif in_body and tok == "CASE":
            case_depth += 1
        elif in_body and tok == "END":
            if case_depth:
                case_depth -= 1
            else:
                in_body = False
    if not is_blank(sql[start:]):
        pieces.append(sql[start:])
    return pieces


def is_blank(sql: str) -> bool:
    """True when ``sql`` holds nothing but whitespace, comments and semicolons."""
    return all(tok == ";" for tok in tokens(sql))


_MAIN_KEYWORDS = {"SELECT", "INSERT", "REPLACE", "UPDATE", "DELETE", "VALUES"}


def main_keyword(sql: str) -> str:
    """The statement's verb, looking through a leading ``WITH`` clause."""
    toks = tokens(sql)
    first = next(toks, "")
    if first == "EXPLAIN":
        return "EXPLAIN"
    if first != "WITH":
        return first
    depth = 0
    for tok in toks:
        if tok == "(":
            depth += 1
        elif tok == ")":
            depth -= 1
        elif depth == 0 and tok in _MAIN_KEYWORDS:
            return tok
    return first


def statement_kind(sql: str) -> tuple[bool, bool]:
    """``(is_iud, is_insert)`` as sqld decides them."""
    verb = main_keyword(sql)
    is_insert = verb in ("INSERT", "REPLACE")
    return is_insert or verb in ("UPDATE", "DELETE"), is_insert


# sqld classifies every statement before running it (libsql-server/src/query_analysis.rs)
# and refuses the ones it has no kind for. These sets mirror its PRAGMA lists.
_PRAGMA_ANY = {
    "table_list",
    "index_list",
    "table_info",
    "table_xinfo",
    "index_info",
    "index_xinfo",
    "pragma_list",
    "compile_options",
    "database_list",
    "function_list",
    "module_list",
    "encoding",
    "defer_foreign_keys",
    "foreign_keys",
    "foreign_key_list",
    "foreign_key_check",
    "collation_list",
    "data_version",
    "freelist_count",
    "integrity_check",
    "legacy_file_format",
    "page_count",
    "quick_check",
    "stats",
    "user_version",
}
_PRAGMA_NO_ARGS = {
    "analysis_limit",
    "application_id",
    "auto_vacuum",
    "automatic_index",
    "busy_timeout",
    "cache_size",
    "cache_spill",
    "cell_size_check",
    "checkpoint_fullfsync",
    "fullfsync",
    "hard_heap_limit",
    "journal_mode",
    "journal_size_limit",
    "legacy_alter_table",
    "locking_mode",
    "max_page_count",
    "mmap_size",
    "page_size",
    "query_only",
    "read_uncommitted",
    "recursive_triggers",
    "reverse_unordered_selects",
    "secure_delete",
    "soft_heap_limit",
    "synchronous",
    "temp_store",
    "threads",
    "trusted_schema",
    "wal_autocheckpoint",
    "schema_version",
}
_RESERVED_TABLES = {"_LITESTREAM_SEQ", "_LITESTREAM_LOCK", "LIBSQL_WASM_FUNC_TABLE"}


def _pragma_supported(toks: list[str]) -> bool:
    # toks starts after PRAGMA: [schema .] name [= value | ( value )]
    if len(toks) >= 3 and toks[1] == ".":
        toks = toks[2:]
    if not toks:
        return False
    name = toks[0].lower()
    has_body = len(toks) > 1 and toks[1] in ("=", "(")
    if name in _PRAGMA_ANY:
        return True
    return name in _PRAGMA_NO_ARGS and not has_body


def sqld_unsupported(sql: str) -> bool:
    """True for statements sqld refuses ("unsupported statement"), e.g. temp tables, VACUUM."""
    toks = list(tokens(sql))
    while toks and toks[0] == ";":
        toks.pop(0)
    if not toks:
        return False
    head = toks[0]
    if head == "EXPLAIN":
        rest = toks[1:]
        if rest[:2] == ["QUERY", "PLAN"]:
            return False
        return bool(rest) and rest[0] == "PRAGMA" and not _pragma_supported(rest[1:])
    if head == "PRAGMA":
        return not _pragma_supported(toks[1:])
    if head in ("VACUUM", "ANALYZE"):
        return True
    if head == "CREATE" and len(toks) > 1 and toks[1] in ("TEMP", "TEMPORARY"):
        return True
    if head == "ATTACH":
        return attach_namespace(sql) is None
    if head in ("INSERT", "REPLACE", "UPDATE", "DELETE", "DROP", "ALTER"):
        return any(t in _RESERVED_TABLES for t in toks[1:6])
    return False


# Literal keywords sqld's parser reads as values, not identifiers, in ATTACH's expression.
_LITERAL_WORDS = {"NULL", "TRUE", "FALSE", "CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP"}


def attach_namespace(sql: str) -> str | None:
    """For ``ATTACH``: the namespace name sqld would try to attach, else None.

    sqld (libsql-server/src/query_analysis.rs) classifies ``ATTACH`` only when its
    expression is a lone identifier — bare, ``"double"``, `` `back` `` or ``[bracket]``
    quoted; it strips double quotes only — and then refuses it unless that namespace
    allows attach (never, on the stand-in). Every other form (``'file'``, ``x'..'``,
    ``CAST(..)``, ``printf(..)``, ``(..)``) is an "unsupported statement".
    """
    seq = [(tok, sql[start:end]) for tok, start, end in spans(sql)]
    while seq and seq[0][0] == ";":
        seq.pop(0)
    if not seq or seq[0][0] != "ATTACH":
        return None
    rest = seq[1:]
    if rest[:1] and rest[0][0] == "DATABASE":
        rest = rest[1:]
    if len(rest) < 2 or rest[1][0] != "AS":
        return None
    tok, raw = rest[0]
    if tok == "'" and raw.startswith("'"):
        return None  # a string literal
    if tok == '"':
        name = raw[1:-1] if raw.startswith('"') and raw.endswith('"') and len(raw) > 1 else raw
        return name or None
    if (tok[:1].isalpha() or tok[:1] == "_" or ord(tok[:1] or "a") > 127) and tok not in _LITERAL_WORDS:
        return raw
    return None
