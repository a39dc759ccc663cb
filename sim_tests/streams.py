"""Bench helpers for Amaranth stream ports (moved into the package as :mod:`rtlgen.tb`, used by ``rtlgen sim`` too)."""

from rtlgen.tb import StreamSink, StreamSource, pack, pause_generator, unpack  # noqa: F401
