"""Bench helpers for Amaranth stream ports (moved into the package as :mod:`rtlgen.verify.tb`, used by ``rtlgen sim`` too)."""

from rtlgen.verify.beats import pack, unpack  # noqa: F401
from rtlgen.verify.tb import StreamSink, StreamSource, pause_generator  # noqa: F401
