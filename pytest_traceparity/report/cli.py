"""``traceparity report A.json [B.json ...] [-o OUT.html|.md|.json] [--markdown] [-v]``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .markdown import render_markdown
from .merge import merge
from .model import ParityReport
from .output import write
from .terminal import render_terminal


def _load(path: Path) -> ParityReport:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"the top level is a JSON {type(data).__name__}, not an object")
    return ParityReport.from_json(data, str(path))


def report_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="traceparity report",
        description="render (and merge) JSON parity reports: traceparity report a.json b.json -o all.html",
    )
    parser.add_argument("reports", type=Path, nargs="+", help="reports written by --traceparity-report=PATH.json")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        action="append",
        default=[],
        help="write the (merged) report here: .html, .md or .json (repeatable)",
    )
    parser.add_argument("--html", type=Path, help="same as -o OUT.html")
    parser.add_argument("--markdown", action="store_true", help="print Markdown (as for a GitHub step summary)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every root cause and stale rule")
    args = parser.parse_args(list(argv))
    outputs = [*args.output, *([args.html] if args.html else [])]
    bad = [o for o in outputs if o.suffix.lower() not in (".html", ".md", ".json")]
    if bad:
        print(f"traceparity report: -o {bad[0]}: use a file name ending in .html, .md or .json", file=sys.stderr)
        return 2
    loaded = []
    for path in args.reports:
        try:
            loaded.append(_load(path))
        except FileNotFoundError:
            print(
                f"traceparity report: {path} does not exist; create it with pytest --traceparity-report=PATH.json",
                file=sys.stderr,
            )
            return 2
        except IsADirectoryError:
            print(
                f"traceparity report: {path} is a directory; give the JSON file written by "
                "pytest --traceparity-report=PATH.json",
                file=sys.stderr,
            )
            return 2
        except (ValueError, TypeError) as exc:
            print(
                f"traceparity report: {path}: cannot read it ({exc}); give the JSON file written by "
                "pytest --traceparity-report=PATH.json",
                file=sys.stderr,
            )
            return 2
    report = merge(loaded)
    for out in outputs:
        write(report, out)
        print(f"wrote {out}")
    print(render_markdown(report) if args.markdown else "\n".join(render_terminal(report, verbose=args.verbose)))
    return 0 if report.ok else 1
