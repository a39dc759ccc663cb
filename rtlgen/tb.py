"""cocotb helpers for Amaranth ``stream`` ports (valid/ready/payload), in the style of cocotbext-axi.

An Amaranth stream port ``i`` becomes Verilog ports ``i__valid``, ``i__ready`` and ``i__payload`` (the payload is one
flat vector; multi-lane payloads pack lane 0 in the least significant bits). :class:`StreamSource` drives a port
with optional random idle cycles, :class:`StreamSink` consumes one with optional random backpressure; both honour the
handshake exactly: a beat moves on a rising edge where ``valid & ready``.
"""

from __future__ import annotations

import itertools
import random

import cocotb
from cocotb.triggers import RisingEdge


def pause_generator(prob: float, seed: int = 0):
    """Infinite iterator of booleans: True means "pause this cycle" with probability ``prob``."""
    if prob <= 0:
        return itertools.repeat(False)
    rng = random.Random(seed)
    return (rng.random() < prob for _ in itertools.count())


def pack(values, width: int) -> int:
    """Pack lane values (lane 0 first, two's complement) into one integer of ``len(values) * width`` bits."""
    mask = (1 << width) - 1
    out = 0
    for i, v in enumerate(values):
        out |= (int(v) & mask) << (i * width)
    return out


def unpack(word: int, width: int, lanes: int, signed: bool = True) -> list[int]:
    mask = (1 << width) - 1
    out = []
    for i in range(lanes):
        v = (word >> (i * width)) & mask
        if signed and v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out


class StreamSource:
    def __init__(self, dut, name: str, clk, pause_prob: float = 0.0, seed: int = 1):
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.clk = clk
        self.pauses = pause_generator(pause_prob, seed)
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


class StreamSink:
    def __init__(self, dut, name: str, clk, pause_prob: float = 0.0, seed: int = 2):
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.clk = clk
        self.pauses = pause_generator(pause_prob, seed)
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

