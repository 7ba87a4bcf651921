"""A report as a file: its JSON (the model plus the judged root causes and verdicts), HTML or Markdown.

Apart from :mod:`.model` because it needs the judgement (:mod:`.causes`) and the renderings,
which themselves read the model: the model stays at the bottom of the package.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .causes import analyse
from .html import render_html
from .markdown import render_markdown
from .model import FORMAT, VERSION, ParityReport


def to_json(report: ParityReport) -> dict[str, Any]:
    """The report as ``schema.json`` describes it; derived sections are computed here."""
    analysis = analyse(report)
    return {
        "format": FORMAT,
        "version": VERSION,
        "reference": report.reference,
        "backends": report.backends,
        "environment": report.environment,
        "runs": [asdict(r) for r in report.runs],
        "summary": {b: dict(c) for b, c in report.counts().items()},
        "served_by": report.served_by(),
        "timings": report.timings(),
        "max_lag_frames": report.max_lag(),
        "overall": analysis.overall_json(),
        "verdict": [v.to_json() for v in analysis.verdicts],
        "root_causes": [c.to_json() for c in analysis.causes],
        "rules": [asdict(r) for r in report.rules.values()],
        "items": [asdict(i) for i in report.items],
    }


def write(report: ParityReport, path: Path) -> None:
    """Write ``.json``, ``.html`` or ``.md`` (by suffix) atomically."""
    suffix = path.suffix.lower()
    if suffix == ".html":
        text = render_html(report)
    elif suffix == ".json":
        text = json.dumps(to_json(report), indent=1, sort_keys=False) + "\n"
    elif suffix == ".md":
        text = render_markdown(report)
    else:
        raise ValueError(f"{path}: use a file name ending in .json, .html or .md")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
