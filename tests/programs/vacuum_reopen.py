"""Connection A writes, VACUUMs, writes again and closes; connection B reopens the file and counts."""

import sqlite3

a = sqlite3.connect("app.db", isolation_level=None)
a.execute("CREATE TABLE t(x)")
a.execute("INSERT INTO t VALUES (1)")
a.execute("VACUUM")
a.execute("INSERT INTO t VALUES (2)")
a.close()
b = sqlite3.connect("app.db", isolation_level=None)
print(b.execute("SELECT count(*) FROM t").fetchall())
b.close()
