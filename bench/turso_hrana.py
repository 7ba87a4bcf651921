"""Run Turso's ``hrana-test-server`` (``server_v3.py``, JSON) on a chosen loopback port.

Turso's server is not published on PyPI or npm, and its code is never part of this
repository. Given a local checkout (``git clone https://github.com/tursodatabase/hrana-test-server``)
and a Python that has its requirements (``aiohttp``, ``protobuf``), the benchmark runs it
side by side with the stand-in::

    python -m bench --only standin --hrana-test-server ~/src/hrana-test-server \
        --hrana-python ~/venvs/hrana/bin/python

The server listens on ``localhost:8080`` hard-coded; this wrapper (run as
``PYTHON turso_hrana.py CHECKOUT PORT``, with that interpreter) only redirects the listener to
127.0.0.1:PORT and runs the unmodified ``server_v3.py`` with ``ENCODING=json`` (what the
libsql Python client speaks). ``PERSISTENT_DB`` names the database file, so both servers
keep their databases on the same file system.
"""

from __future__ import annotations

import os
import runpy
import sys


def main() -> None:
    checkout, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("ENCODING", "json")
    sys.path.insert(0, checkout)
    import aiohttp.web  # type: ignore[import-not-found]

    original = aiohttp.web.TCPSite

    def site(runner: object, host: object = None, _port: object = None, **kw: object) -> object:
        return original(runner, "127.0.0.1", port, **kw)

    aiohttp.web.TCPSite = site
    sys.argv = [os.path.join(checkout, "server_v3.py")]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
