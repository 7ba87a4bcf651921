"""A function, an aggregate and a collation registered by the program, then used."""

import sqlite3


class Total:
    def __init__(self) -> None:
        self.n = 0

    def step(self, v: int) -> None:
        self.n += v

    def finalize(self) -> int:
        return self.n


c = sqlite3.connect("app.db", isolation_level=None)
c.create_function("twice", 1, lambda v: v * 2)
c.create_aggregate("total2", 1, Total)
c.create_collation("rev", lambda a, b: (a < b) - (a > b))
c.execute("CREATE TABLE t(x INTEGER, s TEXT)")
c.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
c.execute("INSERT INTO t SELECT twice(x), s || s FROM t")
print(c.execute("SELECT twice(x) FROM t").fetchall())
print(c.execute("SELECT total2(x) FROM t").fetchall())
print(c.execute("SELECT s FROM t ORDER BY s COLLATE rev").fetchall())
print(c.execute("SELECT count(*) FROM t").fetchall())
c.close()
