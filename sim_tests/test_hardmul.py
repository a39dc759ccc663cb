"""ECP5 hard products (cores/hardmul.py): the MULT18X18D simulation model, and cores built for ``--family ecp5``.

* ``test_mult18x18d_model_random`` -- the model (yosys ships none for ECP5) on random operands of every signedness,
  with a random clock enable, for each register selection rtlgen can use (none, inputs, output, inputs + pipeline +
  output), against Python integers: the output after an edge is the product of the operands at the k-th most recent
  enabled edge (k = registers in series), zero until k enabled edges have passed since reset.
* ``test_ecp5_conv_cores_bit_exact`` -- conv cores elaborated for ECP5 (every hard product a registered MULT18X18D
  instance, the requant's wide products split into 18 x 18 pieces) through ``sim_tests/test_conv.py``'s scenarios:
  bit-exact against the golden model under random valid/ready pauses, cycles per frame as modelled, reset mid-frame.
* ``test_ecp5_instances_carry_their_registers`` -- yosys ``synth_ecp5`` keeps the instances with their input and
  output registers selected and infers no other multiplier.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import cocotb
import pytest

from rtlgen.cores.hardmul import mult18x18d_model, mult_family
from rtlgen.emit.verilog import write_verilog
from rtlgen.verify.runner import run_cocotb

HERE = Path(__file__).parent

#: instance name -> registers (in series) selected
VARIANTS = {"none": {}, "inreg": {"INPUTA": 1, "INPUTB": 1}, "outreg": {"OUTPUT": 1},
            "allreg": {"INPUTA": 1, "INPUTB": 1, "PIPELINE": 1, "OUTPUT": 1}}


def _latency(regs: dict) -> int:
    return ("INPUTA" in regs) + ("PIPELINE" in regs) + ("OUTPUT" in regs)


def model_tb() -> str:
    """A top with one MULT18X18D per :data:`VARIANTS` entry on shared operands, output ``p_<variant>``."""
    body = []
    for n, regs in VARIANTS.items():
        params = ", ".join(f'.REG_{r}_CLK("CLK0")' for r in regs)
        conn = ", ".join([f".A{k}(a[{k}])" for k in range(18)] + [f".B{k}(b[{k}])" for k in range(18)]
                         + [f".P{k}(p_{n}[{k}])" for k in range(36)])
        body.append(f"  MULT18X18D {'#(' + params + ') ' if params else ''}m_{n} ({conn}, .SIGNEDA(sa), .SIGNEDB(sb), "
                    ".SOURCEA(1'b0), .SOURCEB(1'b0), .CLK0(clk), .CE0(ce), .RST0(rst));")
    outs = ", ".join(f"output [35:0] p_{n}" for n in VARIANTS)
    return (f"module mult_tb(input clk, input rst, input ce, input sa, input sb, input [17:0] a, input [17:0] b, "
            f"{outs});\n" + "\n".join(body) + "\nendmodule\n")


def _value(v: int, signed: bool) -> int:
    return v - (1 << 18) if signed and v >> 17 else v


def _product(a, b, sa, sb) -> int:
    return (_value(a, sa) * _value(b, sb)) & ((1 << 36) - 1)


@cocotb.test()
async def mult18x18d_model_random(dut):
    from cocotb.clock import Clock
    from cocotb.triggers import ReadOnly, RisingEdge

    cocotb.start_soon(Clock(dut.clk, 4, unit="ns").start())
    rng = random.Random(5)
    edges = []  # operands (a, b, sa, sb) captured at each enabled edge since reset
    checked = 0
    dut.rst.value, dut.ce.value, dut.a.value, dut.b.value, dut.sa.value, dut.sb.value = 1, 1, 0, 0, 0, 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    for cycle in range(3000):
        a, b = rng.getrandbits(18), rng.getrandbits(18)
        if rng.random() < 0.1:
            a = rng.choice([0, 1, (1 << 17) - 1, 1 << 17, (1 << 18) - 1])
        sa, sb, ce = rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.8
        rst = cycle == 1500  # a reset in the middle: every register back to zero
        dut.a.value, dut.b.value, dut.sa.value, dut.sb.value = a, b, int(sa), int(sb)
        dut.ce.value, dut.rst.value = int(ce), int(rst)
        await ReadOnly()
        for n, regs in VARIANTS.items():
            k = _latency(regs)
            src = (a, b, sa, sb) if k == 0 else (edges[-k] if len(edges) >= k else None)
            want = 0 if src is None else _product(*src)
            got = int(getattr(dut, f"p_{n}").value)
            assert got == want, f"{n} cycle {cycle}: {got:#x} != {want:#x} (operands {src})"
            checked += 1
        await RisingEdge(dut.clk)
        if rst:
            edges = []
        elif ce:
            edges.append((a, b, sa, sb))
    assert checked == 3000 * len(VARIANTS)


def test_mult18x18d_model_random(tmp_path):
    model, tb = tmp_path / "mult18x18d.v", tmp_path / "mult_tb.v"
    model.write_text(mult18x18d_model())
    tb.write_text(model_tb())
    run_cocotb([model, tb], "mult_tb", "test_hardmul", HERE, tmp_path / "build")


def _ecp5_cases():
    from test_conv import CASES, _k

    return {
        # unpacked hard products, multiplier requant with a merged multiplier residual (int8 skip), int8 in
        "e5mult": dict(H=5, W=4, C=5, O=7, K=3, stride=1, in_signed=True, relu=True, rq="mult", residual="mult",
                       skip_signed=True, knobs=_k(2, 3, 2, packing=False)),
        # packed pairs (35-bit operands: wider than MULT18X18D, so inferred), multiplier requant
        "e5packed": CASES["k1s2"],
    }


def test_ecp5_conv_cores_bit_exact(tmp_path):
    from test_conv import Bundle, build_conv

    cases = _ecp5_cases()
    with mult_family("ecp5"):
        v = write_verilog(Bundle({n: build_conv(s, 1) for n, s in cases.items()}), "conv_bundle",
                          tmp_path / "conv_bundle.v")
    assert len(re.findall(r"^\s*MULT18X18D\b", v.read_text(), re.M)) >= 2 * 3 * 2
    model = tmp_path / "mult18x18d.v"
    model.write_text(mult18x18d_model())
    run_cocotb([model, v], "conv_bundle", "test_conv", HERE, tmp_path / "build",
               config={"cases": cases, "seed": 1, "frames": 3})


def test_ecp5_instances_carry_their_registers(tmp_path):
    from rtlgen.verify.synth import find_yosys

    yosys = find_yosys()
    if not yosys:
        pytest.skip("yosys not installed")
    import subprocess

    from test_conv import build_conv

    with mult_family("ecp5"):
        v = write_verilog(build_conv(_ecp5_cases()["e5mult"], 1), "conv_e5", tmp_path / "conv_e5.v")
    r = subprocess.run([yosys, "-p", "read_verilog conv_e5.v; synth_ecp5 -top conv_e5; stat"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:]
    text = v.read_text()
    n_src = len(re.findall(r"^\s*MULT18X18D\b", text, re.M))
    n = [int(x) for x in re.findall(r"^\s+MULT18X18D\s+(\d+)\s*$", r.stdout, re.M)]
    assert n and n[-1] == n_src > 0, (n, n_src)  # the instances, and no product yosys had to infer
    insts = re.findall(r"MULT18X18D #\((.*?)\n\s*\)\s+\S+\s+\(", text, re.S)
    assert len(insts) == n_src
    for inst in insts:
        assert all(f'.REG_{r}_CLK("CLK0")' in inst for r in ("INPUTA", "INPUTB", "OUTPUT")), inst
