"""ATTACH and VACUUM INTO absolute paths (given in argv) and load_extension of a missing library."""

import sqlite3
import sys

other, copy = sys.argv[1], sys.argv[2]
c = sqlite3.connect("app.db", isolation_level=None)
c.execute("CREATE TABLE t(x)")
c.execute("INSERT INTO t VALUES (1)")
c.execute(f"ATTACH DATABASE '{other}' AS other")
c.execute("CREATE TABLE other.o(y)")
c.execute("INSERT INTO other.o SELECT x FROM t")
c.execute("ATTACH ? AS other2", (other + "2",))
c.execute("CREATE TABLE other2.p(z)")
c.execute(f"VACUUM INTO '{copy}'")
try:
    c.execute("SELECT load_extension('/nonexistent/libfoo')")
except sqlite3.Error as exc:
    print("load_extension:", exc)
c.close()
