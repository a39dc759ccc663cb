"""Figures shown to users, from one place.

FPS is computed once, where a result is stored (report.json's ``fps``, the simulation result's ``fps_at_clock``, the
timing estimate's ``fps_at_clock``/``fps_at_fmax``): :func:`fps`, the clock divided by the cycles per frame, rounded
to 0.1 FPS. Everything that prints a stored figure prints it as stored with :func:`fmt_fps` (thousands separators,
never re-rounded: ``40683.5`` is shown as ``40,683.5``, not as 40,684 by a second rounding of an already rounded
value, nor as 40,683 from the unrounded one).
"""

from __future__ import annotations


def fps(clock_mhz: float, cycles_per_frame: float) -> float:
    """Frames per second at ``clock_mhz`` for ``cycles_per_frame``: the one rounding rule (0.1 FPS)."""
    return round(clock_mhz * 1e6 / cycles_per_frame, 1)


def fmt_fps(v) -> str:
    """A stored FPS figure as text: as stored, with thousands separators (``None``: ``-``)."""
    if v is None:
        return "-"
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return f"{v:,}"
