"""Window generator (cores/linebuffer.py) against its pure-Python reference, with cocotb + Verilator.

The cases are compiled into one Verilator build (``test_conv.Bundle``) and four cocotb tests run on all of them at
once: several frames under random valid/ready pauses
(window beats and the centre stream bit-exact), back-to-back frames without stalls (measured cycles per frame vs the
cycle model, within 2 %), a reset in the middle of a frame followed by a clean frame, and malformed frames (``last``
early / late) between good ones (every output frame full length, good frames bit-exact).
"""

from __future__ import annotations

from pathlib import Path

import cocotb
import numpy as np
import pytest

from rtlgen.cores.linebuffer import WindowGen, window_layout
from rtlgen.cores.stream import beats_to_frame, frame_to_beats
from rtlgen.verify.runner import run_cocotb
from rtlgen.emit.verilog import write_verilog

HERE = Path(__file__).parent


def _gen(cfg):
    return WindowGen(**cfg["params"])


def _frames(cfg, n, seed):
    p = cfg["params"]
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, size=(p["H"], p["W"], p["C"])) for _ in range(n)]


def _pack_ref(gen, beat):
    """(word, mask) of one expected window beat."""
    word = mask = 0
    for i, v in enumerate(beat["data"]):
        if v is not None:
            word |= (v & 0xFF) << (8 * i)
            mask |= 0xFF << (8 * i)
    pos = gen.pix * gen.T * gen.lanes * 8
    for k, f in enumerate(("first", "wlast", "pfirst", "plast", "flast", "p1")):
        word |= beat[f] << (pos + k)
        mask |= 1 << (pos + k)
    return word, mask


def _check(gen, got, frames, what=""):
    exp = [_pack_ref(gen, b) for f in frames for b in gen.reference(f)]
    assert len(got) == len(exp), f"{what}: {len(got)} beats, expected {len(exp)}"
    for k, (w, (e, msk)) in enumerate(zip(got, exp)):
        assert (w & msk) == e, f"{what}: beat {k} of {len(exp)}: got {w:#x} expected {e:#x} (mask {msk:#x})"


def _check_centre(gen, words, frames):
    n = gen.Ho * gen.Wo * gen.G
    assert len(words) == n * len(frames)
    for k, f in enumerate(frames):
        got = beats_to_frame(words[k * n:(k + 1) * n], (gen.Ho, gen.Wo, f.shape[2]), gen.lanes, signed=False)
        np.testing.assert_array_equal(got, gen.reference_centre(f))


from streams import CoreBench, CoreInst, scenario_tests  # noqa: E402  (sim_tests is on the path of both sides)


class _Inst(CoreInst):
    """A window generator (``<name>_i``, ``<name>_o``, ``<name>_centre`` where it has one)."""

    def __init__(self, dut, name, params, seed, pause, seeds=0):
        super().__init__(dut, name, pause, seeds)
        self.core = self.gen = WindowGen(**params)
        self.params = params
        self.csink = self.add_sink("centre", pause, seeds + 4) if self.gen.centre_out else None

    @property
    def out_beats(self):
        return self.gen.window_beats_per_frame()

    def frames(self, n, seed):
        return (_frames({"params": self.params}, n, seed),)

    def feed(self, xs, words=None):
        """Frames ``xs`` (the expected windows); ``words``: other input beats (malformed framing) instead of theirs."""
        self.xs = xs
        self.send(self.src, words if words is not None else
                  [w for f in xs for w in frame_to_beats(f, self.gen.lanes)])

    def check(self, what=""):
        _check(self.gen, self.sink.words, self.xs, f"{self.name} {what}")
        if self.csink is not None:
            _check_centre(self.gen, self.csink.words, self.xs)


# the shared scenarios (sim_tests/streams.py): frames_under_pauses, throughput_matches_model, reset_mid_frame
frames_under_pauses, throughput_matches_model, reset_mid_frame = scenario_tests(_Inst, __name__, settle=50)


def _beats(gen, frame):
    """The frame's input beats as a ``[H*W*G, lanes]`` array (tail lanes zero), masked to 8 bits."""
    H, W, C = frame.shape
    full = np.zeros((H, W, gen.G * gen.lanes), dtype=np.int64)
    full[..., :C] = np.asarray(frame) & 0xFF
    return full.reshape(H * W * gen.G, gen.lanes)


def _short_expected(gen, frame, k):
    """A frame cut after ``k`` beats (``last`` on beat k-1) is completed with ``pad_value`` beats: the equivalent
    full-lane frame (``C = G*lanes`` channels, so the tail lanes of the filled beats carry the pad value too)."""
    b = _beats(gen, frame)
    b[k:] = gen.pad_value
    return b.reshape(gen.H, gen.W, gen.G * gen.lanes)


@cocotb.test()
async def malformed_frames(dut):
    """Frame boundaries come from ``last``: good, short (last early), good, long (excess beats), good, 1-beat, good
    frames under random pauses. Every output frame is full length with its flags; good frames are bit-exact, the
    short ones equal the frame completed with pad values, the long one its first H*W*G beats."""
    bench = CoreBench(dut, _Inst, 0.3, seeds=7)
    await bench.reset()
    rng = np.random.default_rng(77)
    plans, n_words = [], {}
    for k, inst in enumerate(bench.insts):
        g = inst.gen
        hwg = g.H * g.W * g.G
        (frames,) = inst.frames(7, 90 + k)
        k_short = int(rng.integers(1, hwg)) if hwg > 1 else 1
        extra = int(rng.integers(1, hwg + 2))
        words, exp = [], []
        for j, f in enumerate(frames):
            w = frame_to_beats(f, g.lanes)
            if j == 1 or j == 5:  # short: last on beat k-1
                kk = k_short if j == 1 else 1
                w = w[:kk]
                w[-1] |= 1 << (g.lanes * 8)
                exp.append(_short_expected(g, f, kk))
            elif j == 3:  # long: no last on beat hwg-1, `extra` more beats, the final one with last
                w[-1] &= ~(1 << (g.lanes * 8))
                w += [int.from_bytes(bytes(b.tolist()), "little")  # any lane count (8 lanes = 64 bits)
                      for b in rng.integers(0, 256, size=(extra, g.lanes), dtype=np.uint8)]
                w[-1] |= 1 << (g.lanes * 8)
                exp.append(f)
            else:
                exp.append(f)
            words += w
        inst.feed(exp, words)
        plans.append((k_short, extra))
        n_words[inst.name] = len(words)
    for inst in bench.insts:
        await inst.wait(len(inst.xs), 400)
    await bench.settle(50)
    for inst, (ks, ex) in zip(bench.insts, plans):
        inst.check(f"malformed (short {ks} beats, long +{ex})")
        assert inst.src.sent == n_words[inst.name], f"{inst.name}: {inst.src.sent} of {n_words[inst.name]} beats taken"


CASES = {
    # name: (WindowGen params, frames under pauses)
    "k3s1_same_pix2_centre_tail": dict(H=5, W=4, C=5, lanes=2, K=3, stride=1, pad_value=-3, repeats=2, pix=2,
                                       centre=True),
    "k5s2_w1_pix1": dict(H=6, W=1, C=3, lanes=4, K=5, stride=2, pad_value=7, repeats=1, pix=1, centre=True),
    "k1s2_pix2_odd": dict(H=5, W=5, C=4, lanes=4, K=1, stride=2, pads=(0, 0, 0, 0), repeats=3, pix=2, centre=True),
    "k3s2_valid_asym_pix2": dict(H=7, W=6, C=2, lanes=1, K=3, stride=2, pads=(0, 1, 1, 0), repeats=1, pix=2),
    "k7s2_stem": dict(H=9, W=8, C=3, lanes=3, K=7, stride=2, pad_value=0, repeats=1, pix=1),
    "k3s1_wide_rows": dict(H=4, W=12, C=8, lanes=8, K=3, stride=1, repeats=1, pix=1),
    # tap parallelism: T taps of every pixel per beat (tap groups; a partial last group has dummy slots)
    "k3s1_tap9_pix2_centre": dict(H=5, W=4, C=5, lanes=2, K=3, stride=1, pad_value=-3, repeats=2, pix=2,
                                  centre=True, tap=9),
    "k3s2_tap4_pix2_asym_centre": dict(H=7, W=6, C=3, lanes=1, K=3, stride=2, pads=(0, 1, 1, 0), repeats=2, pix=2,
                                       centre=True, tap=4),
    "k5s1_tap5_pix1": dict(H=6, W=5, C=4, lanes=4, K=5, stride=1, pad_value=5, repeats=1, pix=1, tap=5),
    "k3s1_tap2_pix2_rows": dict(H=4, W=9, C=16, lanes=8, K=3, stride=1, repeats=1, pix=2, tap=2),
    # one beat per pixel group: the group-descriptor pipeline shifts every cycle (pixel pairs spanning rows, W = 1)
    "k1s1_one_beat_groups": dict(H=3, W=5, C=2, lanes=2, K=1, stride=1, pads=(0, 0, 0, 0), pix=1),
    "k3s1_w1_tap9_pix2_one_beat": dict(H=5, W=1, C=1, lanes=1, K=3, stride=1, pix=2, tap=9, pad_value=9),
    # unequal strides (vertical, horizontal): the folded stem of several pixels per input beat (rtlgen.plan.fold)
    "k3s21_fold_pix2_tap3": dict(H=7, W=5, C=6, lanes=6, K=3, stride=(2, 1), pads=(1, 2, 1, 0), pad_value=4,
                                 repeats=2, pix=2, tap=3),
    "k3s12_pix1_centre": dict(H=5, W=7, C=3, lanes=2, K=3, stride=(1, 2), repeats=1, pix=1, centre=True),
}
DEFAULT = ["k3s1_same_pix2_centre_tail", "k5s2_w1_pix1", "k1s2_pix2_odd", "k3s2_valid_asym_pix2",
           "k3s1_tap9_pix2_centre", "k3s2_tap4_pix2_asym_centre", "k1s1_one_beat_groups",
           "k3s1_w1_tap9_pix2_one_beat", "k3s21_fold_pix2_tap3", "k3s12_pix1_centre"]


def _run(names, tmp_path, pause=0.3, frames=2):
    from test_conv import Bundle

    cases = {n: CASES[n] for n in names}
    v = write_verilog(Bundle({n: WindowGen(**p) for n, p in cases.items()}), "window_gens", tmp_path / "wg.v")
    run_cocotb([v], "window_gens", "test_linebuffer", HERE, tmp_path / "build",
               config={"cases": cases, "pause": pause, "frames": frames})


def test_window_gens(tmp_path):
    """All default cases in one Verilator build."""
    _run(DEFAULT, tmp_path)


@pytest.mark.slow
def test_window_gens_more(tmp_path):
    _run([n for n in CASES if n not in DEFAULT], tmp_path)


def test_window_gen_model_depth():
    """The buffer holds K-1 rows plus a few pixels (stride 1), one more row at stride 2."""
    g = WindowGen(H=32, W=32, C=16, lanes=4, K=3, stride=1, pix=1)
    assert g.depth == 2 * 32 + 3 + 4
    assert g.DG == g.depth * 4
    g2 = WindowGen(H=32, W=32, C=16, lanes=4, K=3, stride=2, pix=2)
    assert g2.depth == 3 * 32 + 3 + 10
    layout = window_layout(4, 2)
    assert layout.size == 2 * 4 * 8 + 6


def test_window_gen_tap_groups():
    """Tap parallelism: ceil(K*K/T) tap groups per emission, T slots per pixel in every beat, dummy slots padded."""
    g = WindowGen(H=6, W=6, C=8, lanes=4, K=3, pix=2, tap=4, repeats=3)
    assert (g.T, g.NTG, g.beats_per_group) == (4, 3, 3 * 3 * 2)
    assert g.window_beats_per_frame() == 18 * 3 * 3 * 2
    assert len(g.o.payload.data) == 2 * 4 * 4 * 8
    frame = np.arange(6 * 6 * 8).reshape(6, 6, 8) % 256
    beats = g.reference(frame)
    assert len(beats) == g.window_beats_per_frame()
    # beat 4 = tap group 2 (taps 8, dummy, dummy, dummy), channel group 0, pixel 0 at (0, 0): tap 8 is (1, 1) -> input (1, 1)
    b = beats[4]
    assert b["data"][:4] == [int(v) for v in frame[1, 1, 0:4]]
    assert b["data"][4:16] == [g.pad_value] * 12
    assert b["wlast"] == 0 and beats[5]["wlast"] == 1
    with pytest.raises(ValueError):
        WindowGen(H=6, W=6, C=8, lanes=4, K=3, tap=10)


@pytest.mark.parametrize("name", list(CASES))
def test_window_gen_descriptor_model(name):
    """The hardware's reset values and tables come from the pipeline model (``_gdesc``, ``_beat``): its ``need`` and
    ``oldest`` equal the geometry model's, and every beat's read addresses hold the pixel, tap and channel group that
    :meth:`WindowGen.reference` puts there (buffer word ``(frame*H*W + y*W + x)*G + g`` mod ``DG``), or are padding."""
    g = WindowGen(**CASES[name])
    HWG = g.H * g.W * g.G
    groups = g._groups()
    for k in range(2 * g.NP + 1):  # two frames and one more group: the frame base moves on
        f, j = divmod(k, g.NP)
        d = g._gdesc(k)
        assert d["need1"] + 1 == g._need(*groups[j][-1]) * g.G
        assert d["oldest"] == g._oldest(*groups[j][0]) * g.G
        assert all(0 <= a < g.DG for a in d["aorg"])
        nxt = groups[j + 1][0] if j + 1 < g.NP else None
        assert g._dold(k) == (g._oldest(*nxt) * g.G if nxt else HWG) - d["oldest"]
    for n in range(2 * g.window_beats_per_frame() + 3):
        b = g._beat(n)
        f, j = divmod(b["k"], g.NP)
        for q, (ro, co) in enumerate(groups[j]):
            for jj, (_, _, _, ky, kx) in enumerate(g.tap_slots()[b["tg"] * g.T:(b["tg"] + 1) * g.T]):
                inside = ky is not None and 0 <= ro + ky < g.H and 0 <= co + kx < g.W
                assert b["pad"][q][jj] == int(not inside)
                if inside:
                    word = (f * HWG + ((ro + ky) * g.W + co + kx) * g.G + b["g"]) % g.DG
                    assert b["addr"][q][jj] == word, (n, q, jj)
