"""A statement starting with a byte-order mark."""

import sqlite3

c = sqlite3.connect("app.db")
print(c.execute("\ufeffselect 1").fetchall())
c.close()
