"""``traceparity report REPORT.json [--html OUT] [--markdown]``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .model import ParityReport
from .render import render_markdown, render_terminal


def report_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="traceparity report", description="render a JSON parity report")
    parser.add_argument("report", type=Path, help="a report written by --traceparity-report=PATH.json")
    parser.add_argument("--html", type=Path, help="write an HTML rendering here")
    parser.add_argument("--markdown", action="store_true", help="print Markdown (as for a GitHub step summary)")
    args = parser.parse_args(list(argv))
    try:
        data = json.loads(args.report.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"the top level is a JSON {type(data).__name__}, not an object")
        report = ParityReport.from_json(data, str(args.report))
    except FileNotFoundError:
        print(f"traceparity report: {args.report} does not exist; create it with "
              "pytest --traceparity-report=PATH.json", file=sys.stderr)
        return 2
    except IsADirectoryError:
        print(f"traceparity report: {args.report} is a directory; give the JSON file written by "
              "pytest --traceparity-report=PATH.json", file=sys.stderr)
        return 2
    except (ValueError, TypeError) as exc:
        print(f"traceparity report: {args.report}: cannot read it ({exc}); give the JSON file written by "
              "pytest --traceparity-report=PATH.json", file=sys.stderr)
        return 2
    if args.html:
        report.write(args.html)
        print(f"wrote {args.html}")
    print(render_markdown(report) if args.markdown else "\n".join(render_terminal(report)))
    return 0 if report.ok else 1
