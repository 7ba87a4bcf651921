"""Case values: how a TOML case file spells a typed value, and how a report shows one back."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..values import decode_value, display

MAX_REPEAT = 64 * 1024 * 1024


def parse_value(raw: Any) -> Any:
    """A case value: a TOML scalar as is, or a typed one-key table (see the package docs)."""
    if isinstance(raw, (bool, int, float, str)):
        return raw
    if isinstance(raw, dict):
        if set(raw) == {"repeat", "times"}:
            unit = parse_value(raw["repeat"])
            times = raw["times"]
            if not isinstance(unit, (str, bytes)) or not isinstance(times, int) or isinstance(times, bool):
                raise ValueError(f"repeat needs a text/blob value and an integer 'times', got {raw!r}")
            if times < 0 or len(unit) * times > MAX_REPEAT:
                raise ValueError(f"repeat size out of range (0..{MAX_REPEAT} bytes): {raw!r}")
            return unit * times
        if set(raw) == {"hex"}:
            if not isinstance(raw["hex"], str):
                raise ValueError(f"'hex' must be a hex string, got {raw['hex']!r}")
            return bytes.fromhex(raw["hex"])
        return decode_value(raw)
    raise ValueError(f"unsupported value {raw!r} (use a scalar or a typed table such as {{null = true}})")


def parse_params(raw: Any, *, many: bool) -> Any:
    """Positional (a list) or named (a table) parameters; for executemany a list of those."""
    if many:
        if not isinstance(raw, list):
            raise ValueError("executemany params must be a list of parameter lists/tables")
        return [parse_params(p, many=False) for p in raw]
    if isinstance(raw, list):
        return tuple(parse_value(v) for v in raw)
    if isinstance(raw, dict):
        return {str(k): parse_value(v) for k, v in raw.items()}
    raise ValueError(f"params must be a list (positional) or a table (named), got {raw!r}")


def show_rows(rows: Sequence[Sequence[Any]], limit: int = 5) -> str:
    shown = ["(" + ", ".join(display(v) for v in row) + ")" for row in rows[:limit]]
    more = f" ... +{len(rows) - limit} more" if len(rows) > limit else ""
    return "[" + ", ".join(shown) + more + "]"


def show_value(value: Any) -> str:
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return display(value)


def show_params(params: Any, many: bool) -> str:
    if many:
        items = list(params)
        shown = [show_params(p, False) for p in items[:3]]
        return "[" + ", ".join(shown) + (f", ... {len(items)} sets" if len(items) > 3 else "") + "]"
    if isinstance(params, Mapping):
        return "{" + ", ".join(f"{k}: {show_value(v)}" for k, v in params.items()) + "}"
    return "[" + ", ".join(show_value(v) for v in params) + "]"
