#!/usr/bin/env python3
"""Post-training int8 quantization of a float ONNX classifier with onnxruntime (QDQ, per-channel weights).

    python tools/quantize_ort.py FLOAT.onnx OUT.onnx [--input-scale 1] [--mean 0,0,0] [--std 1,1,1] [--calib 500]

Calibrates on the first ``--calib`` CIFAR-10 *training* images (never the test set) with the documented preprocessing
``(pixel * input_scale - mean) / std`` and stores that preprocessing in the model's metadata (``rtlgen.input_scale``,
``rtlgen.mean``, ``rtlgen.std``), so ``rtlgen predict/build`` need no options. Scales are floats: the hardware then
requantizes with 24-bit fixed-point multipliers. (rtlgen's own QAT models, tools/train.py, use power-of-two scales.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("float_model")
    ap.add_argument("out")
    ap.add_argument("--input-scale", type=float, default=1.0)
    ap.add_argument("--mean", default="0,0,0")
    ap.add_argument("--std", default="1,1,1")
    ap.add_argument("--calib", type=int, default=500, help="calibration images (training set)")
    ap.add_argument("--dataset", default=None, help="cifar-10-batches-py (default: $RTLGEN_CIFAR10 or ../shared)")
    args = ap.parse_args(argv)
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from rtlgen import data

    mean = np.array([float(v) for v in args.mean.split(",")], np.float32)
    std = np.array([float(v) for v in args.std.split(",")], np.float32)
    x, _ = data.load_train(args.dataset or data.default_shared_dir())
    x = x[: args.calib]
    m = onnx.load(args.float_model)
    inp = m.graph.input[0]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    nhwc = dims[-1] == 3
    xf = ((x.astype(np.float32) * np.float32(args.input_scale) - mean) / std).astype(np.float32)
    if not nhwc:
        xf = xf.transpose(0, 3, 1, 2)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(range(len(xf)))

        def get_next(self):
            i = next(self.it, None)
            return None if i is None else {inp.name: xf[i : i + 1]}

    with tempfile.TemporaryDirectory() as tmp:
        m.ir_version = min(m.ir_version, 10)
        src = Path(tmp) / "float.onnx"
        onnx.save(m, str(src))
        quantize_static(str(src), args.out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    q = onnx.load(args.out)
    for k, v in (("rtlgen.input_scale", repr(args.input_scale)), ("rtlgen.mean", args.mean), ("rtlgen.std", args.std),
                 ("rtlgen.quantized_by", "tools/quantize_ort.py (onnxruntime quantize_static, QDQ, per-channel)")):
        p = q.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(q, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
