"""Pre-Vivado timing estimate: the worst register-to-register path of each module on Zynq UltraScale+.

yosys 0.23's ``sta`` is no use for ``-family xcup`` (it falls back to 7-series figures and has no carry-chain arcs), so
this module synthesizes with Debian's yosys -- the same script as :mod:`rtlgen.verify.synth` (``proc -norom``,
``synth_xilinx -family xcup -flatten -noiopad``, ``maccmap -unmap``, LUT-mult modules kept out of DSPs,
``opt_merge -share_all``) followed by ``write_json`` -- and walks the mapped netlist itself:

* **start points**: flip-flop outputs (FDRE/FDSE/FDCE/FDPE), block RAM / UltraRAM outputs, the outputs of DSP48E2s
  with internal registers, the outputs of LUT RAMs and shift registers (clock -> out);
* **end points**: flip-flop D/CE/R/S inputs, memory inputs, DSP inputs that meet an internal register;
* **combinational cells**: LUT1-6 (and INV), CARRY4/CARRY8, MUXF7/8/9, LUT-RAM/SRL read addresses, and DSP48E2s whose
  A/B -> M -> P path holds no register (their through-delay is added);
* the longest path is a topological dynamic programme over the combinational arcs (bit level), evaluated for three
  net models; a DSP48E2's internal register-to-register stages count as paths too.

Delay figures (ns), for the ``-1`` speed grade. Sources: [R] routed Vivado 2021.2 timing reports of an
xczu3eg-sbva484 -1 (Ultra96-V2's part), public repository ``gussmith23/lakeroad-evaluation``, folder
``runs/2022-07-06-1704-full/vivado-eval/xilinx-ultrascale-plus-vivado-eval/vivado-synth-opt-place-route/``,
``*-timing-route.v``; [DS] DS925 (Zynq UltraScale+ DC and AC switching characteristics); [J] a judgement of this
module, not a published figure (brackets or splits of the published ones), listed so it can be replaced:

=============================================  ==========================  ======
figure                                         value                       source
=============================================  ==========================  ======
flip-flop clock -> Q                           0.096                       [R]
flip-flop setup                                0.035 (0.03-0.04)           [R]
clock uncertainty                              0.035                       [R]
LUT input -> output                            0.11 opt. / 0.18 cong.      [R] range 0.04-0.18: its middle / top
CARRY8 S or DI -> CO/O                         0.238                       [R] (S -> CO)
CARRY8 CI -> CO/O                              0.023                       [R]
CO -> CI link between CARRY8s                  0.028                       [R]
CARRY4 (yosys 0.23 maps xcup adders to CARRY4; Vivado packs two per CARRY8): S/DI -> CO/O 0.238, CI -> CO/O and the
link half the CARRY8 figures (a CARRY4 is half a CARRY8)                                                      [J]
MUXF7 / MUXF8 / MUXF9                          0.082                       [R] (MUXF7; F8/F9 assumed equal [J])
general net                                    0.20 + 0.03 * log2(fanout)  optimistic  [J, shared figures]
                                               0.35 + 0.06 * log2(fanout)  congested   [J, shared figures]
dedicated wire (LUT -> CARRY S/DI, CO -> CI,   0 (CO -> CI: the link above)  [R] "nearly free"
LUT -> MUXF7 -> MUXF8 -> MUXF9, DSP cascades)
DSP48E2 B -> P, no internal register           1.78                        [R]
  split: A/B (-> pre-adder) -> multiplier 1.20, ALU (M/C/PCIN -> P) 0.58                                    [J]
DSP48E2 internal register clock -> out 0.40, setup at an input register 0.30                                [J]
DSP48E2 with all pipeline registers            645 MHz (-1); K26 -2LV ~644  [DS] (a cap on the module's Fmax)
block RAM clock -> DOUT 0.90 without / 0.35 with output register; setup 0.30; UltraRAM 1.00 / 0.40, 0.30  [J]
LUT RAM / SRL write clock -> out               0.60                        [J]
=============================================  ==========================  ======

Net delays use the number of sinks of the net (``fanout``); the "midpoint" model is the mean of the optimistic and
congested figures (LUT delay included). **The reported Fmax (``fmax_mhz``) is the midpoint model's**; the optimistic
and congested worst paths give the range (``fmax_mhz_optimistic`` .. ``fmax_mhz_congested``). The shared notes record
one routed path where Vivado measured 3.76 ns against 2.83 / 4.27 ns from these net models: expect real results at or
below the midpoint Fmax. Period = clock -> Q + path + setup + clock uncertainty.

Speed grades (:data:`SPEED_GRADES`): KV260's K26 SOM is ``xck26-sfvc784-2LV-c`` (-2 at 0.72 V, about the -1 speed: its
DSP Fmax is 644 MHz vs 645 MHz for -1 [DS]); Ultra96-V2's xczu3eg is -1; both use the -1 figures (scale 1.0).

Each module of a build (:func:`estimate_build`: every child of ``rtlgen_top``, as ``rtlgen report --synth-per-module``)
is synthesized out of context; its input ports are start points and its outputs end points at zero delay, so the
reported ``path`` is register to register and the port-to-register paths are listed separately (``io_path``, not in
Fmax). The top's own wiring is not timed. Results are cached in ``DIR/timing/`` keyed by the module's Verilog, the
yosys script, :data:`MODEL_VERSION` and the speed grade; the yosys netlist is kept (gzip) keyed by Verilog and script,
so a change of the delay model re-walks it without re-running yosys.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import subprocess
import time
from collections import Counter, deque
from pathlib import Path

from ..errors import OptionError, TimingError
from ..figures import fps
from . import synth
from .synth import netlist_key
from .synth import netlist_script as script
from .synth import stable_key as _key

#: bump when the delay model or the walk changes (invalidates DIR/timing/*.json, keeps the netlists)
MODEL_VERSION = 1

# ---- figures (ns); see the module docstring for sources -------------------------------------------------------------
T_CLK_Q = 0.096
T_SETUP = 0.035
T_UNCERTAINTY = 0.035
T_CARRY8_S = 0.238
T_CARRY8_CI = 0.023
T_CARRY8_LINK = 0.028
T_MUXF = 0.082
T_DSP_COMB = 1.78
T_DSP_MULT = 1.20
T_DSP_ALU = T_DSP_COMB - T_DSP_MULT
T_DSP_CLK_OUT = 0.40
T_DSP_SETUP = 0.30
DSP_FMAX_MHZ = {"-1": 645.0, "-2LV": 644.0, "-2": 775.0}
T_BRAM_CLK_OUT = (0.90, 0.35)  # (no output register, output register)
T_URAM_CLK_OUT = (1.00, 0.40)
T_MEM_SETUP = 0.30
T_LUTRAM_CLK_OUT = 0.60

#: corner -> (LUT delay, net base, net per log2(fanout))
CORNERS = {
    "optimistic": (0.11, 0.20, 0.03),
    "midpoint": (0.145, 0.275, 0.045),
    "congested": (0.18, 0.35, 0.06),
}

#: board -> speed grade; grade -> delay scale (1.0: the -1 figures above)
SPEED_GRADES = {"kv260": "-2LV", "ultra96v2": "-1", "generic": "-1"}
GRADE_SCALE = {"-1": 1.0, "-2LV": 1.0, "-2": 645.0 / 775.0}

FF_TYPES = {"FDRE", "FDSE", "FDCE", "FDPE", "FDRE_1", "FDSE_1", "FDCE_1", "FDPE_1", "LDCE", "LDPE"}
IGNORED = {"BUFG", "BUFGCE", "BUFG_GT", "BUFGCTRL", "GND", "VCC", "IBUF", "OBUF", "IBUFG"}
CLOCK_PORTS = {"C", "CLK", "WCLK", "CLKARDCLK", "CLKBWRCLK", "G"}


def grade_for(board: str | None) -> str:
    return SPEED_GRADES.get(board or "generic", "-1")


# ---- yosys ----------------------------------------------------------------------------------------------------------

def _netlist(yosys: str, text: str, top: str, work: Path, stem: str, soft=(), timeout=None,
             uram: bool = False) -> tuple[dict, float, bool]:
    """The yosys JSON netlist of ``text`` (top ``top``), cached as ``work/stem.netlist.json.gz`` (and its cell counts
    as ``work/stem.stat.json``): (netlist, seconds, cached)."""
    src, net, stat = f"{stem}.v", f"{stem}.netlist.json", f"{stem}.stat.json"
    scr = script(src, top, net, stat, soft, uram)
    key = netlist_key(text, top, stem, soft, uram)
    gz = work / f"{stem}.netlist.json.gz"
    keyf = work / f"{stem}.netlist.key"
    if gz.exists() and keyf.exists() and keyf.read_text().strip() == key:
        try:
            with gzip.open(gz, "rt") as f:
                return json.load(f), 0.0, True
        except (OSError, json.JSONDecodeError, EOFError):
            pass
    (work / src).write_text(text)
    log = work / f"{stem}.yosys.log"
    t = time.perf_counter()
    try:
        r = subprocess.run([yosys, "-q", "-l", log.name, "-p", scr], capture_output=True, text=True, timeout=timeout,
                           cwd=work)
    except subprocess.TimeoutExpired:
        raise TimingError(f"yosys did not finish on {top} within {timeout:g} s (raise --timing-timeout; log: {log})") from None
    except OSError as e:
        raise synth.YosysMissing(f"cannot run yosys at {yosys} ({e.strerror}): {synth.YOSYS_HINT}") from None
    secs = round(time.perf_counter() - t, 1)
    if r.returncode != 0 or not (work / net).exists():
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise TimingError(f"yosys failed on {top} (exit {r.returncode}, log {log}): {msg[-1] if msg else 'no output'}")
    d = json.loads((work / net).read_text())
    with gzip.open(gz, "wt", compresslevel=3) as f:
        json.dump(d, f)
    keyf.write_text(key)
    for p in (src, net):
        (work / p).unlink(missing_ok=True)
    return d, secs, False


# ---- the netlist walk -----------------------------------------------------------------------------------------------

def _param(c: dict, name: str, default: int = 0) -> int:
    v = c.get("parameters", {}).get(name)
    if v is None:
        return default
    try:
        return int(v, 2) if isinstance(v, str) and set(v) <= {"0", "1"} else int(v)
    except ValueError:
        return default


def _pbits(c: dict, port: str) -> list:
    return c["connections"].get(port, [])


def _dedicated(dtype: str, dport: str, stype: str, sport: str) -> float | None:
    """Delay of a dedicated wire from (driver type, port) to (sink type, port), None for general routing."""
    if stype.startswith("CARRY"):
        if sport in ("CI", "CI_TOP") and dtype.startswith("CARRY") and dport == "CO":
            return T_CARRY8_LINK / (2 if stype == "CARRY4" else 1)
        if sport in ("S", "DI") and (dtype.startswith("LUT") or dtype == "INV"):
            return 0.0
    if stype in ("MUXF7", "MUXF8", "MUXF9") and sport in ("I0", "I1"):
        if (stype == "MUXF7" and (dtype.startswith("LUT") or dtype == "INV")) or \
                (stype == "MUXF8" and dtype == "MUXF7") or (stype == "MUXF9" and dtype == "MUXF8"):
            return 0.0
    if stype == "DSP48E2" and dtype == "DSP48E2" and sport in ("PCIN", "ACIN", "BCIN", "CARRYCASCIN", "MULTSIGNIN"):
        return 0.0
    return None


def _dsp_model(c: dict):
    """(endpoints {port: extra}, comb arcs {port: delay to P}, start delay of the outputs or None, internal worst
    register-to-register delay or None) of a DSP48E2, from its register parameters."""
    reg = {k: _param(c, k) for k in ("AREG", "BREG", "CREG", "DREG", "ADREG", "MREG", "PREG", "INMODEREG", "OPMODEREG",
                                     "ALUMODEREG", "CARRYINREG", "CARRYINSELREG")}
    use_mult = str(c.get("parameters", {}).get("USE_MULT", "MULTIPLY")).upper()
    t_mult = 0.0 if use_mult == "NONE" else T_DSP_MULT
    mreg = reg["MREG"] if use_mult != "NONE" else 0
    chains = {  # port -> [(register enabled, delay before it)...], delay after the last
        "A": ([(reg["AREG"], 0.0), (mreg, t_mult), (reg["PREG"], T_DSP_ALU)], 0.0),
        "B": ([(reg["BREG"], 0.0), (mreg, t_mult), (reg["PREG"], T_DSP_ALU)], 0.0),
        "D": ([(reg["DREG"], 0.0), (reg["ADREG"], 0.0), (mreg, t_mult), (reg["PREG"], T_DSP_ALU)], 0.0),
        "INMODE": ([(reg["INMODEREG"], 0.0), (mreg, t_mult), (reg["PREG"], T_DSP_ALU)], 0.0),
        "C": ([(reg["CREG"], 0.0), (reg["PREG"], T_DSP_ALU)], 0.0),
        "OPMODE": ([(reg["OPMODEREG"], 0.0), (reg["PREG"], T_DSP_ALU)], 0.0),
        "ALUMODE": ([(reg["ALUMODEREG"], 0.0), (reg["PREG"], T_DSP_ALU)], 0.0),
        "CARRYIN": ([(reg["CARRYINREG"], 0.0), (reg["PREG"], T_DSP_ALU)], 0.0),
        "CARRYINSEL": ([(reg["CARRYINSELREG"], 0.0), (reg["PREG"], T_DSP_ALU)], 0.0),
        "PCIN": ([(reg["PREG"], T_DSP_ALU)], 0.0),
        "CARRYCASCIN": ([(reg["PREG"], T_DSP_ALU)], 0.0),
    }
    chains["ACIN"], chains["BCIN"] = chains["A"], chains["B"]
    ends, comb, start, internal = {}, {}, None, None
    for port, (ch, tail) in chains.items():
        acc, first, last_reg_acc = 0.0, None, None
        for en, d in ch:
            acc += d
            if en:
                if first is None:
                    first = acc
                elif last_reg_acc is not None:
                    v = T_DSP_CLK_OUT + (acc - last_reg_acc) + T_DSP_SETUP
                    internal = v if internal is None else max(internal, v)
                last_reg_acc = acc
        if first is not None:
            ends[port] = first + T_DSP_SETUP
            s = T_DSP_CLK_OUT + (acc - last_reg_acc) + tail
            start = s if start is None else max(start, s)
        else:
            comb[port] = acc + tail
    if any(reg.values()):
        for p in c["connections"]:
            if p.startswith("CE") or p.startswith("RST"):
                ends[p] = T_DSP_SETUP
    return ends, comb, start, internal


def _lutram_arcs(c: dict) -> list[tuple[str, str]]:
    """(read address port, output port) pairs of a LUT RAM / SRL cell."""
    ports = c["port_directions"]
    outs = [p for p, d in ports.items() if d == "output"]
    if any(p.startswith("DO") and len(p) == 3 for p in outs):  # RAM32M/RAM64M/RAM32M16/RAM64M8: ADDRx -> DOx
        return [(f"ADDR{p[2]}", p) for p in outs if f"ADDR{p[2]}" in ports]
    if "DPO" in outs:  # RAMnX1D
        return [(p, "DPO") for p in ports if p.startswith("DPRA")] + [(p, "SPO") for p in ports if re.fullmatch(r"A\d*", p)]
    return [(p, o) for o in outs for p in ports if re.fullmatch(r"A\d*", p)]


class _Graph:
    """Bit-level timing graph of one flattened module."""

    def __init__(self, mod: dict):
        self.cells = mod.get("cells", {})
        self.ports = mod.get("ports", {})
        self.names = self._names(mod.get("netnames", {}))
        self.driver: dict[int, tuple[str, str]] = {}  # bit -> (cell type, port) (module input: ("<in>", name))
        self.sinks: dict[int, int] = Counter()
        self.starts: list[tuple[int, float, str]] = []  # (bit, delay, cell name)
        self.ends: list[tuple[int, float, str, str, str]] = []  # (bit, extra, cell name, type, port)
        self.arcs: list[tuple[int, int, str, str, str, float]] = []  # (in, out, cell, type, in port, cell delay or -1: LUT)
        self.internal: list[tuple[float, str]] = []  # DSP internal reg->reg
        self.unknown: Counter = Counter()
        self.counts: Counter = Counter()
        self.io_in: list[int] = []
        self.io_out: list[int] = []
        for pname, p in self.ports.items():
            for b in p["bits"]:
                if not isinstance(b, int):
                    continue
                if p["direction"] == "input":
                    self.driver[b] = ("<in>", pname)
                    self.io_in.append(b)
                else:
                    self.sinks[b] += 1
                    self.io_out.append(b)
        for name, c in self.cells.items():
            self._cell(name, c)

    @staticmethod
    def _names(netnames: dict) -> dict[int, str]:
        best: dict[int, tuple] = {}
        for n, v in netnames.items():
            bits = v.get("bits", [])
            for i, b in enumerate(bits):
                if not isinstance(b, int):
                    continue
                nm = n.lstrip("\\") + (f"[{i}]" if len(bits) > 1 else "")
                rank = (v.get("hide_name", 0), n.startswith("$"), len(nm))
                if b not in best or rank < best[b][0]:
                    best[b] = (rank, nm)
        return {b: v[1] for b, v in best.items()}

    def _cell(self, name: str, c: dict):
        t = c["type"].lstrip("\\")
        self.counts[t] += 1
        dirs = c.get("port_directions", {})
        conns = c.get("connections", {})
        for p, bits in conns.items():
            d = dirs.get(p)
            for b in bits:
                if not isinstance(b, int):
                    continue
                if d == "output":
                    self.driver[b] = (t, p)
                elif p not in CLOCK_PORTS and t not in IGNORED:
                    self.sinks[b] += 1
        if t in IGNORED:
            return
        ins = [(p, b) for p, bits in conns.items() if dirs.get(p) == "input" and p not in CLOCK_PORTS
               for b in bits if isinstance(b, int)]
        outs = [(p, b) for p, bits in conns.items() if dirs.get(p) == "output" for b in bits if isinstance(b, int)]
        if re.fullmatch(r"LUT[1-6]", t) or t == "INV":
            for p, b in ins:
                for _, o in outs:
                    self.arcs.append((b, o, name, t, p, -1.0))
        elif t in ("MUXF7", "MUXF8", "MUXF9"):
            for p, b in ins:
                for _, o in outs:
                    self.arcs.append((b, o, name, t, p, T_MUXF))
        elif t in ("CARRY4", "CARRY8"):
            half = 2 if t == "CARRY4" else 1
            n = 4 if t == "CARRY4" else 8
            for op in ("O", "CO"):
                for j, o in enumerate(_pbits(c, op)):
                    if not isinstance(o, int):
                        continue
                    for ip in ("S", "DI"):
                        for i, b in enumerate(_pbits(c, ip)[: j + 1]):
                            if isinstance(b, int):
                                self.arcs.append((b, o, name, t, ip, T_CARRY8_S))
                    for ip in ("CI", "CYINIT") + (("CI_TOP",) if j >= n // 2 else ()):
                        for b in _pbits(c, ip):
                            if isinstance(b, int):
                                self.arcs.append((b, o, name, t, ip, T_CARRY8_CI / half))
        elif t in FF_TYPES:
            for p, b in ins:
                self.ends.append((b, T_SETUP, name, t, p))
            for _, o in outs:
                self.starts.append((o, T_CLK_Q, name))
        elif t == "DSP48E2":
            ends, comb, start, internal = _dsp_model(c)
            for p, b in ins:
                if p in ends:
                    self.ends.append((b, ends[p], name, t, p))
                elif p in comb:
                    for _, o in outs:
                        self.arcs.append((b, o, name, t, p, comb[p]))
            if start is not None:
                for _, o in outs:
                    self.starts.append((o, start, name))
            if internal is not None:
                self.internal.append((internal, name))
        elif t.startswith("RAMB") or t.startswith("URAM") or t.startswith("FIFO"):
            if t.startswith("URAM"):
                reg = _param(c, "OREG_A") or _param(c, "OREG_B")
                tco = T_URAM_CLK_OUT[1 if reg else 0]
            else:
                reg = _param(c, "DOA_REG") and (_param(c, "DOB_REG") or not any(p.startswith("DOUTB") for p, _ in outs))
                tco = T_BRAM_CLK_OUT[1 if reg else 0]
            for p, b in ins:
                self.ends.append((b, T_MEM_SETUP, name, t, p))
            for _, o in outs:
                self.starts.append((o, tco, name))
        elif (t.startswith("RAM") and not t.startswith("RAMB")) or t.startswith("SRL"):
            for p, b in ins:
                self.ends.append((b, T_SETUP, name, t, p))
            for _, o in outs:
                self.starts.append((o, T_LUTRAM_CLK_OUT, name))
            for ap, op in _lutram_arcs(c):
                for b in _pbits(c, ap):
                    if isinstance(b, int):
                        for o in _pbits(c, op):
                            if isinstance(o, int):
                                self.arcs.append((b, o, name, t, ap, -1.0))
        else:  # unknown primitive: a black box (inputs end, outputs start, no delay of its own)
            self.unknown[t] += 1
            for p, b in ins:
                self.ends.append((b, 0.0, name, t, p))
            for _, o in outs:
                self.starts.append((o, 0.0, name))

    def net(self, bit: int, stype: str, sport: str, corner) -> float:
        _, base, per = corner
        drv = self.driver.get(bit)
        if drv is not None:
            d = _dedicated(drv[0], drv[1], stype, sport)
            if d is not None:
                return d
            if drv[0] == "<in>":
                return 0.0
        return base + per * math.log2(max(self.sinks.get(bit, 1), 1))

    def order(self):
        """Arcs grouped by input bit and a topological order of bits (Kahn); bits on combinational loops are left
        out (counted)."""
        out_of: dict[int, list] = {}
        indeg: Counter = Counter()
        for a in self.arcs:
            out_of.setdefault(a[0], []).append(a)
            indeg[a[1]] += 1
        nodes = set(out_of) | set(indeg)
        q = deque(b for b in nodes if indeg[b] == 0)
        order = []
        while q:
            b = q.popleft()
            order.append(b)
            for a in out_of.get(b, ()):
                indeg[a[1]] -= 1
                if indeg[a[1]] == 0:
                    q.append(a[1])
        return out_of, order, len(nodes) - len(order)

    def longest(self, corner, scale: float, sources: str = "reg"):
        """Arrival times from the start points (``sources="reg"``) or the module inputs (``"in"``), then the worst
        end point: ``(delay ns incl. uncertainty, end tuple, arrival, pred)`` or None."""
        lut = corner[0]
        out_of, order, _ = self._order
        arr: dict[int, float] = {}
        pred: dict[int, tuple] = {}
        if sources == "reg":
            for b, d, _cell in self.starts:
                if d * scale > arr.get(b, -1.0):
                    arr[b] = d * scale
        else:
            for b in self.io_in:
                arr[b] = 0.0
        for b in order:
            if b not in arr:
                continue
            ab = arr[b]
            for a in out_of.get(b, ()):
                _, o, cell, t, p, d = a
                v = ab + (self.net(b, t, p, corner) + (lut if d < 0 else d)) * scale
                if v > arr.get(o, -1.0):
                    arr[o] = v
                    pred[o] = (b, cell, t, p)
        best = None
        for e in self.ends:
            b, extra, cell, t, p = e
            if b in arr:
                v = arr[b] + (self.net(b, t, p, corner) + extra + T_UNCERTAINTY) * scale
                if best is None or v > best[0]:
                    best = (v, e)
        if sources == "reg":
            for d, cell in self.internal:
                v = d * scale + T_UNCERTAINTY * scale
                if best is None or v > best[0]:
                    best = (v, (None, 0.0, cell, "DSP48E2", "internal"))
        else:  # input -> output (combinational feed-through) counts as an io path too
            for b in self.io_out:
                if b in arr and (best is None or arr[b] > best[0]):
                    best = (arr[b], (b, 0.0, "<out>", "<out>", self.names.get(b, str(b))))
        return None if best is None else (best[0], best[1], arr, pred)

    def describe(self, res, starts_by_bit) -> dict:
        delay, end, arr, pred = res
        b, _, ecell, etype, eport = end
        if b is None:
            return {"start": ecell, "start_type": "DSP48E2", "end": ecell, "end_type": "DSP48E2", "end_pin": "internal",
                    "delay_ns": round(delay, 3), "lut_levels": 0, "carry_chains": 0, "carry_cells": 0, "muxf": 0,
                    "dsp": 1, "dsp_comb": 0, "lutram": 0, "cells": "DSP48E2 (internal stage)"}
        seq = []
        cur = b
        while cur in pred:
            pb, cell, t, p = pred[cur]
            seq.append((t, p, cell))
            cur = pb
        seq.reverse()
        drv = self.driver.get(cur, ("?", "?"))
        stype = "input port" if drv[0] == "<in>" else drv[0]
        start_cell = starts_by_bit.get(cur)
        luts = sum(1 for t, _, _ in seq if re.fullmatch(r"LUT[1-6]", t) or t == "INV" or
                   (t.startswith("RAM") and not t.startswith("RAMB")) or t.startswith("SRL"))
        chains = sum(1 for t, p, _ in seq if t.startswith("CARRY") and p not in ("CI", "CI_TOP"))
        carry_cells = len({cell for t, _, cell in seq if t.startswith("CARRY")})
        muxf = sum(1 for t, _, _ in seq if t.startswith("MUXF"))
        dsp_comb = sum(1 for t, _, _ in seq if t == "DSP48E2")
        dsp = dsp_comb + (stype == "DSP48E2") + (etype == "DSP48E2")
        lutram = sum(1 for t, _, _ in seq if (t.startswith("RAM") and not t.startswith("RAMB")) or t.startswith("SRL"))
        # compact cell sequence: runs of CARRY cells chained through CI collapsed
        parts = [stype]
        for t, p, _ in seq:
            if t.startswith("CARRY") and p in ("CI", "CI_TOP") and parts and re.match(r"CARRY\d( x\d+)?$", parts[-1]):
                m = re.match(r"(CARRY\d)(?: x(\d+))?$", parts[-1])
                parts[-1] = f"{m.group(1)} x{int(m.group(2) or 1) + 1}"
            else:
                parts.append(t)
        parts.append(etype + ("." + eport if etype not in FF_TYPES else ""))
        end_name = (self.names.get(self._ff_q(ecell), ecell) if etype in FF_TYPES else
                    (ecell if ecell != "<out>" else "output " + eport))
        start_name = (self.names.get(cur, str(cur)) if drv[0] != "<in>" else "input " + drv[1])
        return {"start": start_name, "start_type": stype, "start_cell": start_cell,
                "end": end_name, "end_type": etype, "end_pin": eport if ecell != "<out>" else None,
                "delay_ns": round(delay, 3), "lut_levels": luts, "carry_chains": chains, "carry_cells": carry_cells,
                "muxf": muxf, "dsp": dsp, "dsp_comb": dsp_comb, "lutram": lutram, "cells": " > ".join(parts)}

    def _ff_q(self, cell: str):
        qs = self.cells.get(cell, {}).get("connections", {}).get("Q", [])
        return qs[0] if qs else None

    def analyze(self, grade: str = "-1") -> dict:
        self._order = self.order()
        scale = GRADE_SCALE.get(grade, 1.0)
        starts_by_bit = {b: cell for b, _, cell in self.starts}
        out = {"corners": {}}
        for cname, corner in CORNERS.items():
            r = self.longest(corner, scale, "reg")
            out["corners"][cname] = None if r is None else r[0]
            if cname == "midpoint":
                mid = r
                io = self.longest(corner, scale, "in")
        path = self.describe(mid, starts_by_bit) if mid else None
        cap = DSP_FMAX_MHZ.get(grade, 645.0) if self.counts.get("DSP48E2") else None

        def fmax(d):
            if not d:
                return None
            f = 1000.0 / d
            return round(min(f, cap) if cap else f, 1)

        c = out["corners"]
        return {
            "fmax_mhz": fmax(c["midpoint"]), "fmax_mhz_optimistic": fmax(c["optimistic"]),
            "fmax_mhz_congested": fmax(c["congested"]),
            "delay_ns": {k: (round(v, 3) if v else None) for k, v in c.items()},
            "path": path,
            "io_path": self.describe(io, starts_by_bit) if io else None,
            "dsp_cap_mhz": cap,
            "cells": dict(sorted(self.counts.items())),
            "unknown_cells": dict(self.unknown),
            "loop_bits": self._order[2],
        }


def analyze_netlist(netlist: dict, top: str | None = None, grade: str = "-1") -> dict:
    """Walk a yosys ``write_json`` netlist of a flattened, ``synth_xilinx``-mapped module (see the module docstring)."""
    mods = netlist.get("modules", {})
    if not mods:
        raise TimingError("empty yosys netlist (no modules)")
    if top is None or top not in mods:
        tops = [n for n, m in mods.items() if str(m.get("attributes", {}).get("top", "0")).strip("0") not in ("", "x")]
        top = tops[0] if tops else max(mods, key=lambda n: len(mods[n].get("cells", {})))
    return _Graph(mods[top]).analyze(grade)


# ---- one Verilog file / one build -----------------------------------------------------------------------------------

def _need_yosys(yosys: str | None) -> str:
    y = yosys or synth.find_yosys()
    if not y:
        raise synth.YosysMissing(f"yosys not found (needed by the timing estimate): {synth.YOSYS_HINT}")
    return y


def file_top(text: str) -> str:
    """The module of a Verilog file that no other module instantiates (the last such one)."""
    blocks = synth.module_blocks(text)
    if not blocks:
        raise OptionError("no module in the Verilog file")
    used = set()
    for m in blocks:
        used.update(k for k in synth.sub_hierarchy(blocks, m) if k != m)
    tops = [m for m in blocks if m not in used]
    return tops[-1] if tops else list(blocks)[-1]


def _result_key(args) -> str:
    yosys, text, top, work, stem, soft, timeout, grade, uram = args
    return _key("result", MODEL_VERSION, grade, text, script(f"{stem}.v", top, f"{stem}.netlist.json",
                                                            f"{stem}.stat.json", soft, uram))


def _cached_result(args) -> dict | None:
    """The cached walk of one module (same Verilog, script, delay model and grade), else None."""
    res_f = Path(args[3]) / f"{args[4]}.json"
    try:
        c = json.loads(res_f.read_text())
        return c["result"] | {"cached": True} if c.get("key") == _result_key(args) else None
    except (OSError, json.JSONDecodeError, KeyError):
        return None


def _one(args) -> dict:
    """One module: yosys (or its cached netlist), then the walk (or its cached result). Top-level for process pools."""
    yosys, text, top, work, stem, soft, timeout, grade, uram = args
    work = Path(work)
    res_f = work / f"{stem}.json"
    src_key = _result_key(args)
    hit = _cached_result(args)
    if hit is not None:
        return hit
    t = time.perf_counter()
    net, secs, ncached = _netlist(yosys, text, top, work, stem, soft, timeout, uram)
    res = analyze_netlist(net, top, grade)
    res |= {"yosys_seconds": secs, "walk_seconds": round(time.perf_counter() - t - secs, 1)}
    res_f.write_text(json.dumps({"key": src_key, "result": res}, indent=1))
    return res | {"cached": False, "netlist_cached": ncached}


def estimate_verilog(path, top: str | None = None, board: str | None = "kv260", work_dir=None, timeout: float | None = 1800,
                     yosys: str | None = None) -> dict:
    """Timing estimate of one Verilog file's module ``top`` (default: the file's top). ``work_dir`` (default: a
    ``timing`` folder beside the file) holds yosys' files and the cache."""
    p = Path(path)
    if not p.exists():
        raise OptionError(f"Verilog file {str(p)!r} does not exist")
    y = _need_yosys(yosys)
    text = p.read_text(errors="replace")
    top = top or file_top(text)
    blocks = synth.module_blocks(text)
    if top not in blocks:
        raise OptionError(f"module {top!r} not in {str(p)!r}")
    part = "".join(blocks[k] for k in synth.sub_hierarchy(blocks, top))
    work = Path(work_dir) if work_dir else p.parent / "timing"
    work.mkdir(parents=True, exist_ok=True)
    grade = grade_for(board)
    return _one((y, part, top, str(work), top, (), timeout, grade, False)) | {"name": top, "speed_grade": grade}


def estimate_build(build_dir, jobs: int = 1, progress=None, timeout: float | None = 3600, yosys: str | None = None,
                   modules: list[str] | None = None, only_cached: bool = False) -> dict | None:
    """Timing estimate of a build: every child module of ``DIR/rtl/rtlgen_top.v`` out of context, ``jobs`` at once,
    cached in ``DIR/timing/``. Returns ``{"clock_mhz", "fmax_mhz", "fmax_mhz_optimistic", "fmax_mhz_congested",
    "meets", "limiting_module", "speed_grade", "board", "model", "modules": [{"name", "fmax_mhz", "path", ...}],
    "seconds", "cached"}``; ``fmax_mhz`` is the midpoint model's (see the module docstring), ``meets`` compares it
    with the build's clock. ``progress(name, result)`` is called as each module finishes. ``only_cached``: None unless
    every module's result is in the cache (no yosys run: what ``rtlgen build`` prints)."""
    d = Path(build_dir)
    if not (d / "report.json").exists():
        raise OptionError(f"{str(d)!r} is not an rtlgen build folder (no report.json)")
    if not (d / "rtl" / "rtlgen_top.v").exists():
        raise OptionError(f"build folder {str(d)!r} has no rtl/rtlgen_top.v (built with --no-rtl?): the timing "
                          "estimate needs the RTL")
    y = _need_yosys(yosys)
    try:
        _, _, _, rep, soft, text = synth._context(d, y, True)
    except synth.YosysMissing as e:
        raise synth.YosysMissing(str(e).replace("--synth", "the timing estimate")) from None
    blocks = synth.module_blocks(text)
    names = list(modules or synth.layer_modules(text))
    work = d / "timing"
    work.mkdir(exist_ok=True)
    grade = grade_for(rep.get("board"))
    uram = synth.uses_uram(rep)  # URAM-stored layers map as in --synth (the same netlist serves both)
    args = []
    for m in names:
        if m not in blocks:
            raise OptionError(f"module {m!r} not in {d / 'rtl' / 'rtlgen_top.v'}")
        mine = tuple(s for s in soft if s == m or s.startswith(m + "__"))
        part = "".join(blocks[k] for k in synth.sub_hierarchy(blocks, m))
        args.append((y, part, m, str(work), m, mine, timeout, grade, uram))
    if only_cached and not all(_cached_result(a) for a in args):
        return None
    t0 = time.perf_counter()
    results: dict[str, dict] = {}
    if jobs <= 1 or len(args) <= 1:
        for a in args:
            results[a[2]] = _one(a)
            if progress:
                progress(a[2], results[a[2]])
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            # biggest modules first: the long yosys runs start early and the small ones fill the gaps
            futs = {pool.submit(_one, a): a[2] for a in sorted(args, key=lambda a: -len(a[1]))}
            for f in as_completed(futs):
                results[futs[f]] = f.result()
                if progress:
                    progress(futs[f], results[futs[f]])
    mods = [{"name": m, **results[m]} for m in names]
    clock = rep.get("clock_mhz")
    timed = [m for m in mods if m.get("fmax_mhz")]
    worst = min(timed, key=lambda m: m["fmax_mhz"]) if timed else None

    def lo(k):
        v = [m[k] for m in timed if m.get(k)]
        return min(v) if v else None

    fmax = worst["fmax_mhz"] if worst else None
    cpf = rep.get("cycles_per_frame")
    return {
        "board": rep.get("board"), "speed_grade": grade, "clock_mhz": clock, "fmax_mhz": fmax,
        "fmax_mhz_optimistic": lo("fmax_mhz_optimistic"), "fmax_mhz_congested": lo("fmax_mhz_congested"),
        "fmax_basis": "midpoint net model (range: optimistic .. congested)",
        "meets": bool(fmax is not None and clock is not None and fmax >= clock),
        "limiting_module": worst["name"] if worst else None,
        "fps_at_clock": fps(clock, cpf) if clock and cpf else None,
        "fps_at_fmax": fps(min(clock, fmax), cpf) if clock and cpf and fmax else None,
        "model": {"version": MODEL_VERSION, "corners": {k: {"lut": v[0], "net": f"{v[1]} + {v[2]}*log2(fanout)"}
                                                        for k, v in CORNERS.items()}},
        "modules": mods, "seconds": round(time.perf_counter() - t0, 1),
        "cached": all(m.get("cached") for m in mods),
        "note": "each child of rtlgen_top out of context; the top's own wiring is not timed",
    }


def format_path(p: dict | None) -> str:
    if not p:
        return "-"
    return (f"{p['lut_levels']} LUT, {p['carry_chains']} carry chain{'s' if p['carry_chains'] != 1 else ''}"
            + (f", {p['muxf']} MUXF" if p["muxf"] else "") + (f", {p['dsp']} DSP" if p["dsp"] else "")
            + f": {p['start']} -> {p['end']}")


def format_table(t: dict) -> str:
    """The per-module table and the verdict, as ``rtlgen report --timing`` prints them (FPS as stored, through
    :func:`rtlgen.figures.fmt_fps`)."""
    from ..figures import fmt_fps

    rows = [f"timing estimate (yosys synth_xilinx -family xcup per module, UltraScale+ {t['speed_grade']} figures; "
            f"Fmax from the midpoint net model, range optimistic-congested):"]
    w = max([len(m["name"]) for m in t["modules"]] + [6])
    hdr = f"{'module':{w}s} {'Fmax MHz':>9s} {'range':>11s} {'ns':>6s}  worst register-to-register path"
    rows += [hdr, "-" * len(hdr)]
    for m in t["modules"]:
        f = m.get("fmax_mhz")
        rng = (f"{m['fmax_mhz_congested']:.0f}-{m['fmax_mhz_optimistic']:.0f}" if f else "-")
        ns = m["delay_ns"]["midpoint"] if f else None
        mark = " <- limits" if m["name"] == t["limiting_module"] else ""
        rows.append(f"{m['name']:{w}s} {f if f else '-':>9} {rng:>11s} {ns if ns else '-':>6}  {format_path(m.get('path'))}{mark}")
    rows.append("-" * len(hdr))
    if t["fmax_mhz"]:
        verdict = "meets" if t["meets"] else "does NOT meet"
        rows.append(f"design Fmax {t['fmax_mhz']:.1f} MHz (range {t['fmax_mhz_congested']:.0f}-{t['fmax_mhz_optimistic']:.0f}) "
                    f"{verdict} the build clock {t['clock_mhz']} MHz")
        if t.get("fps_at_clock"):
            rows.append(f"FPS {fmt_fps(t['fps_at_clock'])} at {t['clock_mhz']} MHz; {fmt_fps(t['fps_at_fmax'])} at "
                        f"min(clock, Fmax) = {min(t['clock_mhz'], t['fmax_mhz']):.1f} MHz")
    else:
        rows.append("no register-to-register path found")
    return "\n".join(rows)
