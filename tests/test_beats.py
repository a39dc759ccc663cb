"""rtlgen.verify.beats, the one beat packer: its integer and word forms agree with a plain bit-by-bit reference (any
lane width up to 64, several lanes straddling 32-bit words), and a misplaced ``last`` flag is one RtlgenError line."""

import numpy as np
import pytest

from rtlgen.errors import RtlgenError
from rtlgen.verify import beats


def _ref_pack(values, width, last=None):
    out = 0
    for i, v in enumerate(values):
        out |= (int(v) & ((1 << width) - 1)) << (i * width)
    if last is not None:
        out |= int(bool(last)) << (len(values) * width)
    return out


@pytest.mark.parametrize("width,lanes", [(8, 3), (8, 16), (32, 3), (17, 5), (64, 2), (1, 40)])
def test_pack_unpack_match_the_reference(width, lanes):
    rng = np.random.default_rng(width * 100 + lanes)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    vals = rng.integers(lo, hi, size=(20, lanes), endpoint=True, dtype=np.int64)
    last = rng.random(20) < 0.5
    words = beats.pack_beats(vals, width, last)
    ints = beats.ints_from_words(words)
    assert ints == [_ref_pack(v, width, l_) for v, l_ in zip(vals, last)]
    assert np.array_equal(beats.words_from_ints(ints, words.shape[-1]), words)
    back, blast = beats.unpack_beats(words, lanes, width, signed=True)
    assert np.array_equal(back, vals) and np.array_equal(blast, last)
    for v in vals[:4]:
        word = beats.pack(v, width)
        assert word == _ref_pack(v, width)
        assert beats.unpack(word, width, lanes, signed=True) == [int(x) for x in v]


def test_frame_beats_and_outputs():
    px = np.random.default_rng(1).integers(0, 256, size=(3, 4, 5, 3), dtype=np.uint8)
    fb = beats.frame_beats(px)
    assert fb.shape == (3, 20) and fb.dtype == np.uint64
    for n in range(3):
        for k in range(20):
            y, x = divmod(k, 5)
            assert int(fb[n, k]) == _ref_pack(px[n, y, x], 8, k == 19)
    man = {"output": {"lanes": 4, "width": 8, "values": 10, "beats_per_frame": 3, "signed": True}}
    vals = np.random.default_rng(2).integers(-128, 128, size=(2, 12))
    outs = [_ref_pack(vals[f, 4 * b:4 * b + 4], 8, b == 2) for f in range(2) for b in range(3)]
    assert np.array_equal(beats.decode_outputs(outs, man, 2), vals[:, :10])
    outs[1] |= 1 << 32  # 'last' on beat 1 of frame 0
    with pytest.raises(RtlgenError, match="frame 0: 'last' flag misplaced on output beat 1"):
        beats.decode_outputs(outs, man, 2)
