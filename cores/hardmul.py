"""The registered hard product every DSP multiplier of the cores is built from, per device family.

:func:`registered_product` is ``a * b`` with a register in front of and behind the multiplier, two cycles from the
operands (which the caller has registered) to the product:

* ``"xcup"`` (default; Zynq UltraScale+ boards): written as ``p1 <= a * b; p2 <= p1``. yosys ``synth_xilinx`` and
  Vivado infer a DSP48E2 and pack the operand registers into ``AREG/BREG``, ``p1`` into ``MREG`` and ``p2`` into
  ``PREG``; nothing is instantiated, so every simulator and synthesizer reads it.
* ``"ecp5"`` (Lattice ECP5, the routed timing cross-check of ``tools/ecp5_crosscheck.py``): a ``MULT18X18D``
  instantiated with its input registers (``REG_INPUTA_CLK``/``REG_INPUTB_CLK``) and its output register
  (``REG_OUTPUT_CLK``), same latency. yosys 0.23 ``synth_ecp5`` maps an inferred product to a MULT18X18D with none of
  its registers (it does not pack fabric flip-flops into the DSP), so a fabric register -> multiplier -> fabric
  register path runs ~7.4 ns on routed ECP5 (136 MHz) where the registered primitive is timed from its own
  registers. Operands wider than the primitive (18 bits signed, 17 unsigned) fall back to the inferred form.

The family is chosen for a whole elaboration with :func:`mult_family` (``rtlgen core NAME --family ecp5``), which
also sets the operand sizes :func:`dsp_ports` gives :func:`~rtlgen.cores.arith.pmul` for splitting wide products.

yosys ships no simulation model of MULT18X18D (``share/yosys/ecp5/cells_bb.v``: blackbox, "FIXME: Create sim
models"), so :func:`mult18x18d_model` writes one for Verilator and iverilog: the ports and parameters rtlgen uses,
the registers on ``CLK0``/``CE0``/``RST0`` (synchronous reset, ``RESETMODE="SYNC"``), ``P`` the 36-bit product of
the operands each sign- or zero-extended by ``SIGNEDA``/``SIGNEDB`` (Lattice TN1267, ECP5 sysDSP usage guide); any
other clock, enable or reset selection stops the simulation. ``sim_tests/test_hardmul.py`` checks it on random
operands against Python integers for every register selection and runs ECP5-family conv cores bit-exact under
stalls.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

from amaranth.hdl import Cat, ClockSignal, Const, Instance, ResetSignal, Signal

from rtlgen.plan.geometry import DSP_A_BITS, DSP_B_BITS

__all__ = ["FAMILIES", "mult_family", "dsp_ports", "signed_value", "registered_product", "mult18x18d_model"]

#: device family -> hard multiplier operand sizes (signed bits): DSP48E2 27 x 18, MULT18X18D 18 x 18
FAMILIES = {"xcup": (DSP_A_BITS, DSP_B_BITS), "ecp5": (18, 18)}

_FAMILY: ContextVar[str] = ContextVar("rtlgen_mult_family", default="xcup")


@contextmanager
def mult_family(name: str):
    """Elaborate (convert to Verilog) inside ``with mult_family("ecp5"):`` to build the hard products for ``name``."""
    if name not in FAMILIES:
        raise ValueError(f"unknown device family {name!r} (one of {', '.join(FAMILIES)})")
    tok = _FAMILY.set(name)
    try:
        yield
    finally:
        _FAMILY.reset(tok)


def dsp_ports() -> tuple[int, int]:
    """The current family's multiplier operand sizes ``(wide, narrow)`` in signed bits."""
    return FAMILIES[_FAMILY.get()]


def signed_value(v):
    """``v`` as a signed value: as it is when signed, else zero-extended by one sign bit (uint8 -> 9-bit signed)."""
    return v if v.shape().signed else Cat(v, Const(0, 1)).as_signed()


def _fits18(v) -> bool:
    return len(v) <= (18 if v.shape().signed else 17)


def registered_product(m, a, b, m_name: str, p_name: str, shape=None):
    """``a * b`` (Amaranth values, signed or unsigned) two cycles later: the multiplier between a register in front
    (the DSP's input registers; inferred: ``m_name``, its ``M`` register) and one behind (its ``P`` / output
    register, the returned Signal ``p_name``, shaped ``shape`` or like ``a * b``)."""
    shape = shape if shape is not None else (a * b).shape()
    out = Signal(shape, name=p_name)
    if _FAMILY.get() == "ecp5" and _fits18(a) and _fits18(b):
        a18, b18 = Signal(18, name=f"{m_name}_a"), Signal(18, name=f"{m_name}_b")
        p = Signal(36, name=f"{m_name}_p")
        m.d.comb += [a18.eq(signed_value(a)), b18.eq(signed_value(b)), out.eq(p[:len(out)])]
        ports = {"p_REG_INPUTA_CLK": "CLK0", "p_REG_INPUTB_CLK": "CLK0", "p_REG_OUTPUT_CLK": "CLK0",
                 "p_RESETMODE": "SYNC", "i_CLK0": ClockSignal("sync"), "i_CE0": Const(1, 1),
                 "i_RST0": ResetSignal("sync"), "i_SIGNEDA": Const(1, 1), "i_SIGNEDB": Const(1, 1),
                 "i_SOURCEA": Const(0, 1), "i_SOURCEB": Const(0, 1)}
        ports.update({f"i_A{k}": a18[k] for k in range(18)})
        ports.update({f"i_B{k}": b18[k] for k in range(18)})
        ports.update({f"o_P{k}": p[k] for k in range(36)})
        m.submodules[m_name] = Instance("MULT18X18D", **ports)
        return out
    p1 = Signal(shape, name=m_name)
    m.d.sync += [p1.eq(a * b), out.eq(p1)]
    return out


_REGS = ("INPUTA", "INPUTB", "PIPELINE", "OUTPUT")


def mult18x18d_model() -> str:
    """Verilog simulation model of ``MULT18X18D`` (the subset rtlgen instantiates; see the module docstring)."""
    bits = lambda p, n: ", ".join(f"{p}{k}" for k in range(n))  # noqa: E731
    vec = lambda p, n: "{" + ", ".join(f"{p}{k}" for k in reversed(range(n))) + "}"  # noqa: E731
    params = "\n".join(f'  parameter REG_{r}_CLK = "NONE";\n  parameter REG_{r}_CE = "CE0";\n'
                       f'  parameter REG_{r}_RST = "RST0";' for r in _REGS + ("INPUTC",))
    checks = "\n".join(
        f'    if (REG_{r}_CLK != "NONE" && (REG_{r}_CLK != "CLK0" || REG_{r}_CE != "CE0" || REG_{r}_RST != "RST0"))\n'
        f'      $fatal(1, "MULT18X18D model: REG_{r} must use CLK0/CE0/RST0");' for r in _REGS)
    stage = []
    for src, dst, r, w in (("a_in", "a_q", "INPUTA", 19), ("b_in", "b_q", "INPUTB", 19), ("prod", "pl_q", "PIPELINE", 36),
                           ("pl", "out_q", "OUTPUT", 36)):
        stage.append(f"  reg [{w - 1}:0] {dst};\n"
                     f"  always @(posedge CLK0) if (RST0) {dst} <= 0; else if (CE0) {dst} <= {src};")
    return f"""// Simulation model of the Lattice ECP5 MULT18X18D written by rtlgen (cores/hardmul.py mult18x18d_model):
// the ports and parameters rtlgen instantiates, registers on CLK0/CE0/RST0 (synchronous reset), P = the 36-bit
// product of A and B, each sign-extended when SIGNEDA/SIGNEDB is 1 and zero-extended when 0.
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off UNUSEDSIGNAL */
module MULT18X18D(
  input {bits("A", 18)},
  input {bits("B", 18)},
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
  input CLK0, CE0, RST0,
  output {bits("P", 36)}
);
{params}
  parameter RESETMODE = "SYNC";
  parameter GSR = "ENABLED";
  initial begin
{checks}
    if (RESETMODE != "SYNC") $fatal(1, "MULT18X18D model: RESETMODE must be SYNC");
  end
  wire [18:0] a_in = {{SIGNEDA, {vec("A", 18)}}};
  wire [18:0] b_in = {{SIGNEDB, {vec("B", 18)}}};
{stage[0]}
{stage[1]}
  wire [18:0] a_s = (REG_INPUTA_CLK == "NONE") ? a_in : a_q;
  wire [18:0] b_s = (REG_INPUTB_CLK == "NONE") ? b_in : b_q;
  wire [35:0] a_x = {{{{18{{a_s[18] & a_s[17]}}}}, a_s[17:0]}};
  wire [35:0] b_x = {{{{18{{b_s[18] & b_s[17]}}}}, b_s[17:0]}};
  wire [35:0] prod = a_x * b_x;
{stage[2]}
  wire [35:0] pl = (REG_PIPELINE_CLK == "NONE") ? prod : pl_q;
{stage[3]}
  wire [35:0] p = (REG_OUTPUT_CLK == "NONE") ? pl : out_q;
  assign {vec("P", 36)} = p;
endmodule
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on UNUSEDPARAM */
"""
