"""cocotb testbench for rtlgen's generated accelerators, for use in your own cocotb tests.

:class:`RtlgenTB` wraps a simulated ``rtlgen_top`` (the ``rtl/rtlgen_top.v`` of an ``rtlgen build``) in the style of
cocotbext-axi's testbench classes: it owns the clock and the reset, a **driver** of the pixel input stream ``i``
(one pixel per beat, ``last`` on a frame's final beat), a **monitor** of the output stream ``o``, a **scoreboard**
that checks every output frame against rtlgen's bit-exact NumPy golden model, **pause generators** for the input
(idle cycles) and the output (backpressure), and the URAM weight load (``wload``) where the design has one. Cycle
stamps of each frame's first input beat and last output beat give the steady-state cycles per frame and the latency.

A complete cocotb test module (this is :mod:`rtlgen.verify.tb_example`, runnable as
``python -m rtlgen.verify.tb_example BUILD_DIR [FRAMES]``)::

    import itertools

    import cocotb
    import numpy as np

    from rtlgen.verify.tb import RtlgenTB, random_pauses


    @cocotb.test()
    async def run_frames(dut):
        tb = RtlgenTB(dut, "build")                         # the rtlgen build folder (default: $RTLGEN_BUILD_DIR)
        await tb.reset()                                    # reset, then the weight image if the design has one
        pixels = np.random.default_rng(0).integers(0, 256, size=(4, *tb.input_shape), dtype=np.uint8)
        res = await tb.run(pixels)                          # drive, monitor, score; back to back
        assert res.mismatches == [], res.mismatches
        tb.set_idle_generator(random_pauses(0.3, seed=1))   # 30 % input idle cycles
        tb.set_backpressure_generator(itertools.cycle([0, 1, 1]))   # ready low 2 cycles of 3
        res = await tb.run(pixels[:2])
        assert res.mismatches == []
        dut._log.info("%d cycles/frame, latency %d", res.cycles_per_frame, res.latency_cycles)

Compile and run it with any cocotb flow (a Makefile with ``SIM=verilator TOPLEVEL=rtlgen_top``, or
``cocotb_tools.runner``, as :func:`rtlgen.verify.tb_example.run` does). Speed: add :func:`verilator_args` to the Verilator
build arguments (``build_args`` of the runner; ``EXTRA_ARGS`` in a Makefile): cocotb's ``--public-flat-rw`` otherwise
keeps every signal of the network visible and the model runs about 4x slower. The bench takes one Python step per
clock cycle and does no Python work on cycles where nothing changes hands beyond two port reads; see BENCHMARKS.md
("RTL simulator") for the measured rate on ResNet8.

The lower-level :class:`StreamSource` / :class:`StreamSink` drive and consume any Amaranth stream port
(``<name>__valid``, ``__ready``, ``__payload``; multi-lane payloads pack lane 0 in the least significant bits); both
honour the handshake exactly: a beat moves on a rising edge where ``valid & ready``.
"""

from __future__ import annotations

import itertools
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge


#: the ports of ``rtlgen_top`` (and compose's per-layer ``probe_*`` wires) that a cocotb test reads or drives
TOP_PORTS = ("clk", "rst", *(f"{s}__{f}" for s in ("i", "o", "wload") for f in ("valid", "ready", "payload")),
             "weights_loaded")


def verilator_args(folder, probes: bool = False, top: str = "rtlgen_top") -> list[str]:
    """Extra Verilator arguments for a fast cocotb model of an rtlgen top: only the top's ports (``probes``: and the
    ``probe_*`` wires) visible through VPI instead of every signal of the design.

    cocotb's Verilator runner always passes ``--public-flat-rw``, which keeps every signal of the 100,000-line
    network as a separate, VPI-registered variable: Verilator can then neither inline nor drop any of them, and the
    model evaluates several times slower (and compiles a huge symbol table). ``--no-public-flat-rw`` after it
    undoes that, and a Verilator config file (written into ``folder``) makes the ports public again, which is all
    :class:`RtlgenTB` (and :class:`StreamSource`/:class:`StreamSink` on the top's streams) needs. Pass the result as
    ``build_args`` (after your own) to ``cocotb_tools.runner``'s ``build``; see :func:`rtlgen.verify.tb_example.run`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = TOP_PORTS + (("probe_*",) if probes else ())
    vlt = folder / "rtlgen_tb_ports.vlt"
    vlt.write_text("`verilator_config\n" + "".join(f'public_flat_rw -module "{top}" -var "{n}"\n' for n in names))
    return ["--no-public-flat-rw", str(vlt)]


def pause_generator(prob: float, seed: int = 0):
    """Infinite iterator of booleans: True means "pause this cycle" with probability ``prob``."""
    if prob <= 0:
        return itertools.repeat(False)
    rng = random.Random(seed)
    return (rng.random() < prob for _ in itertools.count())


def pause_pattern(spec, seed: int = 0):
    """Infinite iterator of booleans (True = pause this cycle) from a pattern: ``("none",)``, ``("bern", p)`` (each
    cycle with probability ``p``: :func:`pause_generator`), ``("burst", p_start, p_stay)`` (a pause starts with
    probability ``p_start`` and goes on with probability ``p_stay``: long idle runs) or ``("hold", start, length, p)``
    (Bernoulli ``p``, except held for ``length`` cycles from cycle ``start`` and again from ``3*start + length``)."""
    kind, args = spec[0], list(spec[1:])
    if kind == "none":
        return itertools.repeat(False)
    if kind == "bern":
        return pause_generator(args[0], seed)
    if kind not in ("burst", "hold"):
        raise ValueError(f"unknown pause pattern {kind!r}")
    return (_burst if kind == "burst" else _hold)(*args, seed=seed)


def _burst(p_start, p_stay, seed):
    rng, on = random.Random(seed), False
    while True:
        on = rng.random() < (p_stay if on else p_start)
        yield on


def _hold(start, length, p, seed):
    rng = random.Random(seed)
    for c in itertools.count():
        if start <= c < start + length or 3 * start + length <= c < 3 * start + 2 * length:
            yield True
        else:
            yield rng.random() < p


random_pauses = pause_generator


class _StreamPort:
    """The ``<name>__valid/ready/payload`` handles of an Amaranth stream port, a clock and a pause generator."""

    def __init__(self, dut, name: str, clk, pause_prob: float, seed: int):
        self.valid, self.ready, self.payload = (getattr(dut, f"{name}__{f}") for f in ("valid", "ready", "payload"))
        self.clk = clk
        self.pauses = pause_generator(pause_prob, seed)


class StreamSource(_StreamPort):
    def __init__(self, dut, name: str, clk, pause_prob: float = 0.0, seed: int = 1):
        super().__init__(dut, name, clk, pause_prob, seed)
        self.valid.value = 0
        self.sent = 0

    async def send(self, words):
        """Send every word (an int payload) in order, honouring ready; returns when the last one was accepted."""
        for w in words:
            while next(self.pauses):
                self.valid.value = 0
                await RisingEdge(self.clk)
            self.valid.value = 1
            self.payload.value = int(w)
            while True:
                await RisingEdge(self.clk)
                if int(self.ready.value):
                    break
            self.sent += 1
        self.valid.value = 0

    def start(self, words):
        return cocotb.start_soon(self.send(list(words)))


class StreamSink(_StreamPort):
    def __init__(self, dut, name: str, clk, pause_prob: float = 0.0, seed: int = 2):
        super().__init__(dut, name, clk, pause_prob, seed)
        self.words: list[int] = []
        self.cycles: list[int] = []  # cycle index of each received beat
        self.ready.value = 0
        self._cycle = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        self.ready.value = 0 if next(self.pauses) else 1
        while True:
            await RisingEdge(self.clk)
            self._cycle += 1
            if int(self.ready.value) and int(self.valid.value):
                self.words.append(int(self.payload.value))
                self.cycles.append(self._cycle)
            self.ready.value = 0 if next(self.pauses) else 1

    async def wait_for(self, n: int, timeout_cycles: int = 1_000_000):
        waited = 0
        while len(self.words) < n:
            await RisingEdge(self.clk)
            waited += 1
            if waited > timeout_cycles:
                raise TimeoutError(f"sink got {len(self.words)} of {n} beats in {timeout_cycles} cycles")
        return self.words[:n]


# ---------------------------------------------------------------------------------------------------------------
# the whole-accelerator testbench


@dataclass
class TBResult:
    """What :meth:`RtlgenTB.run` saw: ``outputs`` (int64 ``[frames, values]``, the hardware's output codes),
    ``expected`` (the golden model's, or ``None`` without a scoreboard), ``mismatches`` (indices of differing
    frames), ``first_in`` / ``last_out`` (cycle of each frame's first input beat / last output beat, counted from the
    start of the run), ``cycles`` (the run's length)."""

    outputs: object
    expected: object
    mismatches: list
    first_in: list
    last_out: list
    cycles: int
    extra_beats: int = 0
    words: list = field(default_factory=list)

    @property
    def cycles_per_frame(self) -> float | None:
        """Mean spacing of the last output beats after the first two frames (after the first with 2-3 frames)."""
        n = len(self.last_out)
        if n >= 4:
            return (self.last_out[-1] - self.last_out[1]) / (n - 2)
        if n >= 2:
            return (self.last_out[-1] - self.last_out[0]) / (n - 1)
        return None

    @property
    def latency_cycles(self) -> int:
        return int(self.last_out[0] - self.first_in[0] + 1)


class RtlgenTB:
    """Testbench of a generated ``rtlgen_top`` (see the module docstring for an example).

    ``build_dir``: the rtlgen build folder (manifest, model and weight image; default ``$RTLGEN_BUILD_DIR``);
    ``clock_period_ns``: the clock started on ``dut.clk``; ``scoreboard``: check outputs against the golden model
    (needs the model; off: raw outputs only); ``manifest``: a manifest dict instead of the build folder's (then no
    golden model and no weight image)."""

    def __init__(self, dut, build_dir=None, *, clock_period_ns: float = 4, scoreboard: bool = True,
                 manifest: dict | None = None, start_clock: bool = True):
        import json

        from cocotb.clock import Clock

        self.dut = dut
        self.log = dut._log
        self.clk = dut.clk
        bd = build_dir if build_dir is not None else os.environ.get("RTLGEN_BUILD_DIR")
        self.build_dir = Path(bd).resolve() if bd else None
        if manifest is None:
            if self.build_dir is None:
                raise ValueError("RtlgenTB needs the build folder (argument or $RTLGEN_BUILD_DIR) or a manifest")
            manifest = json.loads((self.build_dir / "rtl" / "manifest.json").read_text())
        self.manifest = manifest
        self.net = None
        self.report = None
        if scoreboard and self.build_dir is not None:
            from .harness import load_design

            self.net, self.report, _ = load_design(self.build_dir)
        # the frames' pixel shape (an input fold streams the same bytes in wider beats: manifest "shape")
        self.input_shape = tuple(manifest["input"].get("pixel_shape", manifest["input"]["shape"]))
        self.has_wload = hasattr(dut, "wload__valid")
        self._idle = itertools.repeat(False)
        self._backpressure = itertools.repeat(False)
        self.load_cycles = None
        if start_clock:
            cocotb.start_soon(Clock(self.clk, clock_period_ns, unit="ns").start())
        self.dut.i__valid.value = 0
        self.dut.o__ready.value = 0
        if self.has_wload:
            self.dut.wload__valid.value = 0

    # -- pause generators (cocotbext-axi style: an iterable of truthy = pause this cycle; None = never) --------------
    def set_idle_generator(self, generator=None):
        """Input idle cycles: ``valid`` is withheld on cycles where ``next(generator)`` is truthy."""
        self._idle = iter(generator) if generator is not None else itertools.repeat(False)

    def set_backpressure_generator(self, generator=None):
        """Output backpressure: ``o__ready`` is low on cycles where ``next(generator)`` is truthy."""
        self._backpressure = iter(generator) if generator is not None else itertools.repeat(False)

    # -- reset and weight load ----------------------------------------------------------------------------------------
    async def reset(self, cycles: int = 4, load_weights: bool = True):
        """Synchronous active-high reset for ``cycles`` cycles, one idle edge, then the weight image if any."""
        self.dut.rst.value = 1
        self.dut.i__valid.value = 0
        self.dut.o__ready.value = 0
        await ClockCycles(self.clk, cycles)
        self.dut.rst.value = 0
        await RisingEdge(self.clk)
        if self.has_wload and load_weights:
            self.load_cycles = await self.load_weights()

    def weight_words(self) -> list[int]:
        """The ``wload`` beats of the build's weight image (``weights/weights.bin``)."""
        import json

        d = self.build_dir / "weights"
        info = json.loads((d / "weights.json").read_text())
        data = (d / "weights.bin").read_bytes()
        n, wb = int(info["words"]), int(info["word_bytes"])
        if len(data) != n * wb:
            raise ValueError(f"{d / 'weights.bin'}: {len(data)} bytes, expected {n} words x {wb} bytes")
        return [int.from_bytes(data[k * wb:(k + 1) * wb], "little") for k in range(n)]

    async def load_weights(self, words=None) -> int:
        """Send the weight image on ``wload`` (input idle generator applies); returns the cycles it took."""
        words = self.weight_words() if words is None else list(words)
        dut = self.dut
        valid, ready, payload = dut.wload__valid, dut.wload__ready, dut.wload__payload
        mask = (1 << len(payload)) - 1
        k, cyc, presenting = 0, 0, False
        limit = 100 * len(words) + 10_000
        while k < len(words):
            if not presenting and not next(self._idle):
                payload.value = words[k] & mask
                valid.value = 1
                presenting = True
            await RisingEdge(self.clk)
            cyc += 1
            if presenting and int(ready.value):
                k += 1
                presenting = False
                valid.value = 0
            if cyc > limit:
                raise TimeoutError(f"weight load stalled: {k} of {len(words)} words accepted in {cyc} cycles")
        await RisingEdge(self.clk)
        cyc += 1
        if not int(dut.weights_loaded.value):
            raise AssertionError("weights_loaded low after the whole weight image was accepted")
        return cyc

    # -- driver + monitor + scoreboard ------------------------------------------------------------------------------
    def frame_words(self, pixels) -> list[int]:
        """uint8 ``[N, H, W, C]`` frames -> input payload integers (one pixel per beat, ``last`` per frame)."""
        from .beats import as_input_frames, frame_beats

        return [int(w) for w in frame_beats(as_input_frames(pixels, self.manifest)).reshape(-1)]

    def expected(self, pixels):
        """The golden model's output codes for ``pixels`` (``None`` without a scoreboard)."""
        if self.net is None:
            return None
        from .. import golden

        return golden.run(self.net, pixels)

    async def stream(self, words, n: int, max_cycles: int, idle_after: int = 64) -> dict:
        """Drive the input payload integers ``words`` (``n`` frames, back to back) and consume the output until ``n``
        frames came out or ``max_cycles`` passed. One coroutine drives the input and consumes the output in the same
        clock loop (cheaper than two); ``valid`` stays up with a stable payload until accepted; the pause generators
        apply. After the last expected beat, ``idle_after`` more cycles with ready high must bring no further output
        beat (counted). Returns ``{"outs", "first_in", "last_out", "cycles", "extra_beats", "timeout"}`` (cycle
        stamps of each frame's first input beat and last output beat, counted from the start of the stream)."""
        obpf = self.manifest["output"]["beats_per_frame"]
        beats = len(words) // n
        dut = self.dut
        i_valid, i_ready, i_payload = dut.i__valid, dut.i__ready, dut.i__payload
        o_valid, o_ready, o_payload = dut.o__valid, dut.o__ready, dut.o__payload
        idle, bp = self._idle, self._backpressure
        edge = RisingEdge(self.clk)
        total_in, total_out = len(words), n * obpf
        k, presenting, cyc, rdy_prev = 0, False, 0, None
        outs: list[int] = []
        first_in: list = [None] * n
        last_out: list = [None] * n
        while len(outs) < total_out:
            if not presenting and k < total_in and not next(idle):
                i_payload.value = int(words[k])
                i_valid.value = 1
                presenting = True
            rdy = 0 if next(bp) else 1
            if rdy != rdy_prev:  # a write only when it changes
                o_ready.value = rdy
                rdy_prev = rdy
            await edge
            cyc += 1
            if presenting and i_ready.value:
                f = k // beats
                if first_in[f] is None:
                    first_in[f] = cyc
                k += 1
                presenting = False
                i_valid.value = 0
            if rdy and o_valid.value:
                outs.append(int(o_payload.value))
                if len(outs) % obpf == 0:
                    last_out[len(outs) // obpf - 1] = cyc
            if cyc > max_cycles:
                break
        o_ready.value = 1
        extra = 0
        for _ in range(idle_after):
            await edge
            if o_valid.value:
                extra += 1
        return {"outs": outs, "first_in": first_in, "last_out": last_out, "cycles": cyc, "extra_beats": extra,
                "timeout": cyc > max_cycles}

    async def run(self, pixels, max_cycles: int | None = None, idle_after: int = 64) -> TBResult:
        """Stream ``pixels`` (uint8 ``[N, H, W, C]``) back to back (:meth:`stream`), collect ``N`` output frames,
        score them against the golden model."""
        import numpy as np

        from .beats import unpack_beats

        o = self.manifest["output"]
        obpf = o["beats_per_frame"]
        n = len(pixels)
        words = self.frame_words(pixels)
        expect = self.expected(pixels)
        if max_cycles is None:
            cpf = (self.report or {}).get("cycles_per_frame", 100_000)
            max_cycles = int(50 * cpf * (n + 4) + 200_000)
        r = await self.stream(words, n, max_cycles, idle_after)
        outs, cyc, extra = r["outs"], r["cycles"], r["extra_beats"]
        first_in, last_out = r["first_in"], r["last_out"]
        if r["timeout"]:
            raise TimeoutError(f"{len(outs)} of {n * obpf} output beats after {cyc} cycles (deadlock?)")
        w = np.array([[(x >> (32 * j)) & 0xFFFFFFFF for j in range((o["lanes"] * o["width"] + 32) // 32)]
                      for x in outs], dtype=np.uint64).astype(np.uint32)
        vals, last = unpack_beats(w.reshape(n, obpf, -1), o["lanes"], o["width"], o["signed"])
        want = np.zeros((n, obpf), dtype=bool)
        want[:, -1] = True
        if not np.array_equal(last, want):
            raise AssertionError("'last' flag misplaced on the output stream")
        got = vals.reshape(n, obpf * o["lanes"])[:, : o["values"]]
        mism = [] if expect is None else [int(f) for f in np.nonzero(np.any(got != expect, axis=1))[0]]
        if mism:
            self.log.error("scoreboard: %d of %d frames differ from the golden model (first: frame %d)", len(mism), n,
                           mism[0])
        return TBResult(got, expect, mism, first_in, last_out, cyc, extra, outs)
