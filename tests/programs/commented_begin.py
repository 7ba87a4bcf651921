"""An explicit BEGIN after a comment, a ';' and a BOM: the program opens the transaction itself."""

import sqlite3

c = sqlite3.connect("app.db")
c.execute("CREATE TABLE t(x)")
c.commit()
c.execute("-- start\nBEGIN")
c.execute("INSERT INTO t VALUES (1)")
c.commit()
c.execute(";\ufeff/* x */ BEGIN IMMEDIATE")
c.execute("INSERT INTO t VALUES (2)")
c.commit()
print(c.execute("SELECT count(*) FROM t").fetchall())
c.close()
