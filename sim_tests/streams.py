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


def input_frames(layer, n: int, seed: int) -> list:
    """``n`` random input frames of an IR layer (its input range), every third one (k = 1, 4, ...) an extreme frame:
    all at the maximum, then all at the minimum, alternately."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lo, hi = layer.in_q.lo, layer.in_q.hi
    out = []
    for k in range(n):
        if k % 3 == 1:
            out.append(np.full(layer.in_shape, hi if (k // 3) % 2 == 0 else lo, dtype=np.int64))
        else:
            out.append(rng.integers(lo, hi + 1, layer.in_shape))
    return out


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


# -- the core benches' one TB (conv, depthwise conv, window generator): cocotbext-axi style, scenarios below ----------

class CoreInst:
    """One core of a bench bundle (ports ``<name>_<port>``): its input source ``<name>_i`` and output sink
    ``<name>_o`` under random pauses, any further sources / sinks a subclass adds to :attr:`sources` / :attr:`sinks`,
    and the cycle (one count for both) of its first accepted input and first accepted output beat.

    Subclasses set ``core`` (``cycles_per_frame()``; ``latency`` where measured), ``out_beats`` (output beats per
    frame), :attr:`cycle_tol` and implement ``frames(n, seed)`` (the arguments of ``feed``), ``feed(...)`` (start the
    sources) and ``check(what)`` (every output beat against the golden reference: nothing lost, duplicated,
    reordered)."""

    #: cycles/frame: measured vs the core's model (a function of the model)
    cycle_tol = staticmethod(lambda model: 1)

    def __init__(self, dut, name: str, pause: float, seeds: int = 0):
        import cocotb

        self.name, self.dut = name, dut
        self.src = StreamSource(dut, f"{name}_i", dut.clk, pause, seed=seeds + 1)
        self.sink = StreamSink(dut, f"{name}_o", dut.clk, pause, seed=seeds + 3)
        self.sources, self.sinks, self.tasks = [self.src], [self.sink], []
        self.first_in = self.first_out = None
        cocotb.start_soon(self._watch_first_beats())

    def add_source(self, port: str, pause: float, seed: int):
        s = StreamSource(self.dut, f"{self.name}_{port}", self.dut.clk, pause, seed=seed)
        self.sources.append(s)
        return s

    def add_sink(self, port: str, pause: float, seed: int):
        s = StreamSink(self.dut, f"{self.name}_{port}", self.dut.clk, pause, seed=seed)
        self.sinks.append(s)
        return s

    async def _watch_first_beats(self):
        from cocotb.triggers import RisingEdge

        n = 0
        while self.first_out is None:
            await RisingEdge(self.dut.clk)
            n += 1
            if self.first_in is None and int(self.src.valid.value) and int(self.src.ready.value):
                self.first_in = n
            if self.first_in is not None and int(self.sink.valid.value) and int(self.sink.ready.value):
                self.first_out = n

    @property
    def latency_measured(self):
        """First input -> first output handshake, in cycles (None before the first output)."""
        return None if self.first_out is None else self.first_out - self.first_in

    @property
    def latency_model(self):
        return getattr(self.core, "latency", None)

    def send(self, source, words):
        self.tasks.append(source.start(words))

    async def wait(self, n_frames: int, cycles_per_frame_factor: int):
        await self.sink.wait_for(n_frames * self.out_beats,
                                 cycles_per_frame_factor * n_frames * self.core.cycles_per_frame() + 20_000)

    def abort(self):
        """Stop feeding (the sources' coroutines cancelled, ``valid`` low) and forget what came out."""
        for t in self.tasks:
            t.cancel()
        self.tasks.clear()
        for s in self.sources:
            s.valid.value = 0

    def forget_output(self):
        for s in self.sinks:
            s.words.clear()
            s.cycles.clear()


class CoreBench:
    """The cocotb side of a core bundle: the clock (4 ns), the active-high reset and one :class:`CoreInst` per case of
    the run's config (``sim_config()["cases"]``: name -> spec; ``"seed"``: the layers' seed, 0 if absent), made by ``make(dut, name, spec, seed, pause, seeds)``
    with input idle / output backpressure probability ``pause``."""

    def __init__(self, dut, make, pause: float, seeds: int = 0):
        from rtlgen.verify.runner import sim_config

        self.dut, self.cfg = dut, sim_config()
        hold_reset(dut)
        self.insts = [make(dut, n, spec, self.cfg.get("seed", 0), pause, seeds + 10 * k)
                      for k, (n, spec) in enumerate(self.cfg["cases"].items())]

    async def reset(self, cycles: int = 3):
        self.dut.rst.value = 1
        await release_reset(self.dut, cycles)

    async def settle(self, cycles: int):
        from cocotb.triggers import ClockCycles

        await ClockCycles(self.dut.clk, cycles)


async def frames_under_pauses(bench: CoreBench, n_frames: int, settle: int = 200):
    """Scenario: ``n_frames`` back to back on every core under the bench's random pauses; every beat bit-exact."""
    await bench.reset()
    for k, inst in enumerate(bench.insts):
        inst.feed(*inst.frames(n_frames, 100 + k))
    for inst in bench.insts:
        await inst.wait(n_frames, 400)
    await bench.settle(settle)
    for inst in bench.insts:
        inst.check("under pauses")


async def throughput_matches_model(bench: CoreBench, n_frames: int = 4):
    """Scenario (a bench without pauses): four frames back to back; the steady-state cycles per frame and the latency
    (first input -> first output beat) equal each core's cycle model (:func:`cycle_model_errors`)."""
    await bench.reset()
    for k, inst in enumerate(bench.insts):
        inst.feed(*inst.frames(n_frames, 200 + k))
    for inst in bench.insts:
        await inst.wait(n_frames, 20)
    await bench.settle(100)
    errors = []
    for inst in bench.insts:
        inst.check("back to back")
        model, lat = inst.core.cycles_per_frame(), inst.latency_model
        errors += cycle_model_errors(bench.dut, inst.name, inst.sink.cycles, inst.out_beats, model,
                                     inst.cycle_tol(model), inst.latency_measured if lat is not None else None, lat)
    assert not errors, errors


async def reset_mid_frame(bench: CoreBench):
    """Scenario: two frames started, a reset half a frame in, then one clean frame that must come out exactly."""
    await bench.reset()
    for k, inst in enumerate(bench.insts):
        inst.feed(*inst.frames(2, 300 + k))
    await bench.settle(min(i.core.cycles_per_frame() for i in bench.insts) // 2)
    for inst in bench.insts:
        inst.abort()
    await bench.reset(2)
    for k, inst in enumerate(bench.insts):
        inst.forget_output()
        inst.feed(*inst.frames(1, 400 + k))
    for inst in bench.insts:
        await inst.wait(1, 400)
    await bench.settle(100)
    for inst in bench.insts:
        inst.check("after a reset mid-frame")


def scenario_tests(make, module: str, settle: int = 200):
    """The three scenarios above as cocotb tests of bench module ``module`` (assign them to module-level names there:
    cocotb discovers tests among a module's globals): ``frames_under_pauses`` (pauses 0.3 on every port),
    ``throughput_matches_model`` (no pauses), ``reset_mid_frame`` (pauses 0.2), each on a fresh :class:`CoreBench` of
    instances made by ``make``."""
    import cocotb

    async def frames_under_pauses_test(dut):
        bench = CoreBench(dut, make, 0.3)
        await frames_under_pauses(bench, bench.cfg["frames"], settle=settle)

    async def throughput_matches_model_test(dut):
        await throughput_matches_model(CoreBench(dut, make, 0.0))

    async def reset_mid_frame_test(dut):
        await reset_mid_frame(CoreBench(dut, make, 0.2, seeds=5))

    tests = []
    for f in (frames_under_pauses_test, throughput_matches_model_test, reset_mid_frame_test):
        f.__module__, f.__name__ = module, f.__name__.removesuffix("_test")
        f.__qualname__ = f.__name__
        tests.append(cocotb.test()(f))
    return tests
