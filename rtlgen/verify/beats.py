"""The one beat packer: frames and lane values <-> stream beats (``lanes`` values of ``width`` bits, lane 0 in the
least significant bits, then the ``last`` flag), for every bench: the compiled harness (little-endian 32-bit words,
any payload width), the cocotb benches (Python integers, one per beat) and the reusable TB.

* :func:`pack_beats` / :func:`unpack_beats` -- lane values + ``last`` <-> uint32 words ``[..., W]`` (vectorised);
* :func:`input_words`, :func:`decode_output_words` -- a build's input frames / output beats (manifest ports);
* :func:`ints_from_words`, :func:`words_from_ints` -- the same beats as Python integers;
* :func:`frame_beats`, :func:`decode_outputs` -- input frames / output beats as integers (the cocotb benches);
* :func:`pack`, :func:`unpack` -- one beat's lanes (no ``last``) as one integer.

(``rtlgen.cores.stream.frame_to_beats`` is the stream contract of a single core, for the cores' own unit benches.)
"""

from __future__ import annotations

import numpy as np

from ..errors import RtlgenError

__all__ = ["as_input_frames", "words_for", "pack_beats", "unpack_beats", "input_words", "decode_output_words", "ints_from_words",
           "words_from_ints", "frame_beats", "decode_outputs", "pack", "unpack"]


def words_for(bits: int) -> int:
    return max(1, (bits + 31) // 32)


def pack_beats(values: np.ndarray, width: int, last: np.ndarray) -> np.ndarray:
    """``values[..., lanes]`` (ints, taken modulo 2**width) and ``last[...]`` (bool) -> uint32 words ``[..., W]`` with
    lane ``l`` at bits ``[l*width, (l+1)*width)`` and ``last`` at bit ``lanes*width`` (Verilator's word order)."""
    *lead, lanes = values.shape
    nw = words_for(lanes * width + 1)
    words = np.zeros((*lead, nw), dtype=np.uint64)
    mask = np.uint64((1 << width) - 1)

    def place(v: np.ndarray, bit: int):
        w, s = divmod(bit, 32)
        words[..., w] |= (v << np.uint64(s)) & np.uint64(0xFFFFFFFF)
        rest = v >> np.uint64(32 - s) if s else v >> np.uint64(32)
        while np.any(rest) and w + 1 < nw:  # a lane straddling word boundaries (or wider than 32 bits)
            w += 1
            words[..., w] |= rest & np.uint64(0xFFFFFFFF)
            rest = rest >> np.uint64(32)

    if width > 64:
        raise RtlgenError(f"lane width {width} > 64 bits is not supported by the harness packer")
    vals = values.astype(np.int64).view(np.uint64) & mask if width < 64 else values.astype(np.int64).view(np.uint64)
    for ln in range(lanes):
        place(np.ascontiguousarray(vals[..., ln]), ln * width)
    place(last.astype(np.uint64), lanes * width)
    return words.astype(np.uint32)


def unpack_beats(words: np.ndarray, lanes: int, width: int, signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_beats`: uint32 ``[..., W]`` -> (int64 ``[..., lanes]``, bool ``last[...]``)."""
    w64 = words.astype(np.uint64)
    nw = w64.shape[-1]

    def field(bit: int, n: int) -> np.ndarray:
        out = np.zeros(w64.shape[:-1], dtype=np.uint64)
        got = 0
        while got < n:
            w, s = divmod(bit + got, 32)
            take = min(32 - s, n - got)
            if w < nw:
                chunk = (w64[..., w] >> np.uint64(s)) & np.uint64((1 << take) - 1)
                out |= chunk << np.uint64(got)
            got += take
        return out

    vals = np.zeros((*w64.shape[:-1], lanes), dtype=np.int64)
    for ln in range(lanes):
        v = field(ln * width, width).view(np.int64)  # 64-bit lanes: two's complement as is
        if signed and width < 64:
            v = np.where(v >> (width - 1) & 1, v - (1 << width), v)
        vals[..., ln] = v
    last = field(lanes * width, 1).astype(bool)
    return vals, last


def as_input_frames(pixels: np.ndarray, man: dict) -> np.ndarray:
    """uint8 NHWC frames in the shape of the build's input port (``man["input"]["shape"]``): with an input fold
    (``pixels_per_beat`` > 1, :mod:`rtlgen.plan.fold`) the same bytes viewed as ``H x W/f x f*C``."""
    px = np.asarray(pixels)
    shape = tuple(man["input"]["shape"])
    if px.shape[1:] == shape or px.ndim != 4 or int(np.prod(px.shape[1:])) != int(np.prod(shape)):
        return px
    return px.reshape((px.shape[0], *shape))


def input_words(pixels: np.ndarray, man: dict) -> np.ndarray:
    """uint8 NHWC frames -> uint32 input beats ``[N, beats, W]`` (one input-port pixel per beat, as
    :func:`frame_beats`; frames of a folded input port's pixel shape are viewed as its shape)."""
    i = man["input"]
    pixels = as_input_frames(pixels, man)
    N, H, W, C = pixels.shape
    if i["lanes"] != C or i["beats_per_frame"] != H * W:
        raise RtlgenError(f"input port has {i['lanes']} lanes x {i['beats_per_frame']} beats; frames are {H}x{W}x{C}")
    vals = pixels.reshape(N, H * W, C).astype(np.int64)
    last = np.zeros((N, H * W), dtype=bool)
    last[:, -1] = True
    return pack_beats(vals, i["width"], last)


def decode_output_words(words: np.ndarray, man: dict, n: int) -> np.ndarray:
    """uint32 output beats ``[n * beats, W]`` -> int64 ``[n, values]``; checks the ``last`` flags."""
    o = man["output"]
    lanes, width, values, bpf = o["lanes"], o["width"], o["values"], o["beats_per_frame"]
    vals, last = unpack_beats(words.reshape(n, bpf, -1), lanes, width, o["signed"])
    want = np.zeros((n, bpf), dtype=bool)
    want[:, -1] = True
    bad = np.argwhere(last != want)
    if len(bad):
        f, b = bad[0]
        raise RtlgenError(f"frame {f}: 'last' flag misplaced on output beat {b}")
    return vals.reshape(n, bpf * lanes)[:, :values]


def ints_from_words(words: np.ndarray) -> list[int]:
    """uint32 words ``[..., W]`` -> one Python integer per beat (flattened over the leading axes)."""
    w = np.asarray(words, dtype=np.uint64).reshape(-1, words.shape[-1])
    return [sum(int(x) << (32 * k) for k, x in enumerate(row)) for row in w]


def words_from_ints(values, nw: int) -> np.ndarray:
    """Python integers (one per beat) -> uint32 words ``[len(values), nw]``."""
    out = np.zeros((len(values), nw), dtype=np.uint32)
    for i, v in enumerate(values):
        v = int(v)
        for k in range(nw):
            out[i, k] = (v >> (32 * k)) & 0xFFFFFFFF
    return out


def frame_beats(pixels: np.ndarray) -> np.ndarray:
    """uint8 NHWC images -> input payloads ``[N, H*W]`` (uint64), one pixel per beat (lanes = C), ``last`` on each
    frame's final beat."""
    N, H, W, C = pixels.shape
    last = np.zeros((N, H * W), dtype=bool)
    last[:, -1] = True
    words = pack_beats(pixels.reshape(N, H * W, C).astype(np.int64), 8, last).astype(np.uint64)
    out = np.zeros((N, H * W), dtype=np.uint64)
    for k in range(words.shape[-1]):
        out |= words[..., k] << np.uint64(32 * k)
    return out


def decode_outputs(outs: list[int], man: dict, n: int) -> np.ndarray:
    """Output payloads as integers (one per beat) -> int64 ``[n, values]``; checks the ``last`` flags."""
    o = man["output"]
    bpf = o["beats_per_frame"]
    nw = words_for(o["lanes"] * o["width"] + 1)
    return decode_output_words(words_from_ints(list(outs)[: n * bpf], nw), man, n)


def pack(values, width: int) -> int:
    """Pack lane values (lane 0 first, two's complement) into one integer of ``len(values) * width`` bits."""
    lanes = len(values)
    words = pack_beats(np.asarray(values, dtype=np.int64).reshape(1, lanes), width, np.zeros(1, dtype=bool))
    return ints_from_words(words)[0]


def unpack(word: int, width: int, lanes: int, signed: bool = True) -> list[int]:
    """One beat's ``lanes`` values of ``width`` bits (lane 0 in the least significant bits)."""
    vals, _ = unpack_beats(words_from_ints([word], words_for(lanes * width + 1)), lanes, width, signed)
    return [int(v) for v in vals[0]]
