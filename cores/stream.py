"""The activation stream convention shared by every rtlgen core.

Stream contract
---------------
* Transport: ``amaranth.lib.stream`` (``valid``/``ready``/``payload``); a beat moves on a clock edge where
  ``valid & ready``. Producers never drop ``valid`` nor change ``payload`` while ``valid & ~ready`` (AXI-Stream rule);
  consumers may toggle ``ready`` freely.
* Order: one frame is a H x W x C activation tensor streamed in raster order — rows top to bottom, columns left to
  right, channels innermost (NHWC).
* Lanes: a beat carries ``lanes`` consecutive channels of ONE pixel. A pixel of C channels takes
  ``ceil(C / lanes)`` beats; beat k carries channels ``k*lanes ... k*lanes+lanes-1``; lanes past C in the tail beat
  are zero and ignored by consumers. Lane i occupies ``data[i*width : (i+1)*width]`` (lane 0 in the LSBs), two's
  complement for signed types.
* Frame boundary: ``last`` is 1 on the final beat of every frame, and it is authoritative: cores count positions
  inside a frame and resynchronize on ``last``, so back-to-back frames need no gaps and a reset or a malformed frame
  realigns at the next frame. A core that takes a frame's input by count (the window generator, pooling, the
  option-A shortcut, argmax) treats a malformed frame as follows and always emits exactly one complete output frame
  (full length, ``last`` on its final beat) per input frame:

  - short frame (``last`` before the expected final beat): the missing beats are supplied by the core itself, as the
    input zero point / pad value (argmax: the index over the values received), while ``ready`` stays low;
  - long frame (no ``last`` on the expected final beat): the excess beats are accepted and dropped up to and
    including the next ``last``; the following beat starts a new frame.

  Well-formed frames cost no extra cycle. In an rtlgen network the first such core (the stem convolution's window
  generator, when the network starts with a convolution) realigns the stream, so every core after it only sees
  well-formed frames.
* Widths: ``width`` is 8 for int8/uint8 activations; wider streams (e.g. 32-bit dense logits) use the same layout.

This module also holds the pure-Python packing used by the test benches and by ``rtlgen sim``.
"""

from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import unsigned
from amaranth.lib import data, stream


def act_layout(lanes: int, width: int = 8) -> data.StructLayout:
    """Payload layout of an activation beat: ``data`` (lanes x width bits) and ``last`` (end of frame)."""
    return data.StructLayout({"data": unsigned(lanes * width), "last": unsigned(1)})


def act_signature(lanes: int, width: int = 8) -> stream.Signature:
    return stream.Signature(act_layout(lanes, width))


def beats_per_pixel(channels: int, lanes: int) -> int:
    return math.ceil(channels / lanes)


def frame_to_beats(frame: np.ndarray, lanes: int, width: int = 8) -> list[int]:
    """Flat payload integers (``data | last << (lanes*width)``) for an ``[H, W, C]`` integer frame."""
    H, W, C = frame.shape
    bpp = beats_per_pixel(C, lanes)
    padded = np.zeros((H, W, bpp * lanes), dtype=np.int64)
    padded[..., :C] = frame
    lanes_arr = (padded.reshape(H * W * bpp, lanes) & ((1 << width) - 1)).astype(object)
    words = []
    shifts = [i * width for i in range(lanes)]
    for row in lanes_arr:
        w = 0
        for v, s in zip(row, shifts):
            w |= int(v) << s
        words.append(w)
    words[-1] |= 1 << (lanes * width)
    return words


def beats_to_frame(words: list[int], shape: tuple[int, int, int], lanes: int, width: int = 8,
                   signed: bool = True, check_last: bool = True) -> np.ndarray:
    """Inverse of :func:`frame_to_beats`; checks ``last`` sits exactly on the final beat (if ``check_last``)."""
    H, W, C = shape
    bpp = beats_per_pixel(C, lanes)
    n = H * W * bpp
    if len(words) != n:
        raise ValueError(f"expected {n} beats for a {shape} frame at {lanes} lanes, got {len(words)}")
    mask = (1 << width) - 1
    out = np.zeros((n, lanes), dtype=np.int64)
    for k, w in enumerate(words):
        last = (w >> (lanes * width)) & 1
        if check_last and last != (k == n - 1):
            raise ValueError(f"'last' flag wrong on beat {k} of {n}")
        for i in range(lanes):
            out[k, i] = (w >> (i * width)) & mask
    if signed:
        out = np.where(out >= (1 << (width - 1)), out - (1 << width), out)
    return out.reshape(H, W, bpp * lanes)[..., :C]
