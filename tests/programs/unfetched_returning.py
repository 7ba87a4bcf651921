"""RELEASE fails with "SQL statements in progress" while an INSERT ... RETURNING cursor is unfetched."""

import sqlite3

c = sqlite3.connect("app.db", isolation_level=None)
c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
c.execute("SAVEPOINT sp")
cur = c.execute("INSERT INTO t(v) VALUES ('a'), ('b') RETURNING id")
try:
    c.execute("RELEASE sp")
except sqlite3.OperationalError as exc:
    print("first RELEASE:", exc)
print(cur.fetchall())
c.execute("RELEASE sp")
print(c.execute("SELECT count(*) FROM t").fetchall())
c.close()
