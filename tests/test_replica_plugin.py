"""``--backends=embedded-replica`` and ``--replica-sync`` through pytest (pytester, real stand-in)."""

from __future__ import annotations

import pytest

DOWNSTREAM = """
import json

def test_second_connection(db, traceparity_backend):
    db.execute("CREATE TABLE t(v)")
    other = db.connect()
    db.execute("INSERT INTO t VALUES (1)")
    seen = other.execute("SELECT count(*) FROM t").scalar()
    info = db.info()
    print("REPLICA-INFO", json.dumps({"seen": seen, "mode": info["replica_sync"],
                                      "lag": info["lag_frames"], "served": info["served_by"]}))
"""


@pytest.mark.parametrize(("mode", "seen"), [("auto", 1), ("manual", 1)])
def test_replica_sync_option_reaches_the_backend(pytester: pytest.Pytester, mode: str, seen: int) -> None:
    # Both connections share one replica file, and the writer pulled its own write, so even
    # manual mode sees it; what differs is only what the harness reports and when it syncs.
    pytester.makepyfile(DOWNSTREAM)
    result = pytester.runpytest(
        "-s", "-p", "no:cacheprovider", "--backends=embedded-replica", f"--replica-sync={mode}", "--sqld=stand-in"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f'*REPLICA-INFO {{"seen": {seen}, "mode": "{mode}", "lag": 0, "served": '
            '"libsql * embedded replica of stand-in *"}'
        ]
    )


def test_bad_replica_sync_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(DOWNSTREAM)
    result = pytester.runpytest("-p", "no:cacheprovider", "--backends=embedded-replica", "--replica-sync=sometimes")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*--replica-sync='sometimes' is not one of: auto, after-write, before-read, manual*"])
