"""Bench helpers for Amaranth stream ports (moved into the package as :mod:`rtlgen.verify.tb`, used by ``rtlgen sim`` too)."""

from rtlgen.verify.beats import pack, unpack  # noqa: F401
from rtlgen.verify.tb import StreamSink, StreamSource, pause_generator  # noqa: F401


def cycle_model_errors(dut, name: str, out_cycles: list, beats_per_frame: int, model: float, tol: float = 1,
                       latency=None, latency_model=None) -> list[str]:
    """The steady-state cycles per frame of a core measured from its sink's beat cycles (mean spacing of the last
    beats of frames 2..4 of four back-to-back frames) and, where given, its latency, against its own models: logged,
    and returned as error strings where they differ by more than ``tol`` cycles (latency: 1)."""
    ends = [out_cycles[(k + 1) * beats_per_frame - 1] for k in range(4)]
    measured = (ends[3] - ends[1]) / 2
    dut._log.info(f"{name}: cycles/frame measured {measured} model {model}; latency measured "
                  f"{latency if latency is not None else '-'} model {latency_model if latency is not None else '-'}")
    errors = []
    if abs(measured - model) > tol:
        errors.append(f"{name}: measured {measured} cycles/frame, model {model}")
    if latency is not None and abs(latency - latency_model) > 1:
        errors.append(f"{name}: latency measured {latency} cycles, model {latency_model}")
    return errors


def hold_reset(dut, period_ns: float = 4):
    """Start the clock on ``dut.clk`` and hold ``dut.rst`` high (set up the stream models, then :func:`release_reset`)."""
    import cocotb
    from cocotb.clock import Clock

    cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())
    dut.rst.value = 1


async def release_reset(dut, cycles: int):
    """``cycles`` clock cycles of reset, then ``dut.rst`` low."""
    from cocotb.triggers import ClockCycles

    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0
