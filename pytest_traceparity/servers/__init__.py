"""Servers the harness talks to: the sqld launcher and the stand-in."""
