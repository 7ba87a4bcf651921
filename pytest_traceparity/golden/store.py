"""Golden files: one per trace, shared by all backends (the syrupy extension is in :mod:`.extension`).

A golden is JSON Lines like the trace it belongs to, so it streams and so its diff in a
pull request shows exactly which step's result changed::

    {"format":"traceparity-golden","version":1,"trace":"tracing","trace_sha256":"...","reference":"..."}
    {"seq":1,"conn":1,"op":"open","outcome":{"result":{...}}}
    {"seq":2,"conn":1,"op":"execute","sql":"...","outcome":{"result":{...}}}
    {"final":{"db1":{"schema_sha256":"...","schema":{...},"content":{...}}}}
    {"end":true,"steps":2}

Writes are atomic and idempotent: the new golden is streamed to a temporary file next to
the target, then ``os.replace``-d over it only when the bytes differ. An interrupted
update leaves the old or the new file, never half of one, and concurrent pytest-xdist
workers writing the same content cannot corrupt it.
"""

from __future__ import annotations

import contextlib
import filecmp
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..compare import Outcome
from ..errors import GoldenError as GoldenError
from ..trace.format import Event, dumps, loads_line
from ..values import encode_params

GOLDEN_FORMAT = "traceparity-golden"
GOLDEN_VERSION = 1
GOLDEN_SUFFIX = ".golden.jsonl"


def update_command(trace: str | os.PathLike[str]) -> str:
    return f"pytest {trace} --update-golden"


def golden_path_for(trace: str | os.PathLike[str]) -> Path:
    """``.../traces/x.jsonl`` -> ``.../golden/x.golden.jsonl`` (the sibling ``golden`` dir); a trace in
    any other directory ``d/x.jsonl`` -> ``d/golden/x.golden.jsonl``, never outside the trace's tree."""
    trace = Path(trace)
    name = f"{trace_name(trace)}{GOLDEN_SUFFIX}"
    if trace.parent.name == "traces":
        return trace.parent.parent / "golden" / name
    return trace.parent / "golden" / name


def trace_name(trace: str | os.PathLike[str]) -> str:
    name = Path(trace).name
    return name[: -len(".jsonl")] if name.endswith(".jsonl") else Path(name).stem


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def params_digest(event: Event) -> str | None:
    """Short digest of a step's parameters: the golden notices a trace edited after it was made."""
    if event.op == "execute":
        payload: Any = encode_params(event.params)
        if not payload:
            return None
    elif event.op == "executemany":
        payload = [encode_params(p) for p in event.many or []]
    else:
        return None
    return hashlib.sha256(dumps({"p": payload}).encode("utf-8")).hexdigest()[:16]


@contextlib.contextmanager
def staging(target: Path) -> Iterator[IO[str]]:
    """Write to a temporary file beside ``target``; on success replace it if it changed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        commit(Path(tmp), target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def commit(tmp: Path, target: Path) -> bool:
    """Replace ``target`` by ``tmp`` atomically unless identical; True when it changed."""
    if target.exists() and filecmp.cmp(tmp, target, shallow=False):
        return False
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return True


@dataclass
class GoldenStep:
    seq: int
    conn: int
    op: str
    sql: str | None
    outcome: Outcome
    line: int
    params_sha256: str | None = None


@dataclass
class GoldenHeader:
    trace: str
    trace_sha256: str | None
    reference: str | None
    # db id -> seq of its last event in the trace these bytes hash to (spares a replay the pass that finds it)
    last_use: dict[str, int] | None = None


class GoldenWriter:
    """Streams a golden; use :func:`write_golden` for the atomic, write-if-changed path."""

    def __init__(self, fh: IO[str], header: GoldenHeader) -> None:
        self.fh = fh
        self.steps = 0
        fh.write(
            dumps(
                {
                    "format": GOLDEN_FORMAT,
                    "version": GOLDEN_VERSION,
                    "trace": header.trace,
                    "trace_sha256": header.trace_sha256,
                    "reference": header.reference,
                    **({"last_use": header.last_use} if header.last_use is not None else {}),
                }
            )
            + "\n"
        )

    def step(self, event: Event, outcome: Outcome) -> None:
        self.steps += 1
        data: dict[str, Any] = {"seq": event.seq, "conn": event.conn, "op": event.op}
        if event.sql is not None:
            data["sql"] = event.sql
        digest = params_digest(event)
        if digest is not None:
            data["params_sha256"] = digest
        data["outcome"] = outcome.to_json()
        self.fh.write(dumps(data) + "\n")

    def final(self, state: dict[str, Any]) -> None:
        self.fh.write(json.dumps({"final": state}, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n")
        self.fh.write(dumps({"end": True, "steps": self.steps}) + "\n")


class GoldenReader:
    """Streams a golden's steps; every problem is a :class:`GoldenError` naming file:line."""

    def __init__(self, path: Path, trace: str | os.PathLike[str], *, check_trace: bool = True) -> None:
        self.path = path
        self.trace = str(trace)
        self.final: dict[str, Any] | None = None
        if not path.exists():
            raise GoldenError(
                f"{path}: no golden for trace {self.trace}; create it from the reference backend with: "
                f"{update_command(self.trace)}"
            )
        self._fh: IO[str] = path.open("r", encoding="utf-8", newline="")
        self._line = 0
        first = self._next()
        if first is None:
            raise self._error(1, "empty file, expected a golden header")
        if first.get("format") != GOLDEN_FORMAT:
            raise self._error(1, f"format is {first.get('format')!r}, expected {GOLDEN_FORMAT!r}")
        if first.get("version") != GOLDEN_VERSION:
            raise self._error(
                1, f"unknown golden version {first.get('version')!r} (this version reads {GOLDEN_VERSION})"
            )
        last_use = first.get("last_use")
        if not (type(last_use) is dict and all(type(seq) is int for seq in last_use.values())):
            last_use = None  # only ever a shortcut: without it the replay finds the same by reading the trace
        self.header = GoldenHeader(
            trace=str(first.get("trace")),
            trace_sha256=first.get("trace_sha256"),
            reference=first.get("reference"),
            last_use=last_use,
        )
        expected = trace_name(self.trace)
        if check_trace and self.header.trace != expected:
            raise self._error(1, f"this golden belongs to trace {self.header.trace!r}, not {expected!r}")

    def _error(self, line: int, message: str) -> GoldenError:
        return GoldenError(f"{self.path}:{line}: {message}; regenerate it with: {update_command(self.trace)}")

    def _next(self) -> dict[str, Any] | None:
        text = self._fh.readline()
        if not text:
            return None
        self._line += 1
        return self.decode(text)

    def decode(self, text: str, line: int | None = None) -> dict[str, Any]:
        """The JSON object of a line :meth:`next_line` returned; a malformed one raises, naming ``line`` (default:
        the line read last; a caller that reads ahead passes the line's own number)."""
        line = self._line if line is None else line
        if not text.endswith("\n"):
            raise self._error(line, "the last line is incomplete (the golden is truncated)")
        try:
            data = loads_line(text)
        except json.JSONDecodeError as exc:
            raise self._error(line, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(data, dict):
            raise self._error(line, "expected a JSON object")
        return data

    def next_step(self) -> GoldenStep | None:
        """The next step, or ``None`` when the steps are over (``final`` is then loaded)."""
        data = self.next_raw()
        return None if data is None else self.step_from(data)

    def next_raw(self) -> dict[str, Any] | None:
        """The next step as its JSON object, not yet checked or decoded (``None``: the steps are over).

        Why: most replayed steps equal their golden, and comparing the raw JSON with the outcome
        (:mod:`.fastcheck`) is cheaper than decoding it; :meth:`step_from` decodes the rest.
        """
        text = self.next_line()
        return None if text is None else self.decode(text)

    def next_line(self) -> str | None:
        """The next step's line as text, not even parsed (``None``: the steps are over, ``final`` is loaded).

        Why: a step equal to its golden is recognised on the text itself (:func:`.fastcheck.rowless_matches`);
        :meth:`decode` parses any other line, naming its line number when it is malformed.
        """
        text = self._fh.readline()
        if not text:
            raise self._error(self._line + 1, "ends before its final state (truncated)")
        self._line += 1
        if text.startswith('{"seq":'):
            return text
        return None if self._at_final(self.decode(text)) else text

    def _at_final(self, data: dict[str, Any]) -> bool:
        """True (and ``final`` loaded) when ``data`` is the final-state line."""
        if "final" not in data:
            return False
        if not isinstance(data["final"], dict):
            raise self._error(self._line, "'final' must be an object")
        self.final = data["final"]
        end = self._next()
        if end is None or end.get("end") is not True:
            raise self._error(self._line + 1, "missing end line after the final state (truncated)")
        return True

    @property
    def line(self) -> int:
        """Line number of the step :meth:`next_raw` returned last."""
        return self._line

    def step_from(self, data: dict[str, Any], line: int | None = None) -> GoldenStep:
        """Decode a step's JSON object (a malformed one raises, naming ``line``: default, the line read last)."""
        line = self._line if line is None else line
        try:
            outcome = Outcome.from_json(data["outcome"])
            step = GoldenStep(
                seq=int(data["seq"]),
                conn=int(data["conn"]),
                op=str(data["op"]),
                sql=data.get("sql"),
                outcome=outcome,
                line=line,
                params_sha256=data.get("params_sha256"),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise self._error(line, f"malformed step ({type(exc).__name__}: {exc})") from None
        return step

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> GoldenReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
