"""Fork: every beat reaches every output exactly once, in order, under independent random backpressure."""

from pathlib import Path

import cocotb
import pytest
from cocotb.triggers import ClockCycles

from rtlgen.cores.fork import Fork
from rtlgen.cores.stream import act_layout
from rtlgen.verify.runner import run_cocotb, sim_config
from rtlgen.emit.verilog import write_verilog


@cocotb.test()
async def fork_under_stalls(dut):
    from streams import StreamSink, StreamSource, hold_reset, release_reset

    cfg = sim_config()
    hold_reset(dut)
    src = StreamSource(dut, "i", dut.clk, cfg["pause_in"], seed=11)
    sinks = [StreamSink(dut, f"o{k}", dut.clk, cfg["pause_out"][k], seed=20 + k) for k in range(cfg["n"])]
    await release_reset(dut, 3)
    words = [(k * 37 + (k >> 3)) % (1 << 17) for k in range(cfg["beats"])]
    src.start(words)
    for s in sinks:
        got = await s.wait_for(len(words), 200_000)
        assert got == words
    await ClockCycles(dut.clk, 20)
    for s in sinks:
        assert len(s.words) == len(words), "duplicated beats"


@pytest.mark.parametrize("n,pause_out", [(2, [0.0, 0.5]), (3, [0.3, 0.7, 0.1])])
def test_fork(tmp_path, n, pause_out):
    v = write_verilog(Fork(act_layout(2), n), "stream_fork", tmp_path / "stream_fork.v")  # "fork" is a Verilog keyword
    run_cocotb([v], "stream_fork", "test_fork", Path(__file__).parent, tmp_path / "build",
               config={"n": n, "pause_in": 0.3, "pause_out": pause_out, "beats": 600})
