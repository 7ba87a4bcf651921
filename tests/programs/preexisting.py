"""Reads and extends a database that existed before the recording started."""

import sqlite3

c = sqlite3.connect("seeded.db")
print(c.execute("SELECT count(*), sum(v) FROM items").fetchall())
c.execute("INSERT INTO items(v) VALUES (100)")
c.commit()
print(c.execute("SELECT count(*) FROM items").fetchall())
c.close()
