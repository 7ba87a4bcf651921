"""An FTS4 table left pointing at a dropped content table: its final state is unreadable."""

import sqlite3

c = sqlite3.connect("app.db", isolation_level=None)
c.execute("CREATE TABLE docs(body TEXT)")
c.execute("CREATE VIRTUAL TABLE docs_fts USING fts4(body, content=docs)")
c.execute("CREATE TABLE keep(x)")
c.execute("INSERT INTO keep VALUES (1)")
c.execute("DROP TABLE docs")
c.close()
