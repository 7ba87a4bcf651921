"""Shared measuring helpers: interleaved repetitions, spread, machine description."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    """One line of the table: a value with its spread over repetitions and its goal."""

    name: str
    value: float
    unit: str
    samples: list[float]
    target: str = ""
    met: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        lo, hi = (min(self.samples), max(self.samples)) if self.samples else (self.value, self.value)
        fmt = "{:.2f}" if self.unit == "x" else "{:,.0f}" if self.value >= 100 else "{:.2f}"
        spread = f"[{fmt.format(lo)}-{fmt.format(hi)}, n={len(self.samples)}]"
        verdict = "n/a" if self.met is None else "met" if self.met else "MISSED"
        goal = f"  goal {self.target}: {verdict}" if self.target else ""
        value = f"{fmt.format(self.value)}x" if self.unit == "x" else f"{fmt.format(self.value)} {self.unit}"
        return f"{self.name} {value} {spread}{goal}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": round(self.value, 4),
            "unit": self.unit,
            "samples": [round(s, 4) for s in self.samples],
            "target": self.target,
            "met": self.met,
            **({"detail": self.detail} if self.detail else {}),
        }


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(sides: dict[str, Callable[[], object]], repeat: int, *, warmup: bool = False) -> dict[str, list[float]]:
    """Run each side once per round, alternating the order every round; seconds per side. ``warmup``: each
    side runs once, untimed, first (imports, caches, the allocator's arenas), so every round is a steady one."""
    out: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    if warmup:
        for name in names:
            sides[name]()
    for round_no in range(repeat):
        order = names if round_no % 2 == 0 else names[::-1]
        for name in order:
            out[name].append(timed(sides[name]))
    return out


def ratio_figure(
    name: str, slow: list[float], fast: list[float], target: float | None = None, unit_note: str = ""
) -> Figure:
    """Per-round ratios slow/fast (each round measured side by side); median with spread."""
    ratios = [s / f for s, f in zip(slow, fast, strict=True)]
    value = statistics.median(ratios)
    fig = Figure(name, value, "x", ratios)
    if target is not None:
        fig.target, fig.met = f"<= {target:.1f}x{unit_note}", value <= target
    fig.detail = {
        "slow_s_median": round(statistics.median(slow), 4),
        "fast_s_median": round(statistics.median(fast), 4),
    }
    return fig


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpus": os.cpu_count(),
        "processor": _cpu_model(),
        "load_avg": [round(x, 2) for x in load],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"
