"""The issue's check on a program we had never seen: recorded, replayed with --json, nothing unknown.

The program passes dict parameters, binds 2**40 and catches sqlite3.IntegrityError; on libsql-local
every difference must be attributed to a shipped cause rule (no subject lists a step of this trace),
and the int binding must rank as ``data``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_traceparity.registry import standalone_registry

PROGRAM = textwrap.dedent("""
    import sqlite3

    conn = sqlite3.connect("app.db")
    conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL, quota INTEGER)")
    conn.execute("INSERT INTO accounts (email, quota) VALUES (:email, :quota)", {"email": "a@x.org", "quota": 5})
    conn.execute("INSERT INTO accounts (email, quota) VALUES (?, ?)", ("b@x.org", 7))
    conn.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value)")  # untyped, like a key-value store
    conn.execute("INSERT INTO settings (key, value) VALUES (?, ?)", ("max_upload_bytes", 2**40))
    conn.commit()
    try:
        conn.execute("INSERT INTO accounts (email, quota) VALUES (?, ?)", ("b@x.org", 1))
    except sqlite3.IntegrityError:
        conn.rollback()
    big = conn.execute("SELECT value, typeof(value) FROM settings WHERE key = ?", ("max_upload_bytes",)).fetchone()
    mine = conn.execute("SELECT email FROM accounts WHERE quota < :limit ORDER BY id", {"limit": 10}).fetchall()
    print(big, mine)
    conn.close()
""")


def traceparity(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_traceparity.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_unseen_program_has_no_unknown_difference_on_libsql_local(tmp_path: Path) -> None:
    reason = standalone_registry().get("libsql-local").unavailable_reason()
    if reason:
        pytest.skip(f"libsql-local cannot run here: {reason}")
    (tmp_path / "app.py").write_text(PROGRAM)
    recorded = traceparity("record", "-o", "traces/app.jsonl", "--", sys.executable, "app.py", cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    made = traceparity("replay", "traces/app.jsonl", "--update-golden", cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    replayed = traceparity("replay", "traces/app.jsonl", "--backend", "libsql-local", "--json", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    report = json.loads(replayed.stdout[replayed.stdout.index("{") :])
    differences = report["differences"]
    assert differences, "libsql-local must differ on this program (dict params, 2**40, ValueError)"
    assert [d for d in differences if d["rule"] is None] == []
    assert {"seq", "aspect", "severity", "rule", "expected", "actual", "sql"} <= set(differences[0])
    by_rule = {d["rule"]: d for d in differences}
    bound = by_rule["libsql.int-outside-i32-bound-as-real"]
    assert bound["severity"] == "data" and (bound["expected"], bound["actual"]) == ("integer", "real")
    assert "typeof(value)" in bound["sql"]
    assert {
        "libsql.dict-params-refused",
        "libsql.valueerror-for-sql-errors",
        "libsql.dict-params-write-lost",
        "libsql.int-outside-i32-stored-as-real",
    } <= set(by_rule)
    causes = report["root_causes"]
    assert all(c["rule"] for c in causes)
    assert sum(c["count"] for c in causes) == len(differences)
    assert causes[0]["severity"] == "data"  # most severe first
