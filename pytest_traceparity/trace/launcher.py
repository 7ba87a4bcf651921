"""``traceparity record -o FILE -- CMD ...``: record a program with no change to its code.

The child runs with a generated ``sitecustomize.py`` first on ``PYTHONPATH``; Python
imports it at start-up, it installs the recorder (then chains to any other
``sitecustomize``), and every Python process in the tree (``pytest -n`` workers,
subprocesses) writes its own part file. When the child exits, the parts are merged
into one trace in the order the calls happened (a monotonic stamp per event, stripped on
merge), with connections and databases renumbered. No clock value reaches the trace.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .format import TraceHeader, TraceWriter
from .recorder import ENV_BASE, ENV_DIR, ENV_REDACT, ENV_START, RedactionRule, unique_label

ENV_PKG = "TRACEPARITY_RECORD_PKG"

_SITECUSTOMIZE = '''\
"""Installed by `traceparity record`: start the trace recorder in this process, then chain."""
import os as _os
import sys as _sys

_here = _os.path.dirname(_os.path.abspath(__file__))
try:
    try:
        from pytest_traceparity.trace.recorder import install_from_env as _install
    except ImportError:
        # Load our package by location, never by adding its directory to sys.path: that
        # directory also holds our distribution metadata, and pytest in the recorded program
        # would then load our plugin (and its requirements) into a suite that never asked for it.
        import importlib.util as _ilu
        _pkg = _os.path.join(_os.environ.get("TRACEPARITY_RECORD_PKG", ""), "pytest_traceparity")
        _spec = _ilu.spec_from_file_location(
            "pytest_traceparity", _os.path.join(_pkg, "__init__.py"), submodule_search_locations=[_pkg])
        _mod = _ilu.module_from_spec(_spec)
        _sys.modules["pytest_traceparity"] = _mod
        _spec.loader.exec_module(_mod)
        from pytest_traceparity.trace.recorder import install_from_env as _install
    _install()
except Exception as _exc:  # never break the program being recorded
    _sys.stderr.write("traceparity record: recorder not installed in %s: %s\\n" % (_sys.executable, _exc))

def _chain():
    import importlib.util
    for entry in list(_sys.path):
        if not entry or _os.path.abspath(entry) == _here:
            continue
        candidate = _os.path.join(entry, "sitecustomize.py")
        if _os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_traceparity_chained_sitecustomize", candidate)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return

_chain()
'''


@dataclass
class MergeResult:
    events: int
    parts: int
    incomplete: list[str]


def child_env(parts_dir: Path, base_dir: Path, redact: Sequence[RedactionRule | str] = ()) -> dict[str, str]:
    """The environment that makes a Python child (and its children) record into ``parts_dir``."""
    boot = parts_dir / "boot"
    boot.mkdir(parents=True, exist_ok=True)
    (boot / "sitecustomize.py").write_text(_SITECUSTOMIZE, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(boot), env.get("PYTHONPATH", "")) if p)
    env[ENV_DIR] = str(parts_dir)
    env[ENV_BASE] = str(base_dir)
    env[ENV_START] = repr(time.time())
    env[ENV_PKG] = str(Path(__file__).resolve().parents[2])
    specs = [r if isinstance(r, str) else r.spec() for r in redact]
    if specs:
        env[ENV_REDACT] = "\x1f".join(specs)
    return env


class _Part:
    """One process's part file, read whole (lenient: a killed process loses only its last line)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.complete = False
        self.events: list[dict[str, Any]] = []
        with path.open("r", encoding="utf-8") as fh:
            fh.readline()
            for text in fh:
                if not text.endswith("\n"):
                    break
                data = json.loads(text)
                if "end" in data:
                    self.complete = True
                    break
                self.events.append(data)
        self.start = int(self.events[0].get("t", 0)) if self.events else 0
        self.worker = next((str(e["w"]) for e in self.events if e.get("w")), "")
        digest = hashlib.sha256()
        for data in self.events:
            digest.update(
                json.dumps({k: v for k, v in data.items() if k not in ("t", "w", "key")}, sort_keys=True).encode(
                    "utf-8"
                )
            )
        self.digest = digest.hexdigest()


def _ordered(parts: list[_Part]) -> list[_Part]:
    """The first process to record (not a pytest-xdist worker) first, then the others by content.

    Why not start time for all: processes started together (xdist workers, a pool of
    children) start in a different order on every run, and xdist hands the same test
    files to different workers from run to run; ordering them by what they did makes the
    same program give the same trace.
    """
    plain = [p for p in parts if not p.worker]
    first = [min(plain, key=lambda p: (p.start, p.path.name))] if plain else []
    rest = sorted((p for p in parts if p not in first), key=lambda p: (p.digest, p.path.name))
    return [*first, *rest]


def _canonical(parts: list[_Part]) -> Iterator[dict[str, Any]]:
    """Events in canonical order: process order (:func:`_ordered`), then each process's own sequence.

    A database opened by several processes keeps the order in which its events really
    happened: an event on such a database waits until it is the earliest pending one.
    Events on a process's own databases never wait, so timing between processes that
    share nothing never reaches the trace.
    """
    keys: dict[tuple[int, str], str] = {}
    owners: dict[str, set[int]] = {}
    for index, part in enumerate(parts):
        for data in part.events:
            if data["op"] == "open" and data.get("key"):
                keys[(index, data["db"])] = data["key"]
                owners.setdefault(data["key"], set()).add(index)
    shared = {key for key, who in owners.items() if len(who) > 1}
    conn_db: dict[tuple[int, int], str] = {}
    for index, part in enumerate(parts):
        for data in part.events:
            if data["op"] == "open":
                conn_db[(index, data["conn"])] = data["db"]

    def is_shared(index: int, data: dict[str, Any]) -> bool:
        db = data.get("db") if data["op"] == "open" else conn_db.get((index, data["conn"]))
        return keys.get((index, db or "")) in shared

    heads = [0] * len(parts)
    remaining = sum(len(p.events) for p in parts)
    while remaining:
        waiting: list[tuple[int, int]] = []
        for index, part in enumerate(parts):
            if heads[index] >= len(part.events):
                continue
            data = part.events[heads[index]]
            if not is_shared(index, data):
                break
            waiting.append((int(data.get("t", 0)), index))
        else:
            index = min(waiting)[1]
        data = parts[index].events[heads[index]]
        heads[index] += 1
        remaining -= 1
        yield {**data, "_part": index}


def merge_parts(parts_dir: Path, out: Path, header: TraceHeader) -> MergeResult:
    """Merge per-process parts into one trace in canonical order (see :func:`_canonical`).

    Connection and database ids are renumbered by first appearance in that order (one
    file path is one database across processes); the merge keys and stamps are dropped.
    """
    parts = _ordered([_Part(p) for p in parts_dir.glob("part-*.jsonl")])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    writer = TraceWriter(tmp, header)
    conns: dict[tuple[int, int], int] = {}
    dbs: dict[tuple[int, str], str] = {}
    by_key: dict[str, str] = {}
    labels: dict[str, str] = {}
    used: set[str] = set()
    try:
        for data in _canonical(parts):
            index = data.pop("_part")
            data.pop("t", None)
            data.pop("w", None)
            if data["op"] == "open":
                conns[(index, data["conn"])] = len(conns) + 1
                key = data.pop("key", None)
                local = (index, data["db"])
                if local not in dbs:
                    if key is not None and key in by_key:
                        dbs[local] = by_key[key]
                        data.pop("seed", None)  # captured once, by the first process to open it
                    else:
                        dbs[local] = f"db{len(labels) + 1}"
                        labels[dbs[local]] = unique_label(data["target"], used) if key is not None else data["target"]
                        if key is not None:
                            by_key[key] = dbs[local]
                data["db"] = dbs[local]
                data["target"] = labels[dbs[local]]
            data["conn"] = conns[(index, data["conn"])]
            writer.write_raw(data)
        writer.close()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return MergeResult(events=writer.count, parts=len(parts), incomplete=[p.path.name for p in parts if not p.complete])


def record(
    command: Sequence[str],
    out: Path,
    *,
    redact: Sequence[RedactionRule | str] = (),
    cwd: Path | None = None,
    source: dict[str, Any] | None = None,
) -> tuple[int, MergeResult]:
    """Run ``command`` recording every database call its Python processes make; returns (exit code, merge)."""
    if not command:
        raise UsageError(
            "nothing to record: give the command after '--', e.g. traceparity record -o trace.jsonl -- python app.py"
        )
    workdir = Path(cwd or os.getcwd())
    parts_dir = Path(tempfile.mkdtemp(prefix="traceparity-record-"))
    try:
        env = child_env(parts_dir, workdir, redact)
        argv = list(command)
        if argv[0] in ("python", "python3") and shutil.which(argv[0]) is None:
            argv[0] = sys.executable
        try:
            code = subprocess.call(argv, cwd=workdir, env=env)
        except FileNotFoundError:
            raise UsageError(f"cannot run {command[0]!r}: no such program; check the command after '--'") from None
        except PermissionError:
            raise UsageError(f"cannot run {command[0]!r}: permission denied") from None
        label = source or {"command": [Path(command[0]).name, *command[1:]]}
        result = merge_parts(parts_dir, out, TraceHeader(source=label))
        return code, result
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)
