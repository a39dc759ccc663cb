#!/usr/bin/env python3
"""rtlgen PYNQ driver: classify CIFAR-10 test images on the board with the rtlgen accelerator overlay.

Loads the overlay (rtlgen.bit + rtlgen.hwh, written by ``vivado -mode batch -source ../vivado/build.tcl``), checks
the accelerator's ID and build hash against rtlgen_board.json (written beside this file by ``rtlgen build``), then
streams the standard ``cifar-10-batches-py/test_batch`` images through the AXI DMA in transfers of ``--batch``
images (uint8 NHWC bytes in, one result record per image out) and prints:

* top-1 accuracy (argmax class from the accelerator's result word vs. the labels),
* FPS seen by the host (wall time around the DMA transfers, and end to end including buffer copies),
* FPS and latency from the on-chip cycle counters (BUSY_CYCLES, LATENCY) at the PL clock,
* error flags (framing errors) and frame counters.

Builds with URAM weights (``weights`` in rtlgen_board.json): UltraRAM has no initial contents, so after its
SOFT_RESET the driver first sends ``weights.bin`` (beside this file; ``--weights`` overrides) once through the weight
DMA (``axi_dma_weights`` -> ``s_axis_weights``) and checks STATUS[3] (weights pending) cleared, then streams images.

Run it on the board (PYNQ 3.x, as root or with sudo, from a copy of the build's driver/ folder):

    python3 driver.py --dataset /home/xilinx/cifar-10-batches-py --batch 100 --limit 10000

``pynq`` is imported only when the accelerator is used, so ``python driver.py --help`` works anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CONFIG_FILE = HERE / "rtlgen_board.json"


def load_config(path=CONFIG_FILE) -> dict:
    return json.loads(Path(path).read_text())


def parse_args(argv=None):
    cfg = load_config() if CONFIG_FILE.exists() else {}
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + f" Build: {cfg.get('model', '?')} on {cfg.get('board', '?')}, "
        f"hash {cfg.get('build_hash', '?')}.",
        epilog="Figures printed are measured on the board by this script; nothing is predicted.",
    )
    p.add_argument("--bitfile", default=None,
                   help="overlay .bit with its .hwh beside it (default: rtlgen.bit beside this script, else "
                        "../vivado/out/rtlgen.bit)")
    p.add_argument("--dataset", default=os.environ.get("RTLGEN_CIFAR10"),
                   help="cifar-10-batches-py folder (default: $RTLGEN_CIFAR10)")
    p.add_argument("--batch", type=int, default=100, help="images per DMA transfer (default 100)")
    p.add_argument("--limit", type=int, default=10000, help="first N test images (default all 10000)")
    p.add_argument("--clock-mhz", type=float, default=None,
                   help="PL clock for the cycle counters (default: pynq.Clocks.fclk0_mhz, else the build's clock)")
    p.add_argument("--no-hash-check", action="store_true", help="run even if the bitstream's BUILD_HASH differs")
    p.add_argument("--weights", default=None,
                   help="weight image for builds with URAM weights (default: weights.bin beside this script, else "
                        "../weights/weights.bin)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    a = p.parse_args(argv)
    if a.batch < 1 or a.limit < 1:
        p.error("--batch and --limit must be positive")
    return a


def load_cifar_test(folder, limit=None):
    """uint8 NHWC images [N, 32, 32, 3] and int labels [N] from cifar-10-batches-py/test_batch."""
    if not folder:
        sys.exit("driver: no dataset: pass --dataset DIR or set $RTLGEN_CIFAR10 (a cifar-10-batches-py folder)")
    f = Path(folder) / "test_batch"
    if not f.exists():
        sys.exit(f"driver: {f} not found (expected the cifar-10-batches-py layout)")
    with open(f, "rb") as fh:
        d = pickle.load(fh, encoding="latin1")
    x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    y = np.asarray(d["labels"], dtype=np.int64)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return np.ascontiguousarray(x), y


def decode_records(words: np.ndarray, values: int):
    """Result records (``values`` + 1 uint32 words each) -> (outputs int64 [N, values], classes, frame numbers,
    padded flags)."""
    r = np.asarray(words, dtype=np.uint32).reshape(-1, values + 1)
    vals = r[:, :values].astype(np.int64)
    vals = np.where(vals >= 1 << 31, vals - (1 << 32), vals)
    res = r[:, values].astype(np.int64)
    return vals, res & 0xFFFF, (res >> 16) & 0x7FFF, (res >> 31) & 1


def top1_from_values(vals: np.ndarray, cfg: dict) -> np.ndarray:
    """Top-1 from the output integers dequantized with the build's per-class scale (needed when scales differ)."""
    scale = np.asarray(cfg["output_scale"] if cfg.get("output_scale") is not None else 1.0, dtype=np.float64)
    return np.argmax((vals.astype(np.float64) - cfg.get("output_zero_point", 0)) * scale, axis=1)


def load_weight_image(cfg: dict, path=None) -> np.ndarray | None:
    """The URAM weight image as uint8 (None when the build has no URAM weights); checks its size."""
    w = cfg.get("weights")
    if not w:
        return None
    if path is None:
        local = HERE / w["file"]
        path = local if local.exists() else HERE.parent / "weights" / "weights.bin"
    p = Path(path)
    if not p.exists():
        sys.exit(f"driver: this build keeps weights in UltraRAM and needs its weight image: {p} not found (--weights)")
    data = np.fromfile(p, dtype=np.uint8)
    if data.size != w["bytes"]:
        sys.exit(f"driver: {p} holds {data.size} bytes, this build's weight image has {w['bytes']}")
    return data


def send_weights(acc, wdma, image: np.ndarray, allocate) -> float:
    """Stream the weight image through the weight DMA once; returns the seconds it took. STATUS[3] must clear."""
    buf = allocate(shape=(image.size,), dtype=np.uint8)
    buf[:] = image
    buf.flush()
    t0 = time.perf_counter()
    wdma.sendchannel.transfer(buf)
    wdma.sendchannel.wait()
    for _ in range(1000):
        if not (acc.read("STATUS") >> 3) & 1:
            break
        time.sleep(0.001)
    else:
        sys.exit("driver: STATUS[3] (weights pending) still set after the weight image was sent")
    dt = time.perf_counter() - t0
    buf.freebuffer()
    return dt


class Accelerator:
    """Register access to rtlgen_axi_top through a PYNQ DefaultIP (``overlay.<ip>``)."""

    def __init__(self, ip, regs: dict):
        self.ip, self.regs = ip, regs

    def read(self, name):
        return int(self.ip.read(self.regs[name]))

    def write(self, name, value):
        self.ip.write(self.regs[name], int(value))

    def busy_cycles(self):
        lo = self.read("BUSY_CYCLES_LO")  # latches the high word
        return lo | (self.read("BUSY_CYCLES_HI") << 32)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config()
    try:
        from pynq import Overlay, allocate
    except ImportError:
        sys.exit("driver: the pynq package is not installed (run this on a PYNQ board image)")

    bit = args.bitfile
    if bit is None:
        local = HERE / "rtlgen.bit"
        bit = str(local if local.exists() else (HERE.parent / "vivado" / "out" / "rtlgen.bit"))
    x, y = load_cifar_test(args.dataset, args.limit)
    wimg = load_weight_image(cfg, args.weights)
    n_img = len(x)
    F, V, R = cfg["frame_bytes"], cfg["values"], cfg["record_words"]
    if x[0].size != F:
        sys.exit(f"driver: images of {x[0].size} bytes, the accelerator expects {F} per frame")

    ol = Overlay(bit)
    acc = Accelerator(getattr(ol, cfg["ip_name"]), cfg["registers"])
    dma = getattr(ol, cfg["dma_name"])
    ident, h = acc.read("ID"), acc.read("BUILD_HASH")
    if ident != cfg["id"]:
        sys.exit(f"driver: ID register reads {ident:#010x}, expected {cfg['id']:#010x}: not an rtlgen overlay?")
    if h != int(cfg["build_hash"], 16) and not args.no_hash_check:
        sys.exit(f"driver: bitstream build hash {h:#010x} != {cfg['build_hash']} of this driver's build "
                 "(--no-hash-check to run anyway)")
    clock = args.clock_mhz
    if clock is None:
        try:
            from pynq import Clocks

            clock = float(Clocks.fclk0_mhz)
        except Exception:  # noqa: BLE001 - older PYNQ or no clock API: fall back to the build's clock
            clock = float(cfg["clock_mhz"])

    bsz = min(args.batch, n_img)
    bufs = {}

    def buffers(n):
        if n not in bufs:
            bufs[n] = (allocate(shape=(n * F,), dtype=np.uint8), allocate(shape=(n * R,), dtype=np.uint32))
        return bufs[n]

    acc.write("CTRL", 2)  # SOFT_RESET: clean datapath and counters
    time.sleep(0.001)
    t_weights = None
    if wimg is not None:  # URAM weights: loaded once after the reset, before any image
        if not (acc.read("STATUS") >> 3) & 1:
            sys.exit("driver: rtlgen_board.json says URAM weights, but STATUS[3] (weights pending) is 0")
        t_weights = send_weights(acc, getattr(ol, cfg["weights"]["dma_name"]), wimg, allocate)
    acc.write("ERROR", 1)
    acc.write("CTRL", 1)  # START: zero the counters
    outs, t_dma = [], 0.0
    t_start = time.perf_counter()
    for i in range(0, n_img, bsz):
        n = min(bsz, n_img - i)
        ibuf, obuf = buffers(n)
        ibuf[:] = x[i:i + n].reshape(-1)
        ibuf.flush()
        acc.write("BATCH_LEN", n)  # m_axis TLAST after n records = the end of this S2MM transfer
        t0 = time.perf_counter()
        dma.recvchannel.transfer(obuf)
        dma.sendchannel.transfer(ibuf)
        dma.sendchannel.wait()
        dma.recvchannel.wait()
        t_dma += time.perf_counter() - t0
        obuf.invalidate()
        outs.append(np.array(obuf))
    t_total = time.perf_counter() - t_start

    vals, cls, fno, padded = decode_records(np.concatenate(outs), V)
    pred = cls if cfg.get("argmax_is_top1", True) else top1_from_values(vals, cfg)
    frames_out, frames_in = acc.read("FRAMES_OUT"), acc.read("FRAMES_IN")
    busy, lat, err = acc.busy_cycles(), acc.read("LATENCY"), acc.read("ERROR")
    res = {
        "model": cfg["model"], "board": cfg["board"], "images": int(n_img), "batch": int(bsz),
        "top1": float(np.mean(pred == y)),
        "top1_from_result_word": float(np.mean(cls == y)),
        "fps_host_dma": round(n_img / t_dma, 1) if t_dma > 0 else None,
        "fps_host_end_to_end": round(n_img / t_total, 1) if t_total > 0 else None,
        "clock_mhz": clock,
        "busy_cycles": int(busy),
        "fps_on_chip": round(frames_out * clock * 1e6 / busy, 1) if busy else None,
        "cycles_per_frame_on_chip": round(busy / frames_out, 1) if frames_out else None,
        "latency_cycles": int(lat),
        "latency_us": round(lat / clock, 2),
        "frames_in": int(frames_in), "frames_out": int(frames_out),
        "framing_errors": int(err & 1), "padded_frames": int(padded.sum()),
        "frame_numbers_ok": bool(np.array_equal(fno, np.arange(n_img) & 0x7FFF)),
        "weights_load_s": None if t_weights is None else round(t_weights, 4),
    }
    if args.json:
        print(json.dumps(res))
    else:
        print(f"rtlgen {res['model']} on {res['board']}: {n_img} CIFAR-10 test images, {bsz} per DMA transfer")
        print(f"  top-1 accuracy        {100 * res['top1']:.2f} %"
              + ("" if cfg.get("argmax_is_top1", True) else
                 f"  (dequantized outputs; the result word's raw argmax gives {100 * res['top1_from_result_word']:.2f} %)"))
        print(f"  FPS (host, DMA only)  {res['fps_host_dma']}")
        print(f"  FPS (host, end to end){res['fps_host_end_to_end']:>8}")
        print(f"  FPS (on-chip)         {res['fps_on_chip']}  ({res['cycles_per_frame_on_chip']} busy cycles per "
              f"frame at {clock:g} MHz)")
        print(f"  latency (first frame) {res['latency_cycles']} cycles = {res['latency_us']} us")
        print(f"  frames in/out {frames_in}/{frames_out}, framing error flag {err & 1}, padded frames "
              f"{res['padded_frames']}, frame numbering {'ok' if res['frame_numbers_ok'] else 'WRONG'}")
    return res


if __name__ == "__main__":
    main()
