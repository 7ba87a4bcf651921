"""Record what a program sends to its databases, and replay it on every backend."""

from __future__ import annotations

from .format import Event, TraceFormatError, TraceHeader, TraceReader, TraceWriter

__all__ = ["Event", "TraceFormatError", "TraceHeader", "TraceReader", "TraceWriter"]
